//! Secrets in log lines and in the agent's own settings never leave the
//! agent: not in `/metrics`, `/api/v1/pods`, `/gate`, `report` (table or
//! JSON) or the agent's own log, even at debug level. LiteLLM logs carry
//! connection strings, API keys and bearer tokens inside the very events the
//! agent counts, so those events are fed through every output.

use crate::support;

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{cri, http_get, now_ts, wait_until, AgentProc, LogTree};

const PASSWORD: &str = "s3cr3t-pw";
const DB_URL: &str = "postgresql://llm:s3cr3t-pw@db.internal:5432/litellm";
const API_KEY: &str = "sk-live-abcdef0123456789";
const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.secret";

/// Substrings none of which may appear in any output.
const LEAKS: [&str; 5] = [
    PASSWORD,
    API_KEY,
    "abcdef0123456789",
    "eyJhbGciOiJIUzI1NiJ9",
    TOKEN,
];

fn assert_no_secret(what: &str, text: &str) {
    for s in LEAKS {
        assert!(
            !text.contains(s),
            "{what} leaks {s:?}:\n{}",
            text.lines()
                .filter(|l| l.contains(s))
                .take(10)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// Real events and ordinary lines, each carrying a secret; also malformed,
/// over-long and partial records (paths that might log the raw line).
fn secret_lines(ts: &str) -> String {
    let mut s = cri(
        ts,
        "stdout",
        "INFO:     Uvicorn running on http://0.0.0.0:4000 (Press CTRL+C to quit)",
    );
    for (stream, msg) in [
        ("stderr", format!("\x1b[92m10:15:02 - LiteLLM Proxy:ERROR\x1b[0m: utils.py:1520 - LiteLLM Prisma Client Exception get_generic_data: All connection attempts failed {DB_URL}")),
        ("stderr", format!("\x1b[92m10:15:02 - LiteLLM Proxy:ERROR\x1b[0m: utils.py:3905 - Error in spend logs queue monitor: All connection attempts failed (Authorization: Bearer {TOKEN}, key={API_KEY})")),
        ("stderr", "Traceback (most recent call last):".to_string()),
        ("stderr", format!("  File \"/app/litellm/proxy/utils.py\", line 3880, in update_spend_logs  # {DB_URL}")),
        ("stderr", format!("httpx.ConnectError: All connection attempts failed {DB_URL}")),
        ("stderr", format!("Budget lookup failed for user; cache will not be populated. Each request will hit the database. Error: All connection attempts failed. api_key={API_KEY}")),
        ("stdout", format!("INFO:     10.0.0.7:46642 - \"POST /v1/chat/completions?api_key={API_KEY} HTTP/1.1\" 200 OK")),
        ("stdout", format!("{{\"message\": \"LiteLLM Prisma Client Exception get_generic_data: All connection attempts failed\", \"level\": \"ERROR\", \"timestamp\": \"2026-11-24T10:15:03\", \"stacktrace\": \"Traceback (most recent call last):\\n  File \\\"x.py\\\", line 1, in f\\nhttpx.ConnectError: {DB_URL} Authorization: Bearer {TOKEN}\"}}")),
        ("stdout", format!("litellm.proxy_server.py::get_credentials() - Error getting credentials from DB - All connection attempts failed DATABASE_URL={DB_URL}")),
        ("stdout", format!("Authorization: Bearer {TOKEN}")),
    ] {
        s.push_str(&cri(ts, stream, &msg));
    }
    // Malformed: a bad timestamp and missing fields, both carrying secrets.
    s.push_str(&format!(
        "not-a-time stderr F LiteLLM Prisma Client Exception: {DB_URL}\n"
    ));
    s.push_str(&format!("{ts} {API_KEY}\n"));
    // An over-long record (the cap is set to 4 KiB below) and a partial never finished.
    s.push_str(&cri(
        ts,
        "stderr",
        &format!("{} {DB_URL} {}", "x".repeat(5000), API_KEY),
    ));
    s.push_str(&format!(
        "{ts} stderr P Error in spend logs queue monitor: All connection attempts failed {DB_URL}\n"
    ));
    s
}

fn run_report(args: &[&OsStr]) -> (String, String) {
    let out = Command::new(support::bin())
        .arg("report")
        .args(args)
        .env("RUST_LOG", "debug")
        .output()
        .expect("run report");
    assert!(
        out.status.success(),
        "report failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn start_agent(args: &[&OsStr], env: &[(&str, &str)], port: u16, log: &Path) -> AgentProc {
    let mut env = env.to_vec();
    env.push(("RUST_LOG", "debug"));
    AgentProc::start_with(args, &env, port, log)
}

#[test]
fn secrets_in_log_lines_stay_out_of_metrics_api_reports_and_logs() {
    let tree = LogTree::new();
    let port = support::free_port();
    // The config itself holds a database URL too (the effective config is logged).
    let cfg = tree.config(
        port,
        &format!("max_line_bytes = 4096\n[probe]\ndatabase_url = \"{DB_URL}\"\n"),
    );
    let log = tree.log_path("llm", "litellm-secrets");
    LogTree::append(&log, &secret_lines(&now_ts()));
    let agent_log = tree.dir.path().join("agent-secrets.log");
    let agent = start_agent(
        &[OsStr::new("run"), OsStr::new("--config"), cfg.as_os_str()],
        &[],
        port,
        &agent_log,
    );
    let l = [("namespace", "llm"), ("pod", "litellm-secrets")];
    // The events were really classified (so their text went through every stage).
    agent.wait_value("litellm_sentinel_spend_batches_dropped_total", &l, 1.0);
    agent.wait_value("litellm_sentinel_budget_cache_misses_total", &l, 1.0);
    agent.wait_value(
        "litellm_sentinel_db_connect_errors_total",
        &[
            ("pod", "litellm-secrets"),
            ("operation", "get_generic_data"),
        ],
        2.0,
    );
    agent.wait_value(
        "litellm_sentinel_lines_malformed_total",
        &[("reason", "too_long")],
        1.0,
    );
    // Rotate so the unfinished partial is flushed (and logged, if anything logs it).
    std::fs::rename(&log, log.with_file_name("0.log.20261124-101500")).expect("rotate");
    LogTree::append(
        &log,
        &cri(&now_ts(), "stdout", &format!("INFO: key {API_KEY}")),
    );
    agent.wait_value(
        "litellm_sentinel_lines_malformed_total",
        &[("reason", "unterminated_partial")],
        1.0,
    );
    assert_no_secret("/metrics", &agent.metrics());
    let (status, api) = http_get(agent.addr, "/api/v1/pods").expect("api");
    assert_eq!(status, 200);
    assert!(api.contains("litellm-secrets"), "{api}");
    assert_no_secret("/api/v1/pods", &api);
    for path in ["/gate", "/readyz", "/healthz", "/nonexistent"] {
        if let Some((_, body)) = http_get(agent.addr, path) {
            assert_no_secret(path, &body);
        }
    }
    // The state file holds pending partial records (raw log text): it is not
    // an output, but it must be as private as the container logs it comes from.
    let state = tree.state_file();
    wait_until("a checkpoint", Duration::from_secs(10), || state.exists());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&state).expect("state").permissions(),
    );
    assert_eq!(
        mode & 0o077,
        0,
        "state file mode {mode:o} is readable by others"
    );
    let st = agent.sigterm();
    assert!(st.success());
    let text = std::fs::read_to_string(&agent_log).expect("agent log");
    assert!(
        text.contains("DEBUG"),
        "the agent did not log at debug level:\n{text}"
    );
    assert_no_secret("the agent's log", &text);

    // report, table and JSON, over the live file, the rotated one and a .gz.
    let gz = tree.dir.path().join("litellm-secrets-old.log.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).expect("gz"),
        flate2::Compression::fast(),
    );
    std::io::Write::write_all(&mut enc, secret_lines(&now_ts()).as_bytes()).expect("gz write");
    enc.finish().expect("gz finish");
    let pods = tree.pods();
    for json in [false, true] {
        let mut args: Vec<&OsStr> = vec![pods.as_os_str(), gz.as_os_str()];
        if json {
            args.push(OsStr::new("--json"));
        }
        let (out, err) = run_report(&args);
        assert!(
            out.contains("litellm-secrets"),
            "report names the pod:\n{out}"
        );
        assert_no_secret(if json { "report --json" } else { "report" }, &out);
        assert_no_secret("report's stderr", &err);
    }
}

#[test]
fn database_url_password_stays_out_of_the_sidecar_log_metrics_and_gate() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = support::free_port();
    let listen = format!("127.0.0.1:{port}");
    let log = dir.path().join("sidecar.log");
    let mut agent = start_agent(
        &[
            OsStr::new("run"),
            OsStr::new("--role"),
            OsStr::new("sidecar"),
            OsStr::new("--engine-url"),
            OsStr::new("http://127.0.0.1:1"),
            OsStr::new("--listen"),
            OsStr::new(&listen),
            OsStr::new("--state-file"),
            dir.path().join("state.json").as_os_str(),
        ],
        &[
            ("DATABASE_URL", "postgresql://llm:s3cr3t-pw@127.0.0.1:1/x"),
            ("POD_NAMESPACE", "llm"),
            ("POD_NAME", "litellm-sidecar"),
        ],
        port,
        &log,
    );
    // Wait until both probes have failed a few times (refused: nothing listens).
    wait_until("probe failures", Duration::from_secs(20), || {
        let m = agent.metrics();
        support::metric_sum(&m, "litellm_sentinel_probe_failures_total", &[]) >= 4.0
            && support::metric_sum(
                &m,
                "litellm_sentinel_probe_failures_total",
                &[("target", "database")],
            ) >= 1.0
    });
    let (status, gate) = http_get(agent.addr, "/gate").expect("gate");
    assert_eq!(status, 503, "{gate}");
    assert_no_secret("/gate", &gate);
    assert_no_secret("/metrics", &agent.metrics());
    let (_, api) = http_get(agent.addr, "/api/v1/pods").expect("api");
    assert_no_secret("/api/v1/pods", &api);
    assert!(agent.healthy());
    let text = agent.log_text();
    assert!(text.contains("DEBUG"), "{text}");
    assert_no_secret("the sidecar's log", &text);
    let st = agent.sigterm();
    assert!(st.success());
    assert_no_secret(
        "the sidecar's log after shutdown",
        &std::fs::read_to_string(&log).expect("log"),
    );
}

#[test]
fn a_malformed_database_url_is_reported_without_echoing_the_password() {
    let dir = tempfile::tempdir().expect("tmp");
    for (i, url) in [
        "postgresql://llm:s3cr3t-pw@db:notaport/x",
        "postgresql://llm:s3cr3t-pw@[::1/x",
        "mysql://llm:s3cr3t-pw@db/x",
    ]
    .into_iter()
    .enumerate()
    {
        let log = dir.path().join(format!("bad-url-{i}.log"));
        let mut child = Command::new(support::bin())
            .args([
                "run",
                "--role",
                "sidecar",
                "--engine-url",
                "http://127.0.0.1:1",
                "--listen",
                "127.0.0.1:0",
                "--state-file",
            ])
            .arg(dir.path().join("state.json"))
            .env("DATABASE_URL", url)
            .env("RUST_LOG", "debug")
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("stdout")).expect("stdout"))
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("run");
        // Rejected at start (exit 1), or running with the database probe
        // reporting `db_error`: either way the setting is named, not echoed.
        let read = || {
            std::fs::read_to_string(&log).unwrap_or_default()
                + &std::fs::read_to_string(dir.path().join("stdout")).unwrap_or_default()
        };
        let end = std::time::Instant::now() + Duration::from_secs(10);
        while child.try_wait().ok().flatten().is_none()
            && !read().contains("database")
            && std::time::Instant::now() < end
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        let text = read();
        assert!(
            text.contains("database"),
            "nothing says the database URL is bad:\n{text}"
        );
        assert_no_secret(&format!("the error for {url}"), &text);
    }
}

