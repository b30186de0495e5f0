//! The hot path allocates nothing per line.
//!
//! A counting global allocator counts the heap allocations made by this
//! test's own thread while 10,000 CRI lines go through a warmed-up
//! [`Decoder`] and [`RulePack::classify`]. Ordinary lines (no event) and the
//! start-up race's own lines (headers, tracebacks, split `P`/`F` records) must
//! both cost a small constant number of allocations in total, not one per
//! line: a busy node writes millions of them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use litellm_sentinel::classify::{ClassifyState, Event, EventKind, RulePack};
use litellm_sentinel::format::decoder::Decoder;
use litellm_sentinel::format::{Format, MalformedReason, Record, RecordSink};

/// Counts allocations (and reallocations) of the thread that switched counting on.
struct CountingAllocator;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn note_allocation() {
    // `try_with`: the allocator also runs while thread-locals are torn down.
    let counting = COUNTING.try_with(Cell::get).unwrap_or(false);
    if counting {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Allocations made by this thread while `f` runs.
fn allocations_during(f: impl FnOnce()) -> usize {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get)
}

/// Decodes and classifies records, counting what comes out (no allocation).
struct Hot<'a> {
    rules: &'a RulePack,
    state: ClassifyState,
    records: usize,
    malformed: usize,
    events: usize,
    race_events: usize,
}

impl RecordSink for Hot<'_> {
    fn record(&mut self, r: Record<'_>) {
        self.records += 1;
        let (events, race) = (&mut self.events, &mut self.race_events);
        self.rules.classify(&mut self.state, &r, &mut |e: Event| {
            *events += 1;
            if !matches!(e.kind, EventKind::RequestServed) {
                *race += 1;
            }
        });
    }
    fn malformed(&mut self, _: MalformedReason) {
        self.malformed += 1;
    }
}

/// Lines of a busy proxy that carry no event: 4xx and probe access lines,
/// LiteLLM INFO lines with ANSI colours, JSON_LOGS lines with escapes,
/// invalid UTF-8, a long line split by the runtime into `P` + `F` records.
fn ordinary_lines() -> Vec<Vec<u8>> {
    let long = "lorem ipsum dolor sit amet ".repeat(700);
    let mut lines: Vec<Vec<u8>> = vec![
        br#"2026-11-24T10:15:00.123456789Z stdout F INFO:     10.0.3.17:51234 - "POST /v1/chat/completions HTTP/1.1" 429 Too Many Requests"#.to_vec(),
        br#"2026-11-24T10:15:00.2Z stdout F INFO:     10.0.0.1:33000 - "GET /health/readiness HTTP/1.1" 200 OK"#.to_vec(),
        br#"2026-11-24T10:15:00.3Z stdout F INFO:     10.0.0.1:33001 - "GET /metrics HTTP/1.1" 200 OK"#.to_vec(),
        b"2026-11-24T10:15:00.4Z stderr F \x1b[92m10:15:00 - LiteLLM Proxy:INFO\x1b[0m: router.py:1050 - litellm.acompletion(model=azure/gpt-4o) 200 OK".to_vec(),
        br#"2026-11-24T10:15:00.5Z stdout F {"message": "litellm.acompletion(model=gpt-4o-mini) caf\u00e9 \"quoted\" \n second line", "level": "INFO", "timestamp": "2026-11-24T10:15:00.500000", "component": "LiteLLM Router"}"#.to_vec(),
        b"2026-11-24T10:15:00.6Z stderr F caf\xe9 \xff\xfe not UTF-8 \x1b[31mred\x1b[0m".to_vec(),
        b"2026-11-24T10:15:00.7+00:00 stdout F:x INFO:     Waiting for application startup.\r".to_vec(),
    ];
    lines.push(format!("2026-11-24T10:15:00.8Z stdout P {long}").into_bytes());
    lines.push(b"2026-11-24T10:15:00.8Z stdout F the end of the long line".to_vec());
    lines
}

/// The start-up race: a spend-queue header (split into P/F inside its key
/// phrase) with its traceback, a budget miss, a bare engine error.
fn race_lines() -> Vec<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = vec![
        b"2026-11-24T10:15:01Z stderr F \x1b[92m10:15:01 - LiteLLM Proxy:INFO\x1b[0m: proxy_server.py:1 - tick".to_vec(),
        b"2026-11-24T10:15:01.1Z stderr P \x1b[92m10:15:01 - LiteLLM Proxy:ERROR\x1b[0m: utils.py:3905 - Error in spend lo".to_vec(),
        b"2026-11-24T10:15:01.1Z stderr F gs queue monitor: All connection attempts failed".to_vec(),
    ];
    for l in [
        "Traceback (most recent call last):",
        "  File \"/usr/lib/python3.13/site-packages/httpcore/_async/connection_pool.py\", line 256, in handle_async_request",
        "    raise exc from None",
        "httpcore.ConnectError: All connection attempts failed",
        "",
        "The above exception was the direct cause of the following exception:",
        "",
        "Traceback (most recent call last):",
        "  File \"/usr/lib/python3.13/site-packages/prisma/engine/http.py\", line 97, in request",
        "               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
        "httpx.ConnectError: All connection attempts failed",
    ] {
        lines.push(format!("2026-11-24T10:15:01.2Z stderr F {l}").into_bytes());
    }
    lines.push(b"2026-11-24T10:15:02Z stderr F \x1b[92m10:15:02 - LiteLLM Proxy:WARNING\x1b[0m: auth_checks.py:511 - Budget lookup failed for user; cache will not be populated. Each request will hit the database. Error: All connection attempts failed.".to_vec());
    lines.push(b"2026-11-24T10:15:03Z stderr F \x1b[92m10:15:03 - LiteLLM Proxy:INFO\x1b[0m: proxy_server.py:1 - tick".to_vec());
    lines.push(
        b"2026-11-24T10:15:03.5Z stderr F httpx.ConnectError: All connection attempts failed"
            .to_vec(),
    );
    lines.push(br#"2026-11-24T10:15:04Z stdout F INFO:     10.0.3.17:51234 - "POST /v1/chat/completions HTTP/1.1" 200 OK"#.to_vec());
    lines
}

