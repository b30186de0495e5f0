//! The buffer scanner ([`Pipeline::block`]) against the line-by-line path
//! ([`Pipeline::line`] on every line): the same bytes must give the same
//! tracker (every count, start, gap and outage), the same malformed counts
//! and the same checkpointed per-file state, on generated inputs (literals
//! cut by CRI `P`/`F` splits, hidden behind ANSI codes and JSON escapes,
//! JSON_LOGS lines, tracebacks, malformed and over-long lines, any read
//! chunking) and on every fixture of the repository.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use litellm_sentinel::classify::RulePack;
use litellm_sentinel::format::PodRef;
use litellm_sentinel::pipeline::Pipeline;
use litellm_sentinel::tail::lines::{LineHandler, LineSplitter};
use litellm_sentinel::tail::{FileId, FileKey, FilePosition};
use litellm_sentinel::timeline::{SharedTracker, TimelineConfig, Tracker};
use proptest::prelude::*;

/// What one run leaves behind, with wall-clock fields removed.
#[derive(Debug, PartialEq)]
struct Outcome {
    tracker: serde_json::Value,
    malformed: BTreeMap<String, u64>,
    /// Per-file checkpoint state after each file (decoder partials, folds).
    states: Vec<String>,
    lines: u64,
}

fn rules() -> Arc<RulePack> {
    static PACK: std::sync::OnceLock<Arc<RulePack>> = std::sync::OnceLock::new();
    PACK.get_or_init(|| Arc::new(RulePack::builtin().expect("built-in pack")))
        .clone()
}

/// Drops the wall-clock fields (`last_activity`), which differ between any two runs.
fn without_wall_clock(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.remove("last_activity");
            m.values_mut().for_each(without_wall_clock);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(without_wall_clock),
        _ => {}
    }
}

/// Feeds the splitter's output to the pipeline: blocks to the scanner, or
/// (reference) every line on its own.
struct Feed<'a> {
    pipeline: &'a mut Pipeline,
    key: FileKey,
    scan: bool,
    lines: u64,
}

impl LineHandler for Feed<'_> {
    fn line(&mut self, line: &[u8], truncated: bool) {
        self.lines += 1;
        self.pipeline.line(self.key, line, truncated);
    }

    fn block(&mut self, _at: u64, block: &[u8], cap: usize) {
        if self.scan {
            self.lines += self.pipeline.block(self.key, block, cap);
        } else {
            litellm_sentinel::tail::lines::for_each_capped(block, cap, &mut |_, l, t| {
                self.lines += 1;
                self.pipeline.line(self.key, l, t);
            });
        }
    }
}

/// One pod's files, in order, read in chunks of the given sizes (cycled),
/// the pod's clock advanced after each chunk as the live tailer does.
fn run(files: &[Vec<u8>], chunks: &[usize], cap: usize, scan: bool) -> Outcome {
    let tracker = SharedTracker::new(Tracker::new(TimelineConfig {
        quiet_period_secs: 60.0,
        max_pods: usize::MAX,
        starts_kept: usize::MAX,
        ..Default::default()
    }));
    let mut pipeline = Pipeline::new(rules(), tracker.clone(), cap, Vec::new());
    let pod = PodRef::new("llm", "litellm-0");
    let mut states = Vec::new();
    let mut lines = 0;
    for (i, data) in files.iter().enumerate() {
        let key = FileKey {
            dev: 1,
            ino: i as u64 + 1,
        };
        pipeline.open(key, None, pod.clone());
        let mut splitter = LineSplitter::new(cap);
        let mut feed = Feed {
            pipeline: &mut pipeline,
            key,
            scan,
            lines: 0,
        };
        let mut at = 0;
        let mut n = 0;
        while at < data.len() {
            let size = chunks[n % chunks.len()].max(1);
            n += 1;
            let end = (at + size).min(data.len());
            splitter.feed(&data[at..end], &mut feed);
            feed.pipeline.advance_clocks();
            at = end;
        }
        let state = feed.pipeline.file_states(vec![FilePosition {
            id: FileId {
                dev: key.dev,
                ino: key.ino,
                fingerprint: None,
            },
            path: PathBuf::from("x"),
            offset: 0,
        }]);
        states.push(serde_json::to_string(&state).expect("serializes"));
        splitter.finish(&mut feed);
        lines += feed.lines;
        pipeline.close(key);
    }
    let malformed = pipeline
        .take_counts()
        .malformed
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    drop(pipeline);
    let snapshot = tracker.lock().snapshot();
    let mut tracker = serde_json::to_value(&snapshot).expect("serializes");
    without_wall_clock(&mut tracker);
    Outcome {
        tracker,
        malformed,
        states,
        lines,
    }
}