/// Each form of secret-bearing URL or DSN the agent may print, with the secret in it.
const URL_FORMS: [(&str, &str); 10] = [
    (
        "postgresql://llm:PwUserinfoA1@127.0.0.1:1/litellm",
        "PwUserinfoA1",
    ),
    (
        "postgresql://llm@127.0.0.1:1/litellm?PassWord=PwQueryB2",
        "PwQueryB2",
    ),
    (
        "postgresql://llm@127.0.0.1:1/litellm?sslmode=disable&passwd=PwQueryC3",
        "PwQueryC3",
    ),
    (
        "postgresql://llm@127.0.0.1:1/litellm?PWD=PwQueryD4",
        "PwQueryD4",
    ),
    ("postgresql://llm:Pw/SlashE5@127.0.0.1:1/litellm", "SlashE5"),
    ("postgresql://llm:Pw?QmarkF6@127.0.0.1:1/litellm", "QmarkF6"),
    ("postgresql://llm:Pw@AtG7@127.0.0.1:1/litellm", "AtG7"),
    ("postgresql://llm:Pw#HashH8@127.0.0.1:1/litellm", "HashH8"),
    (
        "host=127.0.0.1 port=1 user=llm password=PwLibpqI9 dbname=x",
        "PwLibpqI9",
    ),
    (
        "host=127.0.0.1 user=llm password='Pw LibpqJ10' dbname=x",
        "LibpqJ10",
    ),
];

