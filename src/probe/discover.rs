//! Finds the Prisma query engine's port in `/proc` (sidecar with
//! `shareProcessNamespace: true`).
//!
//! prisma-client-py starts the engine as
//! `<dir>/query-engine-<target> -p <port> --enable-metrics --enable-raw-queries`
//! (`src/prisma/engine/_query.py`, `_spawn_process`), picking a new free port
//! on every start, so the port is read from `/proc/<pid>/cmdline`. If a
//! wrapper hides the flag, the port comes from the process's listening TCP
//! sockets instead: socket inodes from the `/proc/<pid>/fd/*` symlinks
//! (`socket:[12345]`) matched against `/proc/<pid>/net/tcp` and `tcp6`.
//! Reading another process's `fd` directory needs the same user or
//! `CAP_SYS_PTRACE`; without it only the cmdline route works.
//!
//! **`/proc/<pid>/environ` is never read**: it holds `DATABASE_URL` with the
//! password. Only `cmdline`, `comm`, `stat`, `fd/` link targets and
//! `net/tcp{,6}` are, plus, for the LiteLLM version, the engines' parents'
//! `maps` (file paths only) and the names in their Python package
//! directories under `root/` ([`installed_litellm_version`]).
//!
//! Everything here tolerates processes vanishing mid-scan (missing files are
//! skipped) and arbitrary bytes in `cmdline`.

use std::collections::HashSet;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A running query engine and the port it listens on (or was told to).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EngineProcess {
    /// Process id (in the scanned `/proc`'s namespace).
    pub pid: u32,
    /// TCP port on 127.0.0.1.
    pub port: u16,
}

/// argv[0] file-name prefixes of the engine binary (`query-engine-debian-openssl-3.0.x`, …).
const ENGINE_NAME_PREFIXES: [&[u8]; 2] = [b"query-engine", b"prisma-query-engine"];
/// `comm` prefixes (`comm` is cut to 15 bytes: `query-engine-de`, `prisma-query-en`).
const ENGINE_COMM_PREFIXES: [&[u8]; 2] = [b"query-engine", b"prisma-query-en"];
/// Upper bound on bytes read from any one `/proc` file.
const CMDLINE_LIMIT: u64 = 64 * 1024;
/// Upper bound on lines read from one `net/tcp` table.
const TCP_TABLE_LINE_LIMIT: usize = 100_000;
/// TCP state `LISTEN` in `/proc/net/tcp`.
const TCP_LISTEN: &[u8] = b"0A";

/// The engine process with the lowest pid. Not what the prober uses: a pod
/// runs one engine per Uvicorn worker and each worker's DB path depends on its
/// own engine, so the prober probes [`find_engines`], all of them.
#[cfg(test)]
fn find_engine(proc_root: &Path) -> Option<EngineProcess> {
    find_engines(proc_root).into_iter().next()
}

/// All engine processes with a known port, ordered by pid.
pub fn find_engines(proc_root: &Path) -> Vec<EngineProcess> {
    let Ok(entries) = fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut found: Vec<EngineProcess> = entries
        .filter_map(Result::ok)
        .filter_map(|e| parse_pid(e.file_name().as_bytes()))
        .filter_map(|pid| {
            let dir = proc_root.join(pid.to_string());
            engine_port(&dir).map(|port| EngineProcess { pid, port })
        })
        .collect();
    found.sort_by_key(|p| p.pid);
    found
}

/// Every engine process, plus how many Uvicorn workers have no engine process
/// (yet). One engine per worker: a worker whose engine has not been spawned
/// yet is as unready as one whose engine does not answer, and counting only
/// the engines found would call a pod ready while a worker is still without one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineScan {
    /// Engine processes with a known port, by pid.
    pub engines: Vec<EngineProcess>,
    /// Sibling workers of the engines' parent processes that have no engine child.
    pub workers_without_engine: u32,
    /// Identity of the proxy process tree the engines belong to: their
    /// topmost ancestors below the namespace root (pid and start time). A
    /// different value means a new proxy process (container restart); `None`
    /// when an ancestor is not visible.
    pub proxy: Option<u64>,
    /// The engines' parent processes (the Uvicorn workers, or the proxy
    /// itself with one worker), by pid: where LiteLLM's Python runs.
    pub engine_parents: Vec<u32>,
}

