//! A real, throw-away PostgreSQL server for integration tests.
//!
//! Uses the distribution's server binaries (Debian: `/usr/lib/postgresql/<ver>/bin`;
//! the newest version directory is picked, or `SENTINEL_PG_BIN` points at a
//! `bin` directory). The cluster lives in a temp dir, listens on a free
//! loopback port with SCRAM password authentication (the password is random
//! per run, so tests can assert it is never printed) and is stopped on `Drop`,
//! which also runs when a test panics.
//!
//! Running as root: PostgreSQL refuses to run as root, and tests run as root
//! here and in CI. Then the temp dir is `chown`ed to the `postgres` user
//! (created by the Debian package) and `initdb`/`pg_ctl` run through
//! `runuser -u postgres --`.
//!
//! No skipping: without server binaries the test fails and says to
//! install postgresql, so a missing database can never pass as green.

#![allow(dead_code)] // not every area uses every helper

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The database user the harness creates.
pub const PG_USER: &str = "sentinel";

/// A running PostgreSQL cluster; stopped and deleted on drop.
pub struct PgServer {
    port: u16,
    password: String,
    bin: PathBuf,
    data: PathBuf,
    as_postgres_user: bool,
    running: bool,
    // Dropped after `Drop::drop` has stopped the server.
    dir: tempfile::TempDir,
}

impl PgServer {
    /// Starts a fresh cluster. Fails the test when PostgreSQL is not
    /// installed: a probe test that passes without a database would prove
    /// nothing (`make deps` installs it).
    pub fn start() -> PgServer {
        let Some(bin) = find_bin_dir() else {
            panic!(
                "PostgreSQL server binaries not found (looked in $SENTINEL_PG_BIN and \
                 /usr/lib/postgresql/*/bin): install postgresql (`make deps`)"
            );
        };
        // SAFETY: geteuid has no preconditions.
        let as_postgres_user = unsafe { libc::geteuid() } == 0;
        // Under /tmp when running as postgres: $TMPDIR may sit under a 0700 home.
        let mut builder = tempfile::Builder::new();
        builder.prefix("sentinel-pg");
        let dir = if as_postgres_user {
            builder.tempdir_in("/tmp")
        } else {
            builder.tempdir()
        }
        .expect("temp dir");
        let data = dir.path().join("data");
        let password = random_password();
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, format!("{password}\n")).expect("write pwfile");
        if as_postgres_user {
            let out = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .output()
                .expect("run chown");
            assert!(
                out.status.success(),
                "chown to postgres failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut server = PgServer {
            port: 0,
            password,
            bin,
            data,
            as_postgres_user,
            running: false,
            dir,
        };

        let mut initdb = server.command("initdb");
        initdb
            .arg("-D")
            .arg(&server.data)
            .args([
                "-U",
                PG_USER,
                "-A",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", pwfile.display()));
        let out = initdb.output().expect("run initdb");
        assert!(out.status.success(), "initdb failed:\n{}", describe(&out));
        let _ = std::fs::remove_file(&pwfile);

        // The port is chosen by binding :0 and closing it; someone else could
        // take it before PostgreSQL binds, so retry with a new one.
        for attempt in 1..=3 {
            server.port = super::free_port();
            let out = server.pg_ctl_start();
            if out.status.success() {
                server.running = true;
                return server;
            }
            if attempt == 3 {
                panic!(
                    "pg_ctl start failed:\n{}\nserver log:\n{}",
                    describe(&out),
                    server.log()
                );
            }
        }
        unreachable!()
    }

    fn pg_ctl_start(&self) -> Output {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=20",
            self.port,
            self.dir.path().display()
        );
        let mut cmd = self.command("pg_ctl");
        cmd.arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.dir.path().join("postgres.log"))
            .args(["-w", "-t", "60", "-o", &opts, "start"]);
        cmd.output().expect("run pg_ctl start")
    }

    /// Stops the server (fast shutdown) and waits for it; idempotent.
    pub fn stop(&mut self) {
        if self.running {
            let _ = self
                .command("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "fast", "-w", "stop"])
                .output();
            self.running = false;
        }
    }

    /// Loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The password of [`PG_USER`] (random per run).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// `postgresql://sentinel:<password>@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        self.url_with_password(&self.password)
    }

    /// The same URL with another password (to provoke authentication failures).
    pub fn url_with_password(&self, password: &str) -> String {
        format!(
            "postgresql://{PG_USER}:{password}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    /// The server log (for failure messages; contains no password).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut c = if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        // The test's working directory may not be readable by postgres.
        c.current_dir(self.dir.path());
        c
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            // Immediate: the data directory is thrown away anyway.
            let _ = self
                .command("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "-w", "stop"])
                .output();
            self.running = false;
        }
    }
}

fn find_bin_dir() -> Option<PathBuf> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("SENTINEL_PG_BIN").map(PathBuf::from) {
        return has_tools(&dir).then_some(dir);
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_owned();
            let version: Option<Vec<u32>> = name.split('.').map(|p| p.parse().ok()).collect();
            Some((version?, e.path().join("bin")))
        })
        .filter(|(_, bin)| has_tools(bin))
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// A password unique to this run and distinctive enough to grep for.
fn random_password() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("pgTestPw{:x}Q{:x}Z", std::process::id(), nanos)
}

fn describe(out: &Output) -> String {
    format!(
        "status: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
