//! Throughput of the offline pipeline on a realistic LiteLLM corpus.
//!
//! `cargo bench` (divan) reports bytes per second for:
//! - `classify::*`: the built-in rule pack over decoded records (all records,
//!   and only the ~99 % "ordinary" ones that carry no race event),
//! - `decode::cri`: CRI framing, `P`/`F` joining, JSON_LOGS and ANSI handling,
//! - `decode_and_classify`: both, as the per-line hot path of live tailing,
//! - `report::run`: the whole `litellm-sentinel report` path over files
//!   (read, split, decode, classify, fold, timelines), written once to a
//!   temporary directory.
//!
//! The corpus is generated in memory, deterministically: ~99 % Uvicorn access
//! lines, health probes, LiteLLM INFO lines with ANSI colours and long
//! JSON_LOGS lines (some over 16 KiB, split into `P`/`F` records), ~1 %
//! start-up race lines with their tracebacks (some headers split across
//! `P`/`F` records). `BENCH_CORPUS_MB` sets its size (default 16).
//! bench/compare.sh compares the release binary with mtail and ripgrep.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use divan::counter::BytesCount;
use divan::{black_box, Bencher};
use litellm_sentinel::classify::{ClassifyState, RulePack};
use litellm_sentinel::format::decoder::Decoder;
use litellm_sentinel::format::{Format, MalformedReason, Record, RecordSink, Stream};
use litellm_sentinel::report::{self, ReportOptions};
use litellm_sentinel::time::Timestamp;

fn main() {
    // Generate (and describe) the corpus before divan prints its table.
    LazyLock::force(&CORPUS);
    divan::main();
}

const PODS: usize = 10;
const MAX_LINE_BYTES: usize = 256 * 1024;
const CONTAINERD_SPLIT: usize = 16 * 1024;

const TRACE: [&str; 16] = [
    "Traceback (most recent call last):",
    "  File \"/usr/lib/python3.13/site-packages/httpx/_transports/default.py\", line 101, in map_httpcore_exceptions",
    "    yield",
    "  File \"/usr/lib/python3.13/site-packages/httpcore/_async/connection_pool.py\", line 256, in handle_async_request",
    "    raise exc from None",
    "httpcore.ConnectError: All connection attempts failed",
    "",
    "The above exception was the direct cause of the following exception:",
    "",
    "Traceback (most recent call last):",
    "  File \"/usr/lib/python3.13/site-packages/litellm/proxy/utils.py\", line 3880, in update_spend_logs",
    "    await prisma_client.db.litellm_spendlogs.create_many(data=batch_with_dates, skip_duplicates=True)",
    "  File \"/usr/lib/python3.13/site-packages/prisma/engine/http.py\", line 97, in request",
    "    response = await self.session.request(method, url, **kwargs)",
    "               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
    "httpx.ConnectError: All connection attempts failed",
];

const WORDS: [&str; 24] = [
    "the",
    "model",
    "returned",
    "a",
    "streaming",
    "chunk",
    "with",
    "usage",
    "tokens",
    "prompt",
    "completion",
    "assistant",
    "content",
    "tool",
    "call",
    "arguments",
    "gpt-4o-mini",
    "router",
    "deployment",
    "latency",
    "caf\\u00e9",
    "region",
    "eastus",
    "finish_reason=stop",
];

const INFO: [&str; 5] = [
    "proxy_server.py:3922 - Request received by LiteLLM: model=gpt-4o-mini, user=team-billing",
    "router.py:1050 - litellm.acompletion(model=azure/gpt-4o) 200 OK",
    "utils.py:1213 - Inside async function with retries: model=claude-sonnet, attempts=1",
    "cost_calculator.py:652 - Returned custom cost for model=gpt-4o: 0.00125",
    "caching_handler.py:210 - Cache hit (données en cache, Grüße)",
];

/// A tiny deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Writes CRI lines for one pod with an advancing record clock.
struct PodLog {
    out: Vec<u8>,
    ns: u64,
    rng: Rng,
    event_lines: usize,
    lines: usize,
}

impl PodLog {
    fn stamp(&self) -> String {
        let secs = self.ns / 1_000_000_000;
        let frac = self.ns % 1_000_000_000;
        let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
        format!("2026-11-24T{h:02}:{m:02}:{s:02}.{frac:09}Z")
    }

    fn put(&mut self, stream: &str, tag: &str, text: &str, event: bool) {
        let stamp = self.stamp();
        let _ = writeln!(Sink(&mut self.out), "{stamp} {stream} {tag} {text}");
        self.ns += 1_000_000 + self.rng.below(18_000_000);
        self.lines += 1;
        if event {
            self.event_lines += 1;
        }
    }