/// Scans `proc_root` for engines and for workers still without one.
///
/// Workers: Uvicorn's `--workers N` (LiteLLM's `--num_workers`) starts them
/// with multiprocessing's spawn method, so a worker's cmdline holds
/// `multiprocessing.spawn` / `--multiprocessing-fork`. The workers counted are
/// those children of an engine's grandparent (the Uvicorn supervisor); with
/// one worker the engine's parent is the proxy itself and nothing is added.
/// Needs `/proc/<pid>/stat` (for the parent pid); without it only engines count.
pub fn scan(proc_root: &Path) -> EngineScan {
    let engines = find_engines(proc_root);
    if engines.is_empty() {
        return EngineScan::default();
    }
    let Ok(entries) = fs::read_dir(proc_root) else {
        return EngineScan {
            engines,
            ..EngineScan::default()
        };
    };
    let pids: Vec<u32> = entries
        .filter_map(Result::ok)
        .filter_map(|e| parse_pid(e.file_name().as_bytes()))
        .collect();
    let stats: std::collections::HashMap<u32, (u32, u64)> = pids
        .iter()
        .filter_map(|&pid| stat_fields(&proc_root.join(pid.to_string())).map(|st| (pid, st)))
        .collect();
    let parent: std::collections::HashMap<u32, u32> =
        stats.iter().map(|(&pid, &(pp, _))| (pid, pp)).collect();
    let engine_parents: HashSet<u32> = engines
        .iter()
        .filter_map(|e| parent.get(&e.pid).copied())
        .collect();
    let supervisors: HashSet<u32> = engine_parents
        .iter()
        .filter_map(|w| parent.get(w).copied())
        .filter(|&m| m > 1)
        .collect();
    let missing = pids
        .iter()
        .filter(|pid| {
            parent.get(pid).is_some_and(|pp| supervisors.contains(pp))
                && !engine_parents.contains(pid)
                && is_spawned_worker(&proc_root.join(pid.to_string()))
        })
        .count();
    let proxy = proxy_identity(&engines, &stats);
    let mut engine_parents: Vec<u32> = engine_parents.into_iter().collect();
    engine_parents.sort_unstable();
    EngineScan {
        engines,
        workers_without_engine: u32::try_from(missing).unwrap_or(u32::MAX),
        proxy,
        engine_parents,
    }
}

/// Upper bound on bytes read from one `/proc/<pid>/maps`.
const MAPS_LIMIT: u64 = 8 * 1024 * 1024;
/// Package directories looked at per process.
const PACKAGE_DIRS_LIMIT: usize = 16;

/// The LiteLLM version installed where one of `pids` (LiteLLM's Python
/// processes) runs: the `litellm-<version>.dist-info` directory pip leaves
/// in the `site-packages` (or `dist-packages`) directory whose extension
/// modules the process has mapped (pydantic-core's, at least, for every
/// LiteLLM), looked up through `/proc/<pid>/root`. For proxies whose
/// `/health/readiness` does not say (LiteLLM 1.110.2 answers only `status`
/// and `db` unless `allow_public_health_readiness_details`; the detailed
/// route needs a key). `None` when it cannot be read (reading another
/// process's `maps` and `root` needs the same user or `CAP_SYS_PTRACE`), is
/// ambiguous (two versions installed), or does not look like a version.
pub(crate) fn installed_litellm_version(proc_root: &Path, pids: &[u32]) -> Option<String> {
    pids.iter()
        .find_map(|&pid| version_of(&proc_root.join(pid.to_string())))
}

