//! `litellm-sentinel report` as an SRE uses it after a bad rollout: stdin and
//! `kubectl logs --prefix` output, windows, exit codes for CI, the loss
//! ledger, and the HTML timeline loaded by a real browser (Debian's
//! headless Chromium). Every test runs the real binary.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_litellm-sentinel")
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rolling-deploy")
}

/// Runs `report ARGS` with `stdin` piped in.
fn report(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(bin())
        .arg("report")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn report");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // The report may exit before reading everything (usage errors).
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("report");
    writer.join().expect("stdin writer");
    out
}

fn ok_json(args: &[&str], stdin: &[u8]) -> (Value, String) {
    let out = report(args, stdin);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "report {args:?}: {err}");
    (
        serde_json::from_slice(&out.stdout).expect("report --json prints JSON"),
        err,
    )
}

/// The fixture as `kubectl logs --prefix [--timestamps]` prints it: one line
/// per record (partial CRI chunks joined), each pod's files in time order.
fn kubectl_prefix(timestamps: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pods: Vec<PathBuf> = std::fs::read_dir(fixture())
        .expect("fixture")
        .map(|e| e.expect("entry").path())
        .collect();
    pods.sort();
    for dir in pods {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let pod = name.split('_').nth(1).expect("pod name").to_string();
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("litellm"))
            .expect("container dir")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort_by_key(|f| (!f.to_string_lossy().ends_with(".gz"), f.clone()));
        for f in files {
            let mut data = Vec::new();
            let file = std::fs::File::open(&f).expect("open");
            if f.to_string_lossy().ends_with(".gz") {
                flate2::read::MultiGzDecoder::new(file)
                    .read_to_end(&mut data)
                    .expect("gunzip");
            } else {
                std::io::BufReader::new(file)
                    .read_to_end(&mut data)
                    .expect("read");
            }
            let mut partial = Vec::new();
            let lines: Vec<&[u8]> = data
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .collect();
            for (i, line) in lines.iter().enumerate() {
                let fields: Vec<&[u8]> = line.splitn(4, |b| *b == b' ').collect();
                let [ts, _stream, tag, msg] = fields[..] else {
                    continue;
                };
                partial.extend_from_slice(msg);
                // kubectl shows a partial record left at the end of a file as it is.
                if tag == b"P" && i + 1 < lines.len() {
                    continue;
                }
                out.extend_from_slice(format!("[pod/{pod}/litellm] ").as_bytes());
                if timestamps {
                    out.extend_from_slice(ts);
                    out.push(b' ');
                }
                out.append(&mut partial);
                out.push(b'\n');
            }
        }
    }
    out
}

/// Every count of every pod except what depends on the file layout.
fn counts_by_pod(v: &Value) -> BTreeMap<String, Value> {
    v["pods"]
        .as_array()
        .expect("pods")
        .iter()
        .map(|p| {
            let mut c = p["counts"].clone();
            let m = c.as_object_mut().expect("counts");
            m.remove("lines");
            m.remove("malformed_lines");
            let key = format!(
                "{}/{}",
                p["namespace"].as_str().unwrap(),
                p["pod"].as_str().unwrap()
            );
            (key, serde_json::json!({"counts": c, "starts": p["starts"]}))
        })
        .collect()
}

const HINT: &str = "gaps need record times: use `kubectl logs --timestamps`";

#[test]
fn kubectl_prefix_output_on_stdin_is_one_pod_per_prefix_with_the_numbers_of_the_files() {
    let dir = fixture();
    let (files, _) = ok_json(&["--json", dir.to_str().unwrap()], b"");
    let input = kubectl_prefix(true);
    let (piped, err) = ok_json(&["--json", "-n", "llm", "-"], &input);
    assert_eq!(counts_by_pod(&piped), counts_by_pod(&files));
    assert!(!err.contains(HINT), "{err}");
    let lines = input.iter().filter(|b| **b == b'\n').count();
    assert_eq!(piped["totals"]["lines"], lines);
    assert_eq!(piped["pods"].as_array().map(Vec::len), Some(3));
}