    fn ip(&mut self) -> String {
        format!(
            "10.{}.{}.{}:{}",
            self.rng.below(4),
            self.rng.below(256),
            1 + self.rng.below(254),
            32768 + self.rng.below(28000)
        )
    }

    fn ordinary(&mut self) {
        let r = self.rng.below(100);
        if r < 52 {
            let path = [
                "/v1/chat/completions",
                "/chat/completions",
                "/v1/embeddings",
                "/v1/models",
            ][self.rng.below(4) as usize];
            let line = format!("INFO:     {} - \"POST {path} HTTP/1.1\" 200 OK", self.ip());
            self.put("stdout", "F", &line, false);
        } else if r < 70 {
            let path =
                ["/health/readiness", "/health/liveliness", "/metrics"][self.rng.below(3) as usize];
            let line = format!("INFO:     {} - \"GET {path} HTTP/1.1\" 200 OK", self.ip());
            self.put("stdout", "F", &line, false);
        } else if r < 77 {
            let line = format!(
                "INFO:     {} - \"POST /v1/chat/completions HTTP/1.1\" 429 Too Many Requests",
                self.ip()
            );
            self.put("stdout", "F", &line, false);
        } else if r < 92 {
            let info = INFO[self.rng.below(INFO.len() as u64) as usize];
            let (at, msg) = info
                .split_once(" - ")
                .unwrap_or(("proxy_server.py:1", info));
            let line = format!("\x1b[92m10:15:02 - LiteLLM Proxy:INFO\x1b[0m: {at} - {msg}");
            self.put("stderr", "F", &line, false);
        } else {
            self.json_line();
        }
    }

    fn json_line(&mut self) {
        let words = if self.rng.below(64) == 0 {
            3000 + self.rng.below(3000) // > 16 KiB: split by containerd
        } else {
            20 + self.rng.below(130)
        };
        let mut msg = String::from("litellm.acompletion(model=gpt-4o-mini) 200 OK - messages=");
        for _ in 0..words {
            msg.push_str(WORDS[self.rng.below(WORDS.len() as u64) as usize]);
            msg.push(' ');
        }
        let line = format!(
            "{{\"message\": \"{msg}\", \"level\": \"INFO\", \"timestamp\": \"2026-11-24T10:15:02.123456\", \"component\": \"LiteLLM Router\"}}"
        );
        let chunks: Vec<&str> = line
            .as_bytes()
            .chunks(CONTAINERD_SPLIT)
            .map(|c| std::str::from_utf8(c).unwrap_or(""))
            .collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let tag = if i + 1 == chunks.len() { "F" } else { "P" };
            self.put("stdout", tag, chunk, false);
        }
    }

    /// One race event on stderr (after an ordinary stderr line that ends any fold).
    fn event(&mut self) {
        self.put(
            "stderr",
            "F",
            "\x1b[92m10:15:02 - LiteLLM Proxy:INFO\x1b[0m: router.py:1050 - litellm.acompletion(model=azure/gpt-4o) 200 OK",
            false,
        );
        match self.rng.below(5) {
            0 | 1 => {
                let header = "\x1b[92m10:15:02 - LiteLLM Proxy:ERROR\x1b[0m: utils.py:3905 - Error in spend logs queue monitor: All connection attempts failed";
                if self.rng.chance(10) {
                    // Cut inside the key phrase, as CRI-O does at a read boundary.
                    let (a, b) = header.split_at(60);
                    self.put("stderr", "P", a, true);
                    self.ordinary();
                    self.put("stderr", "F", b, true);
                } else {
                    self.put("stderr", "F", header, true);
                }
                for line in TRACE {
                    self.put("stderr", "F", line, true);
                }
            }
            2 => self.put("stderr", "F", "\x1b[92m10:15:02 - LiteLLM Proxy:ERROR\x1b[0m: utils.py:2721 - LiteLLM Prisma Client Exception get_generic_data: All connection attempts failed", true),
            3 => self.put("stderr", "F", "\x1b[92m10:15:02 - LiteLLM Proxy:WARNING\x1b[0m: auth_checks.py:511 - Budget lookup failed for user; cache will not be populated. Each request will hit the database. Error: All connection attempts failed.", true),
            _ => self.put("stderr", "F", "INFO:     Uvicorn running on http://0.0.0.0:4000 (Press CTRL+C to quit)", true),
        }
    }

    fn fill(&mut self, bytes: usize) {
        while self.out.len() < bytes {
            // ~1 % of the lines are race events: one event (≈ 7.4 lines on
            // average, tracebacks included) per ~700 ordinary lines.
            if self.rng.below(700) == 0 {
                self.event();
            } else {
                self.ordinary();
            }
        }
    }
}