fn version_of(dir: &Path) -> Option<String> {
    let maps = read_capped(&dir.join("maps"), MAPS_LIMIT)?;
    let mut package_dirs: Vec<&[u8]> = Vec::new();
    for line in maps.split(|&b| b == b'\n') {
        // `start-end perms offset dev inode   path`: the path starts at the first `/`.
        let Some(slash) = memchr::memchr(b'/', line) else {
            continue;
        };
        let path = &line[slash..];
        let Some(end) = [&b"/site-packages/"[..], b"/dist-packages/"]
            .iter()
            .find_map(|m| memchr::memmem::find(path, m).map(|i| i + m.len() - 1))
        else {
            continue;
        };
        let pkg = &path[..end];
        if !package_dirs.contains(&pkg) {
            package_dirs.push(pkg);
            if package_dirs.len() >= PACKAGE_DIRS_LIMIT {
                break;
            }
        }
    }
    let root = dir.join("root");
    let mut found: Vec<String> = Vec::new();
    for pkg in package_dirs {
        let rel = std::ffi::OsStr::from_bytes(pkg.strip_prefix(b"/").unwrap_or(pkg));
        let Ok(entries) = fs::read_dir(root.join(rel)) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name();
            let Some(v) = name
                .as_bytes()
                .strip_prefix(b"litellm-")
                .and_then(|n| n.strip_suffix(b".dist-info"))
            else {
                continue;
            };
            if let Some(v) = std::str::from_utf8(v)
                .ok()
                .and_then(super::proxy::sane_version)
            {
                if !found.contains(&v) {
                    found.push(v);
                }
            }
        }
    }
    match found.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// The engines' topmost ancestors (parent 0 or 1: the container's first
/// process in a shared PID namespace), as one number; `None` if any chain
/// breaks (an ancestor not visible) or loops.
fn proxy_identity(
    engines: &[EngineProcess],
    stats: &std::collections::HashMap<u32, (u32, u64)>,
) -> Option<u64> {
    let mut roots = Vec::new();
    for e in engines {
        let mut pid = e.pid;
        let mut depth = 0;
        loop {
            let &(pp, start) = stats.get(&pid)?;
            if pp <= 1 {
                roots.push((pid, start));
                break;
            }
            pid = pp;
            depth += 1;
            if depth > 64 {
                return None;
            }
        }
    }
    roots.sort_unstable();
    roots.dedup();
    // FNV-1a over the (pid, start time) pairs: stable across runs, unlike RandomState.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (pid, start) in roots {
        for b in u64::from(pid)
            .to_le_bytes()
            .into_iter()
            .chain(start.to_le_bytes())
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    Some(h)
}

/// The parent pid and start time (clock ticks since boot) from
/// `/proc/<pid>/stat` (`pid (comm) state ppid … starttime` is field 22;
/// `comm` may hold spaces and parentheses, so fields are read after the last `)`).
fn stat_fields(dir: &Path) -> Option<(u32, u64)> {
    let stat = read_capped(&dir.join("stat"), 4096)?;
    let close = memchr::memrchr(b')', &stat)?;
    let fields: Vec<&[u8]> = stat[close + 1..]
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty())
        .collect();
    let num = |i: usize| -> Option<u64> { std::str::from_utf8(fields.get(i)?).ok()?.parse().ok() };
    // After `)`: state(3) ppid(4) … starttime(22), i.e. indexes 0, 1, …, 19.
    let ppid = u32::try_from(num(1)?).ok()?;
    Some((ppid, num(19).unwrap_or(0)))
}

/// A Python multiprocessing "spawn" child: how Uvicorn starts its workers.
fn is_spawned_worker(dir: &Path) -> bool {
    let Some(cmdline) = read_capped(&dir.join("cmdline"), CMDLINE_LIMIT) else {
        return false;
    };
    memchr::memmem::find(&cmdline, b"--multiprocessing-fork").is_some()
        || memchr::memmem::find(&cmdline, b"multiprocessing.spawn").is_some()
}

fn parse_pid(name: &[u8]) -> Option<u32> {
    if name.is_empty() || !name.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(name).ok()?.parse().ok()
}

/// The port of the engine in `/proc/<pid>` (`dir`), or `None` when the
/// process is not an engine, has vanished, or its port cannot be found.
fn engine_port(dir: &Path) -> Option<u16> {
    let cmdline = read_capped(&dir.join("cmdline"), CMDLINE_LIMIT)?;
    let args = split_cmdline(&cmdline);
    let argv0_matches = args
        .first()
        .is_some_and(|a| has_prefix(file_name(a), &ENGINE_NAME_PREFIXES));
    let is_engine = argv0_matches || {
        let comm = read_capped(&dir.join("comm"), 64).unwrap_or_default();
        let comm = comm.strip_suffix(b"\n").unwrap_or(&comm);
        has_prefix(comm, &ENGINE_COMM_PREFIXES)
    };
    if !is_engine {
        return None;
    }
    port_from_args(&args).or_else(|| listening_port(dir))
}