#[test]
fn without_timestamps_pods_still_split_and_one_line_says_why_gaps_are_missing() {
    let (v, err) = ok_json(&["--json", "-n", "llm", "-"], &kubectl_prefix(false));
    let pods = counts_by_pod(&v);
    assert_eq!(pods.len(), 3, "{pods:?}");
    assert_eq!(v["pods"][1]["counts"]["db_connect_errors"], 18);
    for p in v["pods"].as_array().unwrap() {
        assert!(
            p["starts"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["gap_seconds"].is_null() && s["listening_at"].is_null()),
            "{p}"
        );
    }
    let hints: Vec<&str> = err.lines().filter(|l| l.contains(HINT)).collect();
    assert_eq!(hints, vec![format!("hint: {HINT}")], "{err}");
}

#[test]
fn pod_flag_names_a_plain_file_and_stdin_gets_a_named_default() {
    let plain: Vec<u8> = kubectl_prefix(true)
        .split(|b| *b == b'\n')
        .filter(|l| l.starts_with(b"[pod/litellm-5d8f7c9b4-x2k4p/"))
        .flat_map(|l| {
            let at = l.iter().position(|b| *b == b']').unwrap() + 2;
            l[at..].iter().copied().chain(std::iter::once(b'\n'))
        })
        .collect();
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("kubectl-output.txt");
    std::fs::write(&file, &plain).expect("write");
    let (v, _) = ok_json(
        &["--json", "--pod", "llm/litellm-x", file.to_str().unwrap()],
        b"",
    );
    assert_eq!(v["pods"].as_array().unwrap().len(), 1);
    assert_eq!(
        (
            v["pods"][0]["namespace"].as_str(),
            v["pods"][0]["pod"].as_str()
        ),
        (Some("llm"), Some("litellm-x"))
    );
    assert_eq!(v["totals"]["db_connect_errors"], 18);
    let (v, err) = ok_json(&["--json", "-"], &plain);
    assert_eq!(v["pods"][0]["pod"], "stdin");
    assert!(err.contains("--pod NAMESPACE/NAME"), "{err}");
    let (v, err) = ok_json(&["--json", "--pod", "llm/litellm-x", "-"], &plain);
    assert_eq!(v["pods"][0]["pod"], "litellm-x");
    assert!(err.is_empty(), "{err}");
    // Paths that name their pod (the kubelet layout) keep it.
    let dir = fixture();
    let (v, _) = ok_json(
        &["--json", "--pod", "llm/litellm-x", dir.to_str().unwrap()],
        b"",
    );
    assert_eq!(v["pods"].as_array().map(Vec::len), Some(3));
    let bad = report(&["--pod", "Not A Pod", "-"], b"");
    assert_eq!(bad.status.code(), Some(2));
}