/// `fmt::Write` into a byte vector.
struct Sink<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Sink<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The generated corpus: one CRI byte stream per pod.
struct Corpus {
    pods: Vec<Vec<u8>>,
    bytes: usize,
    lines: usize,
    event_lines: usize,
}

static CORPUS: LazyLock<Corpus> = LazyLock::new(|| {
    let mb: usize = std::env::var("BENCH_CORPUS_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let per_pod = mb * 1024 * 1024 / PODS;
    let mut corpus = Corpus {
        pods: Vec::new(),
        bytes: 0,
        lines: 0,
        event_lines: 0,
    };
    for pod in 0..PODS {
        let mut log = PodLog {
            out: Vec::with_capacity(per_pod + 64 * 1024),
            ns: 36_000_000_000_000 + pod as u64 * 7_000_000_000,
            rng: Rng(0x9E37_79B9_7F4A_7C15 ^ (pod as u64 + 1)),
            event_lines: 0,
            lines: 0,
        };
        log.fill(per_pod);
        corpus.bytes += log.out.len();
        corpus.lines += log.lines;
        corpus.event_lines += log.event_lines;
        corpus.pods.push(log.out);
    }
    eprintln!(
        "corpus: {:.1} MiB, {} lines, {:.2} % race lines",
        corpus.bytes as f64 / 1048576.0,
        corpus.lines,
        100.0 * corpus.event_lines as f64 / corpus.lines.max(1) as f64
    );
    corpus
});

static RULES: LazyLock<Arc<RulePack>> =
    LazyLock::new(|| Arc::new(RulePack::builtin().expect("the built-in rule pack compiles")));

/// One decoded record, owned.
struct OwnedRecord {
    ts: Option<Timestamp>,
    stream: Stream,
    text: Vec<u8>,
}

#[derive(Default)]
struct CollectRecords(Vec<OwnedRecord>);

impl RecordSink for CollectRecords {
    fn record(&mut self, r: Record<'_>) {
        self.0.push(OwnedRecord {
            ts: r.ts,
            stream: r.stream,
            text: r.text.to_vec(),
        });
    }
    fn malformed(&mut self, _: MalformedReason) {}
}

/// Decoded records per pod (what the classifier sees).
static RECORDS: LazyLock<Vec<Vec<OwnedRecord>>> = LazyLock::new(|| {
    CORPUS
        .pods
        .iter()
        .map(|pod| {
            let mut d = Decoder::new(Format::Cri, MAX_LINE_BYTES);
            let mut sink = CollectRecords::default();
            for line in lines(pod) {
                d.push_line(line, &mut sink);
            }
            d.finish(&mut sink);
            sink.0
        })
        .collect()
});

fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.strip_suffix(b"\n")
        .unwrap_or(data)
        .split(|&b| b == b'\n')
}

fn classify_all<'a>(records: impl Iterator<Item = &'a [OwnedRecord]>) -> u64 {
    let rules = &**RULES;
    let mut events = 0u64;
    for pod in records {
        let mut state = ClassifyState::default();
        for r in pod {
            let record = Record {
                ts: r.ts,
                stream: r.stream,
                text: &r.text,
            };
            rules.classify(&mut state, &record, &mut |_| events += 1);
        }
        rules.finish(&mut state, &mut |_| events += 1);
    }
    events
}

mod classify {
    use super::*;

    /// Every record of the corpus through the built-in rule pack.
    #[divan::bench(sample_count = 20)]
    fn all_records(bencher: Bencher) {
        let bytes: usize = RECORDS.iter().flatten().map(|r| r.text.len()).sum();
        bencher
            .counter(BytesCount::new(bytes))
            .bench(|| black_box(classify_all(RECORDS.iter().map(Vec::as_slice))));
    }