/// OTLP endpoints with a secret (query parameters in any case, userinfo).
const OTLP_FORMS: [(&str, &str); 5] = [
    ("http://127.0.0.1:9/?token=TokOtlpK1", "TokOtlpK1"),
    ("http://127.0.0.1:9/base?Secret=TokOtlpL2", "TokOtlpL2"),
    ("http://127.0.0.1:9?API_KEY=TokOtlpM3", "TokOtlpM3"),
    ("http://127.0.0.1:9/?x=1&Api_Key=TokOtlpN4", "TokOtlpN4"),
    ("http://collector:TokOtlpO5@127.0.0.1:9", "TokOtlpO5"),
];

fn assert_hidden(what: &str, text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(
            !text.contains(s),
            "{what} leaks {s:?}:\n{}",
            text.lines()
                .filter(|l| l.contains(s))
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// Every URL/DSN form goes through every output that prints one: `check-config`
/// (stdout and stderr), the start-up "effective configuration" line, the
/// probe's logs, the OTLP pusher's logs, and two rejected reloads (a TOML
/// syntax error on the `database_url` line, and an invalid URL) — at trace
/// level, so every level's lines are in, alternately as text and JSON. On
/// main, `?password=`, `?token=` and the syntax-error echo leaked.
#[test]
fn every_url_form_stays_out_of_check_config_startup_reload_probe_and_otlp_logs() {
    let dir = tempfile::tempdir().expect("tmp");
    for (i, (db, db_secret)) in URL_FORMS.iter().enumerate() {
        // The userinfo OTLP form is refused at start: pair it with a form
        // that is refused anyway, so every other database form runs.
        let (otlp, otlp_secret) = if i + 1 == URL_FORMS.len() {
            OTLP_FORMS[4]
        } else {
            OTLP_FORMS[i % 4]
        };
        let secrets = [*db_secret, otlp_secret];
        let port = support::free_port();
        let format = if i % 2 == 0 { "text" } else { "json" };
        let state = dir.path().join(format!("state-{i}.json"));
        let body = format!(
            "role = \"sidecar\"\nlisten = \"127.0.0.1:{port}\"\nstate_file = \"{}\"\nlog_format = \"{format}\"\notlp_endpoint = \"{otlp}\"\notlp_interval = \"200ms\"\n[probe]\nengine_url = \"http://127.0.0.1:1\"\nnamespace = \"llm\"\npod = \"litellm-0\"\nfast_interval = \"100ms\"\nslow_interval = \"200ms\"\ndatabase_url = \"{db}\"\n",
            state.display()
        );
        let cfg = dir.path().join(format!("form-{i}.toml"));
        std::fs::write(&cfg, &body).expect("config");

        // check-config: prints the effective config, or the reason it is rejected.
        let out = Command::new(support::bin())
            .arg("check-config")
            .arg(&cfg)
            .env("RUST_LOG", "trace")
            .output()
            .expect("check-config");
        let shown = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_hidden(&format!("check-config of {db}"), &shown, &secrets);
        let accepted = out.status.success();
        if accepted {
            assert!(
                shown.contains("database_url") && shown.contains("***"),
                "{shown}"
            );
        } else {
            // Refused: the libpq key=value forms (the agent takes URLs) and
            // credentials in the OTLP URL (HTTP clients trace the authority).
            assert!(
                (!db.contains("://") && shown.contains("probe.database_url"))
                    || (otlp.contains('@') && shown.contains("otlp_endpoint")),
                "{db} / {otlp} rejected: {shown}"
            );
            let log = dir.path().join(format!("run-{i}.log"));
            let st = Command::new(support::bin())
                .args(["run", "--config"])
                .arg(&cfg)
                .env("RUST_LOG", "trace")
                .stderr(std::fs::File::create(&log).expect("log"))
                .status()
                .expect("run");
            assert_eq!(st.code(), Some(1));
            assert_hidden(
                "run's refusal",
                &std::fs::read_to_string(&log).expect("log"),
                &secrets,
            );
            continue;
        }

        let log = dir.path().join(format!("agent-{i}.log"));
        let agent = AgentProc::start_with(
            &[OsStr::new("run"), OsStr::new("--config"), cfg.as_os_str()],
            &[("RUST_LOG", "trace")],
            port,
            &log,
        );
        wait_until(
            "database probe and OTLP push failures",
            Duration::from_secs(20),
            || {
                let m = agent.metrics();
                support::metric_sum(
                    &m,
                    "litellm_sentinel_probe_failures_total",
                    &[("target", "database")],
                ) >= 1.0
                    && support::metric_sum(&m, "litellm_sentinel_otlp_export_failures_total", &[])
                        >= 1.0
            },
        );
        // Reload 1: a TOML syntax error on the database_url line (unterminated string).
        let broken = body.replace(
            &format!("database_url = \"{db}\""),
            &format!("database_url = \"{db}"),
        );
        std::fs::write(&cfg, &broken).expect("broken config");
        wait_until("first reload rejected", Duration::from_secs(20), || {
            agent.log_text().matches("configuration rejected").count() >= 1
        });
        // Reload 2: a valid TOML file whose URLs are refused.
        let invalid = body
            .replace(
                "engine_url = \"http://",
                &format!("engine_url = \"https://u:{db_secret}@"),
            )
            .replace("otlp_endpoint = \"http://", "otlp_endpoint = \"https://");
        std::fs::write(&cfg, &invalid).expect("invalid config");
        wait_until("second reload rejected", Duration::from_secs(20), || {
            agent.log_text().matches("configuration rejected").count() >= 2
        });
        assert_hidden("/metrics", &agent.metrics(), &secrets);
        assert!(agent.sigterm().success());
        let text = std::fs::read_to_string(&log).expect("log");
        for needle in ["effective configuration", "TRACE", "database", "OTLP"] {
            assert!(
                text.contains(needle) || text.contains(&needle.to_lowercase()),
                "the agent log has no {needle:?} line (nothing tested):\n{text}"
            );
        }
        assert_hidden(
            &format!("the agent log ({format}) for {db} / {otlp}"),
            &text,
            &secrets,
        );
    }
}