fn pod_names(v: &Value) -> Vec<String> {
    v["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pod"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn since_and_until_cut_the_input_and_durations_count_back_from_the_last_record() {
    let dir = fixture();
    let dir = dir.to_str().unwrap();
    // The last record is at 10:07:00: `3m` is 10:04:00.
    let (relative, _) = ok_json(&["--json", "--since", "3m", dir], b"");
    let (absolute, _) = ok_json(&["--json", "--since", "2026-11-24T10:04:00Z", dir], b"");
    assert_eq!(relative, absolute);
    assert_eq!(pod_names(&relative), vec!["litellm-5d8f7c9b4-z5n7r"]);
    assert_eq!(relative["window"]["since"], "2026-11-24T10:04:00.000000Z");
    assert_eq!(relative["totals"]["proxy_starts"], 2);
    // The same through stdin (read twice: spooled).
    let (piped, _) = ok_json(
        &["--json", "-n", "llm", "--since", "3m", "-"],
        &kubectl_prefix(true),
    );
    assert_eq!(counts_by_pod(&piped), counts_by_pod(&relative));
    let (early, _) = ok_json(&["--json", "--until", "2026-11-24T10:01:00Z", dir], b"");
    assert_eq!(pod_names(&early), vec!["litellm-5d8f7c9b4-x2k4p"]);
    assert_eq!(early["totals"]["spend_batches_dropped"], 5);
    assert!(early["window"]["since"].is_null());
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn exit_codes_tell_ci_what_happened() {
    let dir = fixture();
    let dir = dir.to_str().unwrap();
    let fail = report(&["--fail-on", "drops", dir], b"");
    assert_eq!(fail.status.code(), Some(1), "{}", stderr(&fail));
    let reason = stderr(&fail);
    assert_eq!(reason.lines().count(), 1, "{reason}");
    assert!(reason.contains("8 spend batches dropped"), "{reason}");
    assert!(
        String::from_utf8_lossy(&fail.stdout).contains("TOTAL"),
        "the report is still printed"
    );
    let gap = report(&["--fail-on", "gap>30s", dir], b"");
    assert_eq!(gap.status.code(), Some(1));
    assert!(
        stderr(&gap).contains("litellm-5d8f7c9b4-x2k4p had a start-up gap of 43.0s"),
        "{}",
        stderr(&gap)
    );
    for fine in [
        &["--fail-on", "gap>1m,outage"][..],
        &["--fail-on", "gap>45s", "--fail-on", "outage"],
    ] {
        let o = report(&[fine, &[dir]].concat(), b"");
        assert_eq!(o.status.code(), Some(0), "{fine:?}: {}", stderr(&o));
    }
    let windowed = report(
        &["--fail-on", "drops", "--since", "2026-11-24T10:06:00Z", dir],
        b"",
    );
    assert_eq!(
        windowed.status.code(),
        Some(0),
        "no drop after 10:06: {}",
        stderr(&windowed)
    );
    // Usage errors: 2.
    for usage in [
        &["--fail-on", "drop", dir][..],
        &["--fail-on", "gap>soon", dir],
        &["--since", "yesterday", dir],
        &[
            "--since",
            "2026-11-24T10:05:00Z",
            "--until",
            "2026-11-24T10:04:00Z",
            dir,
        ],
        &["-", "-"],
        &["--events-format", "csv", dir],
        &["--json", "--events", dir],
    ] {
        let o = report(usage, b"");
        assert_eq!(o.status.code(), Some(2), "{usage:?}: {}", stderr(&o));
    }
    // A relative window on an input without record times cannot be placed.
    let o = report(
        &["--since", "2h", "-"],
        b"INFO:     Application startup complete.\n",
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--timestamps"));
    // Unreadable input or output: 3, naming the path.
    let o = report(&["/nonexistent/litellm-logs"], b"");
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("/nonexistent/litellm-logs"));
    let o = report(&["--html", "/nonexistent/dir/out.html", dir], b"");
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("/nonexistent/dir/out.html"));
    // --help documents them.
    let help = Command::new(bin())
        .args(["report", "--help"])
        .output()
        .expect("help");
    let help = String::from_utf8_lossy(&help.stdout);
    for needle in [
        "Exit status:",
        "--fail-on",
        "gap>DURATION",
        "3  an input could not be read",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}

/// Sums of the ledger, keyed like the report's totals.
fn ledger_totals(lines: &[Value]) -> BTreeMap<String, u64> {
    let mut t = BTreeMap::new();
    for l in lines {
        let kind = l["kind"].as_str().expect("kind");
        let op = l["operation"].as_str().unwrap_or("");
        let key = match (kind, op) {
            ("db_connect_error", _) => "db_connect_errors",
            ("spend_batch_dropped", _) => "spend_batches_dropped",
            ("budget_cache_miss", _) => "budget_cache_misses",
            ("config_load_failure", "deployments") => "deployment_load_failures",
            ("config_load_failure", "credentials") => "credential_load_failures",
            ("engine_distro_fallback", _) => "engine_distro_fallbacks",
            ("spend_updates_failed", _) => "spend_updates_failed",
            ("engine_restart", _) => "engine_restarts",
            _ => "",
        };
        if !key.is_empty() {
            *t.entry(key.to_string()).or_default() += 1;
        }
        if kind == "db_connect_error" {
            *t.entry(format!("op:{op}")).or_default() += 1;
        }
        *t.entry("spend_rows_lost".into()).or_default() += l["rows_lost"].as_u64().unwrap();
        *t.entry("spend_rows_requeued".into()).or_default() += l["rows_requeued"].as_u64().unwrap();
    }
    t
}

fn report_totals(v: &Value, keys: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    let mut t: BTreeMap<String, u64> = keys
        .keys()
        .filter(|k| !k.starts_with("op:"))
        .map(|k| {
            (
                k.clone(),
                v["totals"][k]
                    .as_u64()
                    .unwrap_or_else(|| panic!("totals.{k}")),
            )
        })
        .collect();
    for p in v["pods"].as_array().unwrap() {
        for (op, n) in p["counts"]["db_connect_errors_by_operation"]
            .as_object()
            .unwrap()
        {
            *t.entry(format!("op:{op}")).or_default() += n.as_u64().unwrap();
        }
    }
    t
}

fn jsonl(out: &Output) -> Vec<Value> {
    assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[test]
fn ledger_totals_equal_the_report_and_each_line_points_at_its_source_line() {
    let dir = fixture();
    let dir = dir.to_str().unwrap();
    let events = jsonl(&report(&["--events", dir], b""));
    let (v, _) = ok_json(&["--json", dir], b"");
    let sums = ledger_totals(&events);
    assert_eq!(sums, report_totals(&v, &sums));
    assert!(sums["spend_batches_dropped"] > 0 && sums["db_connect_errors"] > 0);
    let mut times = Vec::new();
    for e in &events {
        for field in [
            "time",
            "namespace",
            "pod",
            "kind",
            "operation",
            "rows_lost",
            "rows_requeued",
            "rule",
            "file",
            "offset",
        ] {
            assert!(e.get(field).is_some(), "{field} missing: {e}");
        }
        assert!(
            e["rule"].is_string() || e["kind"] == "db_connect_error",
            "{e}"
        );
        times.push(e["time"].as_str().unwrap().to_string());
        let file = e["file"].as_str().unwrap();
        let mut data = Vec::new();
        let raw = std::fs::File::open(file).expect("the ledger names a readable file");
        if file.ends_with(".gz") {
            // Offsets of a compressed file count the decompressed bytes.
            flate2::read::MultiGzDecoder::new(raw)
                .read_to_end(&mut data)
                .expect("gunzip");
        } else {
            std::io::BufReader::new(raw)
                .read_to_end(&mut data)
                .expect("read");
        }
        let at = e["offset"].as_u64().unwrap() as usize;
        assert!(
            at == 0 || data[at - 1] == b'\n',
            "offset {at} is not a line start: {e}"
        );
        let line = data[at..].split(|b| *b == b'\n').next().unwrap();
        let line = String::from_utf8_lossy(line);
        match e["kind"].as_str().unwrap() {
            "proxy_listening" => assert!(line.contains("Uvicorn running"), "{line}"),
            "spend_batch_dropped" => assert!(line.contains("spend logs queue"), "{line}"),
            "budget_cache_miss" => assert!(line.contains("Budget lookup failed"), "{line}"),
            _ => {}
        }
    }
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "the ledger is in record order");
    // CSV: the same lines and sums.
    let csv = report(&["--events", "--events-format", "csv", dir], b"");
    let text = String::from_utf8_lossy(&csv.stdout);
    let mut rows = text.lines();
    assert_eq!(
        rows.next(),
        Some("time,namespace,pod,kind,operation,rows_lost,rows_requeued,rule,file,offset")
    );
    let rows: Vec<Vec<&str>> = rows.map(|r| r.split(',').collect()).collect();
    assert_eq!(rows.len(), events.len());
    let dropped = rows
        .iter()
        .filter(|r| r[3] == "spend_batch_dropped")
        .count() as u64;
    assert_eq!(dropped, sums["spend_batches_dropped"]);
}

#[test]
fn a_traceback_no_header_owns_is_pointed_at_by_its_first_line() {
    let input = b"[pod/litellm-0/litellm] 2026-11-24T10:00:00Z INFO:     Application startup complete.\n\
[pod/litellm-0/litellm] 2026-11-24T10:00:01Z Traceback (most recent call last):\n\
[pod/litellm-0/litellm] 2026-11-24T10:00:01Z   File \"/app/x.py\", line 1, in f\n\
[pod/litellm-0/litellm] 2026-11-24T10:00:01Z httpx.ConnectError: All connection attempts failed\n\
[pod/litellm-0/litellm] 2026-11-24T10:00:02Z INFO:     10.0.0.7:46642 - \"GET /v1/models HTTP/1.1\" 200 OK\n";
    let events = jsonl(&report(&["--events", "-"], input));
    let e = events
        .iter()
        .find(|e| e["kind"] == "db_connect_error")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(
        (
            e["operation"].as_str(),
            e["rule"].as_str(),
            e["file"].as_str()
        ),
        (Some("other"), None, Some("-"))
    );
    let at = e["offset"].as_u64().unwrap() as usize;
    assert!(
        input[at..].starts_with(b"[pod/litellm-0/litellm] 2026-11-24T10:00:01Z Traceback"),
        "offset {at}"
    );
}

#[test]
fn the_ledger_and_the_page_never_carry_log_text() {
    let secret = "sk-live-9f8e7d6c5b4a39281706";
    let input = format!(
        "[pod/litellm-0/litellm] 2026-11-24T10:00:00Z INFO:     Application startup complete.\n\
         [pod/litellm-0/litellm] 2026-11-24T10:00:01Z 10:00:01 - LiteLLM Proxy:ERROR: auth_checks.py:511 - Budget lookup failed for {secret}; cache will not be populated. Each request will hit the database. Error: All connection attempts failed.\n\
         [pod/litellm-0/litellm] 2026-11-24T10:00:02Z INFO:     10.0.0.7:46642 - \"POST /v1/chat/completions?key={secret} HTTP/1.1\" 200 OK\n"
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let html = tmp.path().join("out.html");
    let out = report(
        &["--events", "--html", html.to_str().unwrap(), "-"],
        input.as_bytes(),
    );
    let events = jsonl(&out);
    assert!(
        events.iter().any(|e| e["kind"] == "budget_cache_miss"),
        "{events:?}"
    );
    let page = std::fs::read_to_string(&html).expect("page");
    for (what, text) in [
        ("ledger", String::from_utf8_lossy(&out.stdout).to_string()),
        ("page", page),
    ] {
        assert!(!text.contains("sk-live"), "{what} leaks the line's text");
        assert!(
            !text.contains("Budget lookup failed"),
            "{what} copies log text"
        );
    }
}

/// Numbers of the table's TOTAL line, by their words.
fn table_totals(table: &str) -> BTreeMap<&'static str, u64> {
    let total = table
        .lines()
        .find(|l| l.starts_with("TOTAL:"))
        .expect("TOTAL line");
    let num = |after: &str| -> u64 {
        let i = total
            .find(after)
            .unwrap_or_else(|| panic!("{after} in {total}"));
        let head = total[..i].trim_end();
        let n = head.rsplit([' ', '(']).next().unwrap();
        n.parse().unwrap_or_else(|_| panic!("{n} before {after}"))
    };
    BTreeMap::from([
        ("pods", num(" pods")),
        ("proxy_starts", num(" starts")),
        ("spend_batches_dropped", num(" spend batches dropped")),
        ("spend_rows_lost", num(" rows lost")),
        ("spend_rows_requeued", num(" re-queued")),
        ("budget_cache_misses", num(" budget-cache misses")),
        ("db_connect_errors", num(" DB connect errors")),
        ("requests_during_gap", num(" requests served during a gap")),
        ("spend_updates_failed", num(" spend updates not applied")),
        ("db_outages", num(" mid-life DB outages")),
        ("requests_during_outage", num(" requests during them")),
        ("engine_restarts", num(" engine restarts")),
    ])
}

/// `data-total="KEY"><b>N</b>` cards of the page (or of Chromium's DOM).
fn page_totals(html: &str) -> BTreeMap<String, String> {
    let mut t = BTreeMap::new();
    let mut rest = html;
    while let Some(i) = rest.find("data-total=\"") {
        rest = &rest[i + 12..];
        let key = &rest[..rest.find('"').unwrap()];
        let b = rest.find("<b>").unwrap() + 3;
        let value = &rest[b..b + rest[b..].find("</b>").unwrap()];
        t.insert(key.to_string(), value.to_string());
    }
    t
}

/// The table, `--json`, `--events` and `--html` of one input agree.
fn same_numbers_everywhere(dir: &str) -> (Value, BTreeMap<String, String>) {
    let (v, _) = ok_json(&["--json", dir], b"");
    let table = report(&[dir], b"");
    let table = table_totals(&String::from_utf8_lossy(&table.stdout));
    let tmp = tempfile::tempdir().expect("tmp");
    let html = tmp.path().join("r.html");
    let events = jsonl(&report(
        &["--events", "--html", html.to_str().unwrap(), dir],
        b"",
    ));
    let page = page_totals(&std::fs::read_to_string(&html).expect("page"));
    let sums = ledger_totals(&events);
    for (key, n) in &table {
        let json = if *key == "pods" {
            v["pods"].as_array().unwrap().len() as u64
        } else {
            v["totals"][key].as_u64().unwrap()
        };
        assert_eq!(*n, json, "{dir}: table vs json: {key}");
    }
    for (key, value) in &page {
        let json = match key.as_str() {
            "pods" => v["pods"].as_array().unwrap().len().to_string(),
            "longest_gap" => continue,
            k => v["totals"][k].to_string(),
        };
        assert_eq!(*value, json, "{dir}: html vs json: {key}");
    }
    for (key, s) in &sums {
        if let Some(json) = v["totals"].get(key) {
            assert_eq!(Some(*s), json.as_u64(), "{dir}: ledger vs json: {key}");
        }
    }
    assert_eq!(sums, report_totals(&v, &sums), "{dir}: ledger vs json");
    (v, page)
}

#[test]
fn table_json_ledger_and_html_show_the_same_numbers() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let (v, page) = same_numbers_everywhere(fixtures.join("rolling-deploy").to_str().unwrap());
    assert_eq!(page["longest_gap"], "43.0s");
    assert!(v["totals"]["spend_batches_dropped"].as_u64() > Some(0));
    for key in [
        "spend_batches_dropped",
        "spend_rows_lost",
        "requests_during_gap",
        "db_outages",
        "spend_updates_failed",
        "engine_restarts",
    ] {
        assert!(page.contains_key(key), "the page has no {key} total");
    }
    // Newer versions: rows lost and re-queued, an outage, engine restarts, an open gap.
    let (v, page) = same_numbers_everywhere(fixtures.join("versions").to_str().unwrap());
    for key in [
        "spend_rows_lost",
        "spend_rows_requeued",
        "db_outages",
        "spend_updates_failed",
        "engine_restarts",
    ] {
        assert!(
            v["totals"][key].as_u64() > Some(0),
            "versions fixture lacks {key}: {v}"
        );
    }
    assert_eq!(page["longest_gap"], "2m 02s");
}

#[test]
fn outages_and_open_gaps_fail_ci_and_are_drawn() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let versions = fixtures.join("versions");
    let tmp = tempfile::tempdir().expect("tmp");
    let html = tmp.path().join("v.html");
    let o = report(
        &[
            "--fail-on",
            "outage",
            "--html",
            html.to_str().unwrap(),
            versions.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("outage: 1 mid-life DB outages in llm/litellm-7f9a1b2c3-w2rkq"),
        "{}",
        stderr(&o)
    );
    let o = report(&["--fail-on", "gap>2m", versions.to_str().unwrap()], b"");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("still open after 122.0s"),
        "{}",
        stderr(&o)
    );
    let o = report(
        &[
            "--fail-on",
            "outage",
            fixtures.join("rolling-deploy").to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "no outage in the rolling deploy: {}",
        stderr(&o)
    );
    let page = std::fs::read_to_string(&html).expect("page");
    let pods = &page[page.find(r#"<section class="pod""#).expect("pods")..];
    assert_eq!(
        pods.matches(r#"<rect class="outage""#).count(),
        1,
        "one outage bar"
    );
    assert_eq!(
        pods.matches(r#"<rect class="gap-open""#).count(),
        1,
        "one open gap"
    );
    assert_eq!(
        pods.matches(r#"<circle class="restart""#).count(),
        2,
        "two engine restarts"
    );
    assert!(pods.contains("1 spend update not applied") && pods.contains("1 batch, 25 rows"));
}

/// Runs a command, killing it when the deadline passes (a hung browser fails the test).
fn run_with_deadline(cmd: &mut Command, deadline: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {cmd:?}: {e} (Debian: apt-get install chromium; `make deps`)")
        });
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stdout.read_to_end(&mut b);
        b
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} did not finish within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = Vec::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_end(&mut stderr);
    }
    Output {
        status,
        stdout: reader.join().expect("reader"),
        stderr,
    }
}

fn chromium(profile: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("/usr/bin/chromium");
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--window-size=1200,1400",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args);
    c
}

/// Luminance variance and share of pixels away from the background, from a
/// PNG decoded by python3's zlib (8-bit RGB/RGBA, as Chromium writes them).
fn picture_stats(png: &Path) -> (f64, f64) {
    const DECODE: &str = r#"
import struct, sys, zlib
data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
pos, idat, w, h, ctype = 8, b'', 0, 0, 0
while pos < len(data):
    n, kind = struct.unpack('>I4s', data[pos:pos + 8]); body = data[pos + 8:pos + 8 + n]; pos += 12 + n
    if kind == b'IHDR':
        w, h, depth, ctype, _, _, interlace = struct.unpack('>IIBBBBB', body)
        assert depth == 8 and ctype in (2, 6) and interlace == 0, (depth, ctype, interlace)
    elif kind == b'IDAT':
        idat += body
bpp = 4 if ctype == 6 else 3
raw = zlib.decompress(idat); stride = w * bpp; prev = bytearray(stride); lum = []
for y in range(h):
    f = raw[y * (stride + 1)]; line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0; b = prev[i]; c = prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    prev = line
    lum.extend((299 * line[x] + 587 * line[x + 1] + 114 * line[x + 2]) // 1000 for x in range(0, stride, bpp * 2))
mean = sum(lum) / len(lum); bg = max(set(lum), key=lum.count)
print(sum((v - mean) ** 2 for v in lum) / len(lum), sum(1 for v in lum if abs(v - bg) > 24) / len(lum))
"#;
    let out = Command::new("python3")
        .args(["-c", DECODE])
        .arg(png)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "decode {}: {}",
        png.display(),
        stderr(&out)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text
        .split_whitespace()
        .map(|n| n.parse::<f64>().expect("number"));
    (it.next().expect("variance"), it.next().expect("share"))
}

#[test]
fn html_timeline_renders_in_headless_chromium() {
    let dir = fixture();
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/report-html");
    std::fs::create_dir_all(&shots).expect("target/report-html");
    let html = shots.join("rolling-deploy.html");
    let (v, _) = ok_json(
        &[
            "--json",
            "--html",
            html.to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
        b"",
    );
    let page = std::fs::read_to_string(&html).expect("page");
    for forbidden in [
        "<script", "http://", "https://", "src=", "@import", "url(http",
    ] {
        assert!(
            !page.contains(forbidden),
            "the page must be self-contained: {forbidden}"
        );
    }
    let deadline = Duration::from_secs(90);
    for (name, extra) in [
        ("rolling-deploy.png", None),
        ("rolling-deploy-dark.png", Some("--force-dark-mode")),
    ] {
        let profile = tempfile::tempdir().expect("profile");
        let png = shots.join(name);
        let _ = std::fs::remove_file(&png);
        let shot = format!("--screenshot={}", png.display());
        let url = format!("file://{}", html.display());
        let mut args = vec![shot.as_str()];
        args.extend(extra);
        args.push(&url);
        let out = run_with_deadline(&mut chromium(profile.path(), &args), deadline);
        assert!(
            out.status.success() && png.exists(),
            "chromium screenshot: {}",
            stderr(&out)
        );
        let (variance, drawn) = picture_stats(&png);
        assert!(
            variance > 50.0,
            "{name} looks blank: luminance variance {variance}"
        );
        assert!(
            drawn > 0.02,
            "{name}: only {:.1}% of the pixels differ from the background",
            drawn * 100.0
        );
    }
    // The measure tells a blank page from a drawn one.
    let blank = shots.join("blank.html");
    std::fs::write(&blank, "<!DOCTYPE html><html><body></body></html>").expect("blank");
    let profile = tempfile::tempdir().expect("profile");
    let png = shots.join("blank.png");
    let shot = format!("--screenshot={}", png.display());
    let url = format!("file://{}", blank.display());
    let out = run_with_deadline(&mut chromium(profile.path(), &[&shot, &url]), deadline);
    assert!(out.status.success(), "{}", stderr(&out));
    let (variance, drawn) = picture_stats(&png);
    assert!(
        variance < 1.0 && drawn < 0.001,
        "a blank page measures {variance} / {drawn}"
    );
    let profile = tempfile::tempdir().expect("profile");
    let url = format!("file://{}", html.display());
    let dom = run_with_deadline(
        &mut chromium(profile.path(), &["--dump-dom", &url]),
        deadline,
    );
    assert!(dom.status.success(), "{}", stderr(&dom));
    let dom = String::from_utf8_lossy(&dom.stdout);
    for p in v["pods"].as_array().unwrap() {
        let name = format!(
            "{}/{}",
            p["namespace"].as_str().unwrap(),
            p["pod"].as_str().unwrap()
        );
        assert!(
            dom.contains(&format!("data-pod=\"{name}\"")),
            "{name} missing from the DOM"
        );
    }
    let totals = page_totals(&dom);
    for key in [
        "proxy_starts",
        "spend_batches_dropped",
        "spend_rows_lost",
        "requests_during_gap",
        "db_connect_errors",
        "budget_cache_misses",
    ] {
        assert_eq!(
            totals.get(key),
            Some(&v["totals"][key].to_string()),
            "{key} in the DOM"
        );
    }
    assert_eq!(
        dom.matches("<svg viewBox").count(),
        3,
        "one timeline per pod"
    );
    // Newer versions: an open gap, an outage and engine restarts, for a person to look at.
    let versions = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/versions");
    let html = shots.join("versions.html");
    let (v, _) = ok_json(
        &[
            "--json",
            "--html",
            html.to_str().unwrap(),
            versions.to_str().unwrap(),
        ],
        b"",
    );
    let png = shots.join("versions.png");
    let _ = std::fs::remove_file(&png);
    let profile = tempfile::tempdir().expect("profile");
    let shot = format!("--screenshot={}", png.display());
    let url = format!("file://{}", html.display());
    let out = run_with_deadline(&mut chromium(profile.path(), &[&shot, &url]), deadline);
    assert!(
        out.status.success() && png.exists(),
        "chromium screenshot: {}",
        stderr(&out)
    );
    let (variance, drawn) = picture_stats(&png);
    assert!(
        variance > 50.0 && drawn > 0.02,
        "versions.png looks blank: {variance} / {drawn}"
    );
    let profile = tempfile::tempdir().expect("profile");
    let dom = run_with_deadline(
        &mut chromium(profile.path(), &["--dump-dom", &url]),
        deadline,
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    let totals = page_totals(&dom);
    for key in [
        "db_outages",
        "requests_during_outage",
        "spend_updates_failed",
        "engine_restarts",
        "spend_rows_lost",
    ] {
        assert_eq!(
            totals.get(key),
            Some(&v["totals"][key].to_string()),
            "{key} in the DOM"
        );
    }
    assert!(dom.contains(r#"<rect class="outage""#) && dom.contains(r#"<rect class="gap-open""#));
}