fn assert_same(files: &[Vec<u8>], chunks: &[usize], cap: usize) -> Outcome {
    let reference = run(files, chunks, cap, false);
    let scanned = run(files, chunks, cap, true);
    assert_eq!(scanned, reference);
    reference
}

// ----- fixtures ---------------------------------------------------------------

/// Every container directory under `root` (files in rotation order, `.gz`
/// decompressed), as the report reads them.
fn fixture_pods(root: &Path) -> Vec<(PathBuf, Vec<Vec<u8>>)> {
    let mut dirs = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut logs = Vec::new();
        for e in std::fs::read_dir(&dir).expect("fixture dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().contains(".log") {
                logs.push(p);
            }
        }
        if !logs.is_empty() {
            // Rotated generations (`0.log.<ts>.gz`) before the live `0.log`, restarts in order.
            logs.sort_by_key(|p| {
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
                let name = name.unwrap_or_default();
                (
                    name.split('.').next().map(str::to_owned),
                    name.ends_with(".log"),
                )
            });
            let files = logs
                .iter()
                .map(|p| {
                    let raw = std::fs::read(p).expect("fixture");
                    if p.extension().is_some_and(|e| e == "gz") {
                        let mut out = Vec::new();
                        std::io::Read::read_to_end(
                            &mut flate2::read::MultiGzDecoder::new(&raw[..]),
                            &mut out,
                        )
                        .expect("gunzip");
                        out
                    } else {
                        raw
                    }
                })
                .collect();
            dirs.push((dir, files));
        }
    }
    dirs.sort();
    dirs
}

#[test]
fn every_fixture_gives_the_same_numbers_both_ways() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pods = 0;
    let mut events_seen = false;
    for fixtures in [
        "tests/fixtures/rolling-deploy",
        "tests/fixtures/versions",
        "tests/litellm/fixtures",
    ] {
        let found = fixture_pods(&root.join(fixtures));
        assert!(!found.is_empty(), "no log files under {fixtures}");
        for (dir, files) in found {
            // Whole files, 4 KiB reads, and reads cutting lines anywhere.
            for chunks in [&[1 << 20][..], &[4096], &[97, 1, 5000, 13]] {
                let out = assert_same(&files, chunks, 256 * 1024);
                assert!(out.lines > 0, "{}", dir.display());
                events_seen |= out.tracker.to_string().contains("db_connect_errors");
            }
            pods += 1;
        }
    }
    assert!(pods >= 8, "{pods} fixture pods");
    assert!(events_seen, "the fixtures hold DB errors");
}

// ----- generated inputs -------------------------------------------------------