/// Splits NUL-separated argv. A process that rewrote its title into one
/// space-separated string (setproctitle) is split on whitespace instead.
fn split_cmdline(raw: &[u8]) -> Vec<&[u8]> {
    let raw = raw.strip_suffix(b"\0").unwrap_or(raw);
    if raw.is_empty() {
        return Vec::new();
    }
    let args: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
    if args.len() == 1 {
        return raw
            .split(|b| b.is_ascii_whitespace())
            .filter(|a| !a.is_empty())
            .collect();
    }
    args
}

fn file_name(path: &[u8]) -> &[u8] {
    match memchr::memrchr(b'/', path) {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

fn has_prefix(name: &[u8], prefixes: &[&[u8]]) -> bool {
    prefixes.iter().any(|p| name.starts_with(p))
}

/// `-p <port>`, `--port <port>`, `--port=<port>`, `-p=<port>` or `-p<port>`.
fn port_from_args(args: &[&[u8]]) -> Option<u16> {
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        let value: Option<&[u8]> = if *arg == b"-p" || *arg == b"--port" {
            rest.next().copied()
        } else if let Some(v) = arg.strip_prefix(b"--port=") {
            Some(v)
        } else if let Some(v) = arg.strip_prefix(b"-p") {
            Some(v.strip_prefix(b"=").unwrap_or(v))
        } else {
            None
        };
        if let Some(port) = value.and_then(parse_port) {
            return Some(port);
        }
    }
    None
}

fn parse_port(v: &[u8]) -> Option<u16> {
    if v.is_empty() || v.len() > 5 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = v.iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
    u16::try_from(n).ok().filter(|&p| p != 0)
}

/// The first listening TCP port (IPv4 table, then IPv6) owned by one of
/// the process's sockets.
fn listening_port(dir: &Path) -> Option<u16> {
    let inodes = socket_inodes(dir);
    if inodes.is_empty() {
        return None;
    }
    ["net/tcp", "net/tcp6"]
        .iter()
        .find_map(|table| listening_port_in_table(&dir.join(table), &inodes))
}

/// Inodes of the sockets behind `/proc/<pid>/fd/*` (`socket:[12345]`).
fn socket_inodes(dir: &Path) -> HashSet<u64> {
    let Ok(entries) = fs::read_dir(dir.join("fd")) else {
        return HashSet::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| fs::read_link(e.path()).ok())
        .filter_map(|target| {
            let t = target.as_os_str().as_bytes();
            let inner = t.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
            std::str::from_utf8(inner).ok()?.parse().ok()
        })
        .collect()
}

/// Scans a `/proc/net/tcp`-format table:
/// `sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …`
/// with `local_address` as hex `0100007F:1F90` (IPv6: 32 hex digits).
fn listening_port_in_table(path: &Path, inodes: &HashSet<u64>) -> Option<u16> {
    let file = fs::File::open(path).ok()?;
    let mut reader = BufReader::new(file.take(64 * 1024 * 1024));
    let mut line = Vec::new();
    for _ in 0..TCP_TABLE_LINE_LIMIT {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        let mut fields = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|f| !f.is_empty());
        let (Some(_sl), Some(local), Some(_remote), Some(state)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if state != TCP_LISTEN {
            continue;
        }
        // After `st`: tx:rx, tr:when, retrnsmt, uid, timeout, then inode.
        let Some(inode) = fields
            .nth(5)
            .and_then(|f| std::str::from_utf8(f).ok()?.parse::<u64>().ok())
        else {
            continue;
        };
        if !inodes.contains(&inode) {
            continue;
        }
        let Some(colon) = memchr::memrchr(b':', local) else {
            continue;
        };
        let port_hex = std::str::from_utf8(&local[colon + 1..]).ok();
        if let Some(port) = port_hex
            .and_then(|h| u16::from_str_radix(h, 16).ok())
            .filter(|&p| p != 0)
        {
            return Some(port);
        }
    }
    None
}

fn read_capped(path: &Path, limit: u64) -> Option<Vec<u8>> {
    let file = fs::File::open(path).ok()?;
    let mut buf = Vec::new();
    file.take(limit).read_to_end(&mut buf).ok()?;
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;
    use std::time::Duration;

    fn committed_fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/proc")
    }

    const TCP_HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

    /// A fake `/proc/<pid>` with the given cmdline and sockets.
    struct FakeProc {
        root: tempfile::TempDir,
    }

    impl FakeProc {
        fn new() -> Self {
            FakeProc {
                root: tempfile::tempdir().unwrap(),
            }
        }
        fn path(&self) -> &Path {
            self.root.path()
        }
        fn process(&self, pid: u32, cmdline: &[u8], comm: &str) -> PathBuf {
            let dir = self.root.path().join(pid.to_string());
            fs::create_dir_all(dir.join("fd")).unwrap();
            fs::create_dir_all(dir.join("net")).unwrap();
            fs::write(dir.join("cmdline"), cmdline).unwrap();
            fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
            // stdin/stdout/stderr look like this in a container.
            symlink("/dev/null", dir.join("fd/0")).unwrap();
            symlink("pipe:[4410]", dir.join("fd/1")).unwrap();
            symlink("pipe:[4411]", dir.join("fd/2")).unwrap();
            dir
        }
        fn socket(&self, dir: &Path, fd: u32, inode: u64) {
            symlink(format!("socket:[{inode}]"), dir.join(format!("fd/{fd}"))).unwrap();
        }
        fn tcp_table(&self, dir: &Path, name: &str, rows: &[&str]) {
            let mut body = TCP_HEADER.to_string();
            for r in rows {
                body.push_str(r);
                body.push('\n');
            }
            fs::write(dir.join("net").join(name), body).unwrap();
        }
    }

    fn engine_cmdline(extra: &[&str]) -> Vec<u8> {
        let mut v = b"/root/.cache/prisma-python/binaries/5.17.0/393aa359c9ad4a4bb28630fb5613f9c281cde053/query-engine-debian-openssl-3.0.x".to_vec();
        for a in extra {
            v.push(0);
            v.extend_from_slice(a.as_bytes());
        }
        v.push(0);
        v
    }

    #[test]
    fn committed_fixture_tree() {
        let root = committed_fixtures();
        let engines = find_engines(&root);
        assert_eq!(
            engines,
            vec![
                EngineProcess {
                    pid: 17,
                    port: 38121
                }, // -p <port>
                EngineProcess {
                    pid: 23,
                    port: 41234
                }, // --port=<port>
                EngineProcess {
                    pid: 31,
                    port: 4242
                }, // setproctitle-style single string
                EngineProcess {
                    pid: 44,
                    port: 45001
                }, // matched by comm only
            ]
        );
        assert_eq!(
            find_engine(&root),
            Some(EngineProcess {
                pid: 17,
                port: 38121
            })
        );
    }

    #[test]
    fn cmdline_port_flag_variants() {
        let cases: [(&[&str], Option<u16>); 9] = [
            (
                &["-p", "38121", "--enable-metrics", "--enable-raw-queries"],
                Some(38121),
            ),
            (&["--port", "5000"], Some(5000)),
            (&["--port=5001"], Some(5001)),
            (&["-p5002"], Some(5002)),
            (&["-p=5003"], Some(5003)),
            (&["--enable-metrics", "-p"], None),
            (&["-p", "99999"], None),
            (&["-p", "0"], None),
            (&["-p", "12a4"], None),
        ];
        for (extra, want) in cases {
            let cmd = engine_cmdline(extra);
            let args = split_cmdline(&cmd);
            assert_eq!(port_from_args(&args), want, "{extra:?}");
        }
    }

    #[test]
    fn socket_fallback_ipv4_and_ipv6() {
        let fake = FakeProc::new();
        // IPv4: engine without a port flag, listening on 127.0.0.1:8080 (0x1F90).
        let v4 = fake.process(
            100,
            &engine_cmdline(&["--enable-metrics"]),
            "query-engine-de",
        );
        fake.socket(&v4, 9, 555_001);
        fake.socket(&v4, 10, 555_002);
        fake.tcp_table(
            &v4,
            "tcp",
            &[
                // Someone else's listener (LiteLLM on 0.0.0.0:4000) in the same netns.
                "   0: 00000000:0FA0 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999999 1 0000000000000000 100 0 0 10 0",
                // The engine's established connection to PostgreSQL: not LISTEN.
                "   1: 0100007F:A1B2 0100007F:1538 01 00000000:00000000 00:00000000 00000000     0        0 555001 1 0000000000000000 20 4 30 10 -1",
                "   2: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 555002 1 0000000000000000 100 0 0 10 0",
            ],
        );
        fake.tcp_table(&v4, "tcp6", &[]);
        // IPv6 only: [::1]:4242 (0x1092).
        let v6 = fake.process(200, &b"prisma-query-engine\0"[..], "prisma-query-en");
        fake.socket(&v6, 7, 777);
        fake.tcp_table(&v6, "tcp", &[]);
        fake.tcp_table(
            &v6,
            "tcp6",
            &["   0: 00000000000000000000000001000000:1092 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0"],
        );
        assert_eq!(
            find_engines(fake.path()),
            vec![
                EngineProcess {
                    pid: 100,
                    port: 8080
                },
                EngineProcess {
                    pid: 200,
                    port: 4242
                }
            ]
        );
    }

    #[test]
    fn engine_not_listening_yet_has_no_port() {
        // The engine binds only after connecting to PostgreSQL: in the gap it
        // has sockets (to PostgreSQL) but no listener, and no -p was given.
        let fake = FakeProc::new();
        let dir = fake.process(300, &engine_cmdline(&[]), "query-engine-de");
        fake.socket(&dir, 9, 1234);
        fake.tcp_table(
            &dir,
            "tcp",
            &["   0: 0100007F:A1B2 0100007F:1538 01 00000000:00000000 00:00000000 00000000     0        0 1234 1 0000000000000000 20 4 30 10 -1"],
        );
        assert_eq!(find_engine(fake.path()), None);
    }

    #[test]
    fn no_engine_garbage_and_vanished_processes_are_skipped() {
        let fake = FakeProc::new();
        // LiteLLM itself: its own --port must not be mistaken for the engine's.
        fake.process(
            1,
            b"/usr/bin/python3\0/usr/local/bin/litellm\0--port\x004000\0",
            "litellm",
        );
        // Invalid UTF-8, no NULs, ANSI codes.
        fake.process(2, b"\xff\xfe\x1b[31mquery-engine\x1b[0m -p 1", "bash");
        fake.process(3, b"", "kworker/0:1");
        fake.process(4, &vec![b'A'; 200_000], "python3");
        // Vanished: directory left, files gone.
        fs::create_dir_all(fake.path().join("5")).unwrap();
        // Vanished between cmdline and fd: engine name, no port flag, no fd dir.
        let gone = fake.path().join("6");
        fs::create_dir_all(&gone).unwrap();
        fs::write(gone.join("cmdline"), engine_cmdline(&[])).unwrap();
        // Non-pid entries.
        fs::create_dir_all(fake.path().join("self")).unwrap();
        fs::write(fake.path().join("uptime"), "1.0 1.0\n").unwrap();
        fs::create_dir_all(fake.path().join("12x")).unwrap();
        assert_eq!(find_engines(fake.path()), vec![]);
        assert_eq!(find_engine(Path::new("/nonexistent/proc")), None);
    }

    #[test]
    fn never_opens_environ() {
        // `environ` is a FIFO: opening it for reading would block forever.
        let fake = FakeProc::new();
        let dir = fake.process(
            400,
            &engine_cmdline(&["--enable-metrics"]),
            "query-engine-de",
        );
        let fifo = dir.join("environ");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
            0,
        )
        .unwrap();
        fake.socket(&dir, 3, 42);
        fake.tcp_table(
            &dir,
            "tcp",
            &["   0: 0100007F:9C40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 42 1 0000000000000000 100 0 0 10 0"],
        );
        let root = fake.path().to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(find_engine(&root));
        });
        let found = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("scan blocked: environ was opened");
        assert_eq!(
            found,
            Some(EngineProcess {
                pid: 400,
                port: 40000
            })
        );
        drop(fake);
    }

    fn stat(dir: &Path, pid: u32, comm: &str, ppid: u32) {
        fs::write(
            dir.join("stat"),
            format!("{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 1000 0 0\n"),
        )
        .unwrap();
    }

    #[test]
    fn workers_without_an_engine_yet_are_counted() {
        let fake = FakeProc::new();
        // A worker exactly as uvicorn 0.54 `--workers 2` started it (seen in /proc).
        let spawn_cmd: &[u8] = b"/usr/bin/python3\0-B\0-c\0from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=7, pipe_handle=9)\0--multiprocessing-fork\0";
        let m = fake.process(
            10,
            b"/usr/bin/python3\0/usr/bin/litellm\0--num_workers\x002\0",
            "litellm",
        );
        stat(&m, 10, "litellm", 0);
        // The multiprocessing resource tracker is a child too, but not a worker.
        let rt = fake.process(
            11,
            b"/usr/bin/python3\0-c\0from multiprocessing.resource_tracker import main;main(4)\0",
            "python3",
        );
        stat(&rt, 11, "python3", 10);
        for w in [12, 13] {
            let d = fake.process(w, spawn_cmd, "python3");
            stat(&d, w, "python3", 10);
        }
        let e1 = fake.process(20, &engine_cmdline(&["-p", "40001"]), "query-engine-de");
        stat(&e1, 20, "query-engine-de", 12);
        let s = scan(fake.path());
        assert_eq!(
            s.engines,
            vec![EngineProcess {
                pid: 20,
                port: 40001
            }]
        );
        assert_eq!(s.workers_without_engine, 1, "worker 13 has no engine yet");
        let e2 = fake.process(21, &engine_cmdline(&["-p", "40002"]), "query-engine-de");
        // A comm with spaces and parentheses must not confuse the stat parser.
        stat(&e2, 21, "query-engine) x (", 13);
        let s = scan(fake.path());
        assert_eq!(s.engines.len(), 2);
        assert_eq!(s.workers_without_engine, 0);
    }

    #[test]
    fn a_new_proxy_process_tree_has_a_new_identity() {
        let fake = FakeProc::new();
        let m = fake.process(10, b"/usr/bin/python3\0/usr/bin/litellm\0", "litellm");
        stat(&m, 10, "litellm", 0);
        let e = fake.process(20, &engine_cmdline(&["-p", "40001"]), "query-engine-de");
        stat(&e, 20, "query-engine-de", 10);
        let first = scan(fake.path()).proxy;
        assert!(first.is_some());
        // LiteLLM respawns the engine: same proxy.
        fs::remove_dir_all(fake.path().join("20")).unwrap();
        let e = fake.process(21, &engine_cmdline(&["-p", "40002"]), "query-engine-de");
        stat(&e, 21, "query-engine-de", 10);
        assert_eq!(scan(fake.path()).proxy, first);
        // The container restarted: a new first process.
        fs::remove_dir_all(fake.path().join("10")).unwrap();
        fs::remove_dir_all(fake.path().join("21")).unwrap();
        let m = fake.process(30, b"/usr/bin/python3\0/usr/bin/litellm\0", "litellm");
        stat(&m, 30, "litellm", 0);
        let e = fake.process(31, &engine_cmdline(&["-p", "40003"]), "query-engine-de");
        stat(&e, 31, "query-engine-de", 30);
        let second = scan(fake.path()).proxy;
        assert!(second.is_some() && second != first);
        // An ancestor that is not visible: unknown, not "new".
        let e = fake.process(40, &engine_cmdline(&["-p", "40004"]), "query-engine-de");
        stat(&e, 40, "query-engine-de", 999);
        assert_eq!(scan(fake.path()).proxy, None);
    }

    /// A Python process's `maps` with pydantic-core loaded from `site`, and
    /// the `dist-info` directories `dists` there, under its `root/`.
    fn python_with_packages(dir: &Path, site: &str, dists: &[&str]) {
        let maps = format!(
            "5581a0a00000-5581a0a2b000 r--p 00000000 08:01 1311 /usr/bin/python3.11\n\
             7f3b2c000000-7f3b2c021000 rw-p 00000000 00:00 0 \n\
             7f3b2d400000-7f3b2d5a0000 r-xp 00000000 08:01 5521 {site}/pydantic_core/_pydantic_core.cpython-311-x86_64-linux-gnu.so\n\
             7f3b2e000000-7f3b2e001000 r--p 00000000 08:01 5522 {site}/yaml/_yaml.cpython-311-x86_64-linux-gnu.so (deleted)\n\
             7ffd1c000000-7ffd1c021000 rw-p 00000000 00:00 0 [stack]\n"
        );
        fs::write(dir.join("maps"), maps).unwrap();
        let pkgs = dir.join("root").join(site.trim_start_matches('/'));
        fs::create_dir_all(pkgs.join("pydantic_core")).unwrap();
        for d in dists {
            fs::create_dir_all(pkgs.join(d)).unwrap();
        }
    }

    #[test]
    fn the_litellm_version_is_read_from_the_proxys_installed_packages() {
        let fake = FakeProc::new();
        let site = "/app/.venv/lib/python3.11/site-packages";
        let m = fake.process(
            10,
            b"/app/.venv/bin/python\0/app/.venv/bin/litellm\0",
            "litellm",
        );
        stat(&m, 10, "litellm", 0);
        python_with_packages(
            &m,
            site,
            &[
                "litellm-1.110.2.dist-info",
                "litellm_proxy_extras-0.4.110.dist-info",
                "litellm_enterprise-0.1.83.dist-info",
                "prisma-0.15.0.dist-info",
            ],
        );
        let e = fake.process(20, &engine_cmdline(&["-p", "40001"]), "query-engine-de");
        stat(&e, 20, "query-engine-de", 10);
        let s = scan(fake.path());
        assert_eq!(s.engine_parents, vec![10]);
        assert_eq!(
            installed_litellm_version(fake.path(), &s.engine_parents),
            Some("1.110.2".into())
        );
        // Not readable (no maps: another user without CAP_SYS_PTRACE): unknown.
        fs::remove_file(m.join("maps")).unwrap();
        assert_eq!(installed_litellm_version(fake.path(), &[10]), None);
        assert_eq!(installed_litellm_version(fake.path(), &[]), None);
    }

    #[test]
    fn an_ambiguous_or_odd_litellm_version_is_unknown() {
        let fake = FakeProc::new();
        let site = "/usr/lib/python3/dist-packages";
        let two = fake.process(10, b"python3\0", "python3");
        python_with_packages(
            &two,
            site,
            &["litellm-1.83.14.dist-info", "litellm-1.110.2.dist-info"],
        );
        assert_eq!(installed_litellm_version(fake.path(), &[10]), None);
        let odd = fake.process(11, b"python3\0", "python3");
        python_with_packages(&odd, site, &["litellm-1.2 sk-secret.dist-info"]);
        assert_eq!(installed_litellm_version(fake.path(), &[11]), None);
        // The next parent that has one answers.
        let good = fake.process(12, b"python3\0", "python3");
        python_with_packages(&good, site, &["litellm-1.83.14.dist-info"]);
        assert_eq!(
            installed_litellm_version(fake.path(), &[11, 12]),
            Some("1.83.14".into())
        );
    }

    #[test]
    fn single_worker_and_missing_stat_add_nothing() {
        let fake = FakeProc::new();
        let m = fake.process(
            10,
            b"/usr/bin/python3\0/usr/bin/litellm\0--port\x004000\0",
            "litellm",
        );
        stat(&m, 10, "litellm", 0);
        let e = fake.process(20, &engine_cmdline(&["-p", "40001"]), "query-engine-de");
        stat(&e, 20, "query-engine-de", 10);
        assert_eq!(scan(fake.path()).workers_without_engine, 0);
        // The committed fixture tree has no stat files.
        let s = scan(&committed_fixtures());
        assert_eq!((s.engines.len(), s.workers_without_engine), (4, 0));
        assert_eq!(scan(Path::new("/nonexistent")), EngineScan::default());
    }

    #[test]
    fn split_cmdline_edge_cases() {
        assert_eq!(split_cmdline(b""), Vec::<&[u8]>::new());
        assert_eq!(split_cmdline(b"\0"), Vec::<&[u8]>::new());
        assert_eq!(split_cmdline(b"a\0\0b\0"), vec![&b"a"[..], b"", b"b"]);
        assert_eq!(
            split_cmdline(b"query-engine -p  9"),
            vec![&b"query-engine"[..], b"-p", b"9"]
        );
    }
}