    /// Only records that carry no event: the prefilter's fast path and the
    /// access-line check (2xx requests count as `request_served` events
    /// only when they are inside a start-up gap, so they stay in).
    #[divan::bench(sample_count = 20)]
    fn ordinary_records(bencher: Bencher) {
        static ORDINARY: LazyLock<Vec<Vec<OwnedRecord>>> = LazyLock::new(|| {
            let rules = &**RULES;
            RECORDS
                .iter()
                .map(|pod| {
                    pod.iter()
                        .filter(|r| {
                            let mut state = ClassifyState::default();
                            let mut race = false;
                            let record = Record {
                                ts: r.ts,
                                stream: r.stream,
                                text: &r.text,
                            };
                            let mut note = |e: litellm_sentinel::classify::Event| {
                                race |= !matches!(
                                    e.kind,
                                    litellm_sentinel::classify::EventKind::RequestServed
                                );
                            };
                            rules.classify(&mut state, &record, &mut note);
                            rules.finish(&mut state, &mut note);
                            !race && !r.text.starts_with(b"Traceback") && !r.text.starts_with(b" ")
                        })
                        .map(|r| OwnedRecord {
                            ts: r.ts,
                            stream: r.stream,
                            text: r.text.clone(),
                        })
                        .collect()
                })
                .collect()
        });
        let bytes: usize = ORDINARY.iter().flatten().map(|r| r.text.len()).sum();
        bencher
            .counter(BytesCount::new(bytes))
            .bench(|| black_box(classify_all(ORDINARY.iter().map(Vec::as_slice))));
    }
}

mod decode {
    use super::*;

    #[derive(Default)]
    struct CountRecords {
        records: u64,
        bytes: u64,
    }

    impl RecordSink for CountRecords {
        fn record(&mut self, r: Record<'_>) {
            self.records += 1;
            self.bytes += r.text.len() as u64;
        }
        fn malformed(&mut self, _: MalformedReason) {}
    }

    /// CRI lines to records: framing, timestamps, P/F joins, JSON_LOGS, ANSI.
    #[divan::bench(sample_count = 20)]
    fn cri(bencher: Bencher) {
        bencher.counter(BytesCount::new(CORPUS.bytes)).bench(|| {
            let mut sink = CountRecords::default();
            for pod in &CORPUS.pods {
                let mut d = Decoder::new(Format::Cri, MAX_LINE_BYTES);
                for line in lines(pod) {
                    d.push_line(line, &mut sink);
                }
                d.finish(&mut sink);
            }
            black_box((sink.records, sink.bytes))
        });
    }
}

/// The per-line hot path of live tailing: decode, then classify each record.
#[divan::bench(sample_count = 20)]
fn decode_and_classify(bencher: Bencher) {
    struct Classify<'a> {
        rules: &'a RulePack,
        state: ClassifyState,
        events: u64,
    }
    impl RecordSink for Classify<'_> {
        fn record(&mut self, r: Record<'_>) {
            let events = &mut self.events;
            self.rules
                .classify(&mut self.state, &r, &mut |_| *events += 1);
        }
        fn malformed(&mut self, _: MalformedReason) {}
    }
    bencher.counter(BytesCount::new(CORPUS.bytes)).bench(|| {
        let mut total = 0;
        for pod in &CORPUS.pods {
            let mut d = Decoder::new(Format::Cri, MAX_LINE_BYTES);
            let mut sink = Classify {
                rules: &RULES,
                state: ClassifyState::default(),
                events: 0,
            };
            for line in lines(pod) {
                d.push_line(line, &mut sink);
            }
            d.finish(&mut sink);
            total += sink.events;
        }
        black_box(total)
    });
}

/// The corpus written once as `<dir>/llm_litellm-<n>_<uid>/litellm/0.log`.
static REPORT_DIR: LazyLock<(tempfile::TempDir, PathBuf)> = LazyLock::new(|| {
    let dir = tempfile::tempdir().expect("temporary directory");
    for (n, pod) in CORPUS.pods.iter().enumerate() {
        let container = dir
            .path()
            .join(format!(
                "llm_litellm-{n}_0f3c2a10-{n:04}-4a5b-9c1d-000000000000"
            ))
            .join("litellm");
        std::fs::create_dir_all(&container).expect("pod directory");
        std::fs::write(container.join("0.log"), pod).expect("corpus file");
    }
    let path = dir.path().to_path_buf();
    (dir, path)
});

mod report_path {
    use super::*;

    /// `litellm-sentinel report` minus printing: read + split + decode +
    /// classify + fold + timelines over the files (from the page cache).
    #[divan::bench(sample_count = 10)]
    fn run(bencher: Bencher) {
        let inputs = vec![report::input::Input::Path(REPORT_DIR.1.clone())];
        let opts = ReportOptions::default();
        bencher.counter(BytesCount::new(CORPUS.bytes)).bench(|| {
            let r = report::run(&inputs, RULES.clone(), &opts).expect("report over the corpus");
            black_box(r.totals.lines)
        });
    }
}