const LINES: usize = 10_000;
/// A few allocations are tolerated (lazily sized internal caches), never one per line.
const MAX_ALLOCATIONS: usize = 8;

fn run(lines: &[Vec<u8>]) -> (usize, Hot<'static>) {
    static RULES: std::sync::LazyLock<RulePack> =
        std::sync::LazyLock::new(|| RulePack::builtin().expect("built-in rule pack"));
    let mut decoder = Decoder::new(Format::Cri, 256 * 1024);
    let mut hot = Hot {
        rules: &RULES,
        state: ClassifyState::default(),
        records: 0,
        malformed: 0,
        events: 0,
        race_events: 0,
    };
    // Warm up: buffers grow to their steady size, lazy caches fill.
    for _ in 0..3 {
        for line in lines {
            decoder.push_line(line, &mut hot);
        }
    }
    let before = (hot.records, hot.events, hot.race_events);
    let allocations = allocations_during(|| {
        for line in lines.iter().cycle().take(LINES) {
            decoder.push_line(line, &mut hot);
        }
    });
    hot.records -= before.0;
    hot.events -= before.1;
    hot.race_events -= before.2;
    (allocations, hot)
}

#[test]
fn ordinary_lines_do_not_allocate() {
    let lines = ordinary_lines();
    let (allocations, hot) = run(&lines);
    eprintln!("{allocations} allocations for {LINES} ordinary lines");
    // Every physical line but the P chunks becomes a record; none is an event.
    let per_round = lines.len() - 1;
    assert!(
        hot.records >= LINES / lines.len() * per_round,
        "records: {}",
        hot.records
    );
    assert_eq!(hot.events, 0, "ordinary lines produced events");
    assert_eq!(hot.malformed, 0);
    assert!(
        allocations <= MAX_ALLOCATIONS,
        "{allocations} allocations for {LINES} ordinary lines"
    );
}

#[test]
fn race_lines_do_not_allocate_per_line() {
    let lines = race_lines();
    let (allocations, hot) = run(&lines);
    eprintln!("{allocations} allocations for {LINES} start-up race lines");
    let rounds = LINES / lines.len();
    // Per round: spend batch dropped + its DB error, budget miss + DB error,
    // the bare engine error, one 2xx request.
    assert!(
        hot.race_events >= rounds * 5,
        "race events: {}",
        hot.race_events
    );
    assert!(hot.events > hot.race_events);
    assert!(
        allocations <= MAX_ALLOCATIONS,
        "{allocations} allocations for {LINES} start-up race lines"
    );
}

#[test]
fn the_counter_sees_allocations() {
    // The instrument itself works: a Vec per line would be caught.
    let n = allocations_during(|| {
        for i in 0..100 {
            std::hint::black_box(vec![i as u8; 16]);
        }
    });
    assert!(n >= 100, "{n}");
}

/// The buffer scanner (what the tailer and `report` really run): a warmed-up
/// `Pipeline::block` over blocks of ordinary lines (ANSI, JSON_LOGS with
/// escapes, a `P`/`F` split, probes) allocates nothing per line either.
#[test]
fn the_buffer_scanner_does_not_allocate_per_line() {
    use litellm_sentinel::format::PodRef;
    use litellm_sentinel::pipeline::Pipeline;
    use litellm_sentinel::tail::FileKey;
    use litellm_sentinel::timeline::{SharedTracker, TimelineConfig, Tracker};
    use std::sync::Arc;

    let tracker = SharedTracker::new(Tracker::new(TimelineConfig::default()));
    let rules = Arc::new(RulePack::builtin().expect("built-in rule pack"));
    let mut pipeline = Pipeline::new(rules, tracker, 256 * 1024, Vec::new());
    let key = FileKey { dev: 1, ino: 1 };
    pipeline.open(key, None, PodRef::new("llm", "litellm-0"));
    let mut block = Vec::new();
    for line in ordinary_lines() {
        block.extend_from_slice(&line);
        block.push(b'\n');
    }
    let per_block = ordinary_lines().len();
    for _ in 0..3 {
        pipeline.block(key, &block, 256 * 1024);
    }
    let mut lines = 0;
    let allocations = allocations_during(|| {
        while lines < LINES as u64 {
            lines += pipeline.block(key, &block, 256 * 1024);
        }
    });
    eprintln!("{allocations} allocations for {lines} lines in blocks of {per_block}");
    assert!(lines >= LINES as u64);
    assert!(
        allocations <= MAX_ALLOCATIONS,
        "{allocations} allocations for {lines} lines through Pipeline::block"
    );
}