/// Messages of a LiteLLM pod: ordinary lines and the race's own.
const MESSAGES: &[&str] = &[
    "INFO:     10.0.0.7:46642 - \"POST /v1/chat/completions HTTP/1.1\" 200 OK",
    "INFO:     10.0.0.7:46642 - \"GET /health/readiness HTTP/1.1\" 200 OK",
    "INFO:     10.0.0.7:46642 - \"POST /v1/embeddings HTTP/1.1\" 429 Too Many Requests",
    "18:33:49 - LiteLLM Proxy:INFO: proxy_server.py:4012 - Request received for model=gpt-4o-mini",
    "18:33:50 - LiteLLM Router:INFO: router.py:1085 - litellm.acompletion(model=azure/gpt-4o-mini-eu) 200 OK",
    "INFO:     Started server process [7]",
    "INFO:     Waiting for application startup.",
    "INFO:     Application startup complete.",
    "INFO:     Uvicorn running on http://0.0.0.0:4000 (Press CTRL+C to quit)",
    "INFO:     Shutting down",
    "18:33:49 - LiteLLM Proxy:ERROR: utils.py:2721 - Error in spend logs queue monitor: All connection attempts failed",
    "18:33:49 - LiteLLM Proxy:ERROR: utils.py:2721 - Error in spend logs queue monitor: boom",
    "18:33:4 - LiteLLM Proxy:WARNING: utils.py:3000 - Spend tracking - DB connection error writing spend logs, retry 4/3. logs_count=37, error=All connection attempts failed",
    "Budget lookup failed for user; cache will not be populated. Each request will hit the database.",
    "Error: All connection attempts failed",
    "LiteLLM Prisma Client Exception get_generic_data: All connection attempts failed",
    "Job \"update_spend (trigger: interval[0:00:10], next run at: 2026-11-24 10:15:10 UTC)\" raised an exception",
    "litellm.APIConnectionError: OllamaException - All connection attempts failed",
    "Traceback (most recent call last):",
    "  File \"/usr/lib/python3.13/site-packages/httpx/_transports/default.py\", line 101, in map",
    "    raise exc from None",
    "httpcore.ConnectError: All connection attempts failed",
    "",
    "The above exception was the direct cause of the following exception:",
    "httpx.ConnectError: All connection attempts failed",
    "Sent SIGKILL to prisma-query-engine PID 123 (did not exit after SIGTERM).",
    "prisma:warn Prisma doesn't know which engines to download for the Linux distro \"wolfi\".",
    "sorry, too many clients already",
];

/// How one record is written.
#[derive(Clone, Debug)]
enum Dress {
    Plain,
    /// An ANSI colour code inserted at this byte (maybe inside a literal).
    Ansi(usize),
    /// JSON_LOGS: `{"message": …}`; the flag escapes one character as `\u00XX`.
    Json {
        unicode_at: Option<usize>,
        slash: bool,
        stack: bool,
    },
}

#[derive(Clone, Debug)]
struct Rec {
    msg: usize,
    dress: Dress,
    stderr: bool,
    /// Seconds since the previous record (large steps close quiet periods; 0 and back steps too).
    step_ms: i64,
    /// CRI `P` cuts inside the message.
    cuts: Vec<usize>,
    /// Replaces the record by a malformed line.
    malformed: Option<u8>,
}

fn rec() -> impl Strategy<Value = Rec> {
    let dress = prop_oneof![
        6 => Just(Dress::Plain),
        1 => any::<usize>().prop_map(Dress::Ansi),
        2 => (proptest::option::of(any::<usize>()), any::<bool>(), any::<bool>())
            .prop_map(|(unicode_at, slash, stack)| Dress::Json { unicode_at, slash, stack }),
    ];
    let step = prop_oneof![
        8 => 0i64..2_000,
        1 => 60_000i64..200_000,
        1 => -1_500i64..0,
    ];
    let cuts = prop_oneof![
        6 => Just(Vec::new()),
        1 => proptest::collection::vec(any::<usize>(), 1..4),
    ];
    let malformed = prop_oneof![20 => Just(None), 1 => (0u8..6).prop_map(Some)];
    (
        0..MESSAGES.len(),
        dress,
        any::<bool>(),
        step,
        cuts,
        malformed,
    )
        .prop_map(|(msg, dress, stderr, step_ms, cuts, malformed)| Rec {
            msg,
            dress,
            stderr,
            step_ms,
            cuts,
            malformed,
        })
}

fn cri_ts(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (h, m, s) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let frac = ms.rem_euclid(1000);
    if frac == 0 {
        format!("2026-11-24T{h:02}:{m:02}:{s:02}Z")
    } else {
        format!("2026-11-24T{h:02}:{m:02}:{s:02}.{frac:03}Z")
    }
}

/// The text of one record as the pod wrote it (before CRI framing).
fn dressed(r: &Rec) -> Vec<u8> {
    let msg = MESSAGES[r.msg];
    match &r.dress {
        Dress::Plain => msg.as_bytes().to_vec(),
        Dress::Ansi(at) => {
            let at = (0..=msg.len())
                .filter(|&i| msg.is_char_boundary(i))
                .nth(at % (msg.len() + 1))
                .unwrap_or(0);
            format!("{}\x1b[31m{}\x1b[0m", &msg[..at], &msg[at..]).into_bytes()
        }
        Dress::Json {
            unicode_at,
            slash,
            stack,
        } => {
            let mut value = serde_json::json!({"message": msg, "level": "ERROR", "timestamp": "2026-11-24T18:27:15.595834"});
            if *stack {
                value["stacktrace"] = serde_json::Value::from(
                    "Traceback (most recent call last):\n  File \"/app/utils.py\", line 2712, in monitor\nhttpx.ConnectError: All connection attempts failed\n",
                );
            }
            let mut text = value.to_string();
            if *slash {
                text = text.replace('/', "\\/");
            }
            if let Some(at) = unicode_at {
                // Escape one ASCII letter of the message as `\u00XX` (valid JSON).
                let start = text.find(msg).unwrap_or(0);
                let letters: Vec<usize> = (start..start + msg.len())
                    .filter(|&i| text.as_bytes()[i].is_ascii_alphabetic())
                    .collect();
                if let Some(&i) = letters.get(at % letters.len().max(1)) {
                    let c = text.as_bytes()[i];
                    text.replace_range(i..i + 1, &format!("\\u{c:04x}"));
                }
            }
            text.into_bytes()
        }
    }
}

/// A CRI file of the records (timestamps from `start_ms`).
fn cri_file(recs: &[Rec], start_ms: i64, cap: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut t = start_ms;
    for r in recs {
        t = (t + r.step_ms).max(0);
        let stream = if r.stderr { "stderr" } else { "stdout" };
        let text = dressed(r);
        if let Some(kind) = r.malformed {
            let line: Vec<u8> = match kind {
                0 => format!("2026-13-45T99:99:99Z {stream} F ").into_bytes(),
                1 => format!("{} stdin F ", cri_ts(t)).into_bytes(),
                2 => b"garbage from a truncated write ".to_vec(),
                3 => format!("{} {stream} F a\0b ", cri_ts(t)).into_bytes(),
                4 => format!("{} {stream} F {}", cri_ts(t), "x".repeat(cap)).into_bytes(),
                _ => format!("\0\0\0{} {stream} F ", cri_ts(t)).into_bytes(),
            };
            out.extend_from_slice(&line);
            out.extend_from_slice(&text);
            out.push(b'\n');
            continue;
        }
        let mut bounds: Vec<usize> = r.cuts.iter().map(|c| c % (text.len() + 1)).collect();
        bounds.sort_unstable();
        bounds.dedup();
        bounds.push(text.len());
        let mut from = 0;
        for (i, &end) in bounds.iter().enumerate() {
            let tag = if i + 1 == bounds.len() { "F" } else { "P" };
            out.extend_from_slice(format!("{} {stream} {tag} ", cri_ts(t)).as_bytes());
            out.extend_from_slice(&text[from..end]);
            out.push(b'\n');
            from = end;
        }
    }
    out
}

/// The same records as plain text (`kubectl logs`, optionally `--timestamps`).
fn plain_file(recs: &[Rec], start_ms: i64, timestamps: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut t = start_ms;
    for r in recs {
        t = (t + r.step_ms).max(0);
        if timestamps {
            out.extend_from_slice(format!("{} ", cri_ts(t)).as_bytes());
        }
        out.extend_from_slice(&dressed(r));
        out.push(b'\n');
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn buffer_scan_equals_line_by_line(
        files in proptest::collection::vec(proptest::collection::vec(rec(), 0..120), 1..3),
        chunks in proptest::collection::vec(1usize..3000, 1..4),
        format in 0u8..4,
        small_cap in any::<bool>(),
    ) {
        let cap = if small_cap { 180 } else { 64 * 1024 };
        let data: Vec<Vec<u8>> = files
            .iter()
            .enumerate()
            .map(|(i, recs)| {
                let start = 36_000_000 + i as i64 * 3_600_000;
                match format {
                    0 | 1 => cri_file(recs, start, cap),
                    2 => plain_file(recs, start, true),
                    _ => plain_file(recs, start, false),
                }
            })
            .collect();
        let reference = run(&data, &chunks, cap, false);
        let scanned = run(&data, &chunks, cap, true);
        prop_assert_eq!(scanned, reference);
    }
}
