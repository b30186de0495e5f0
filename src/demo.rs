//! `litellm-sentinel demo`: the whole job on one machine, nothing else needed.
//!
//! It plays a rolling deploy of LiteLLM pods: for each pod it writes a CRI log
//! file in real time (the start-up banner, Uvicorn's listening line, then the
//! startup-race burst — ConnectErrors with tracebacks, dropped spend batches,
//! budget-cache misses, requests served — exactly as LiteLLM 1.83 prints them,
//! ANSI colours included) and runs a query-engine stand-in that starts
//! listening only after a random delay. The real agent tails the files, probes
//! the stand-ins and serves `/metrics`; the demo prints a live table and, at
//! the end, checks the agent's counts against what it simulated.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::agent::{Agent, PodProbes};
use crate::classify::Operation;
use crate::config::{Config, HumanDuration, ReadFrom};
use crate::engine_standin::{EngineStandin, StandinOptions};
use crate::format::PodRef;
use crate::model::{ConfigKind, Counter};
use crate::probe::ProbeConfig;
use crate::server::pod_views;
use crate::time::Timestamp;

/// Options of the demo.
#[derive(Clone, Debug, clap::Args)]
pub struct DemoOptions {
    /// Pods in the rolling deploy.
    #[arg(long, default_value_t = 3)]
    pub pods: usize,
    /// Shortest engine start-up delay.
    #[arg(long, default_value = "6s", value_parser = HumanDuration::parse)]
    pub min_engine_delay: HumanDuration,
    /// Longest engine start-up delay.
    #[arg(long, default_value = "15s", value_parser = HumanDuration::parse)]
    pub max_engine_delay: HumanDuration,
    /// Time between two log bursts of a pod in its gap.
    #[arg(long, default_value = "500ms", value_parser = HumanDuration::parse)]
    pub tick: HumanDuration,
    /// Seed of the random delays (same seed, same deploy).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Address of the agent's HTTP server.
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub listen: String,
    /// Directory for the simulated /var/log/pods tree (default: a temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print the live table only at the end (for scripts and tests).
    #[arg(long)]
    pub no_live: bool,
    /// Keep the agent serving `/metrics` after the simulation, until Ctrl-C
    /// (so a Prometheus can go on scraping and evaluating alerts).
    #[arg(long)]
    pub keep: bool,
    /// An extra `LABEL=URL` for the header (repeatable); `make demo-stack`
    /// passes Prometheus' graph and alerts pages.
    #[arg(long = "link", value_name = "LABEL=URL")]
    pub links: Vec<String>,
}

/// What each column and state of the table means, shown under the URLs.
const LEGEND: &[&str] = &[
    "POD        the simulated LiteLLM pod (namespace llm), one after the other as in a rolling deploy",
    "STATE      starting: its proxy has not said it listens yet",
    "           IN GAP: the proxy accepts traffic, its Prisma query engine does not answer yet",
    "           ready: the engine answers (probe); replaced: the rollout moved on, its engine is gone",
    "GAP        start-up gap: proxy listening -> engine's first answer (… = still open)",
    "DROPPED    spend-log batches LiteLLM dropped: requests that are never billed",
    "MISSES     budget lookups that failed: the budget cache stays empty, every request hits the DB",
    "AT RISK    requests served inside the gap (their spend may be lost)",
    "DB ERRORS  failed database calls (httpx.ConnectError: All connection attempts failed)",
];

/// The lines above the table: title, URLs, legend. Printed again on every
/// redraw, so clearing the screen never hides where to look.
fn header_lines(
    pods: usize,
    addr: std::net::SocketAddr,
    logs: &Path,
    links: &[String],
) -> Vec<String> {
    let mut out = vec![
        format!("litellm-sentinel demo: rolling deploy of {pods} LiteLLM pods"),
        format!("  metrics: http://{addr}/metrics   pods: http://{addr}/api/v1/pods"),
    ];
    for link in links {
        match link.split_once('=') {
            Some((label, url)) => out.push(format!("  {label}: {url}")),
            None => out.push(format!("  {link}")),
        }
    }
    out.push(format!("  logs:    {}", logs.display()));
    out.push(String::new());
    out.extend(LEGEND.iter().map(|l| format!("  {l}")));
    out.push(String::new());
    out
}

/// What the demo wrote for one pod: the counts the agent must find.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expected {
    pub proxy_starts: u64,
    pub spend_batches_dropped: u64,
    pub budget_cache_misses: u64,
    pub requests_during_gap: u64,
    pub deployment_load_failures: u64,
    pub credential_load_failures: u64,
    pub engine_distro_fallbacks: u64,
    pub db_connect_errors: BTreeMap<&'static str, u64>,
}

/// Tiny deterministic PRNG (xorshift64*): the demo needs repeatable delays, not crypto.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_millis() as u64;
        lo + Duration::from_millis(if span == 0 { 0 } else { self.next() % span })
    }
}

/// Appends CRI records to one container log, stamped with the current time.
struct CriWriter {
    file: std::fs::File,
}

impl CriWriter {
    fn create(path: &Path) -> Result<CriWriter> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(CriWriter { file })
    }

    /// Writes each line of `text` as one `F` record (what containerd does for a multi-line print).
    fn write(&mut self, stream: &str, text: &str) -> Result<()> {
        let ts = Timestamp::now().to_string();
        let mut buf = String::new();
        for line in text.lines() {
            buf.push_str(&format!("{ts} {stream} F {line}\n"));
        }
        self.file
            .write_all(buf.as_bytes())
            .context("cannot write the simulated log")
    }
}

fn clock() -> String {
    let t = Timestamp::now().to_string();
    t[11..19].to_string()
}

/// LiteLLM 1.83's coloured text format (the escape sits between level and colon).
fn litellm(level: &str, file: &str, msg: &str) -> String {
    format!(
        "\x1b[92m{} - LiteLLM Proxy:{level}\x1b[0m: {file} - {msg}",
        clock()
    )
}

const SPEND_TRACEBACK: &str = r#"Traceback (most recent call last):
  File "/usr/lib/python3.13/site-packages/httpx/_transports/default.py", line 101, in map_httpcore_exceptions
    yield
  File "/usr/lib/python3.13/site-packages/httpcore/_async/connection.py", line 124, in _connect
    stream = await self._network_backend.connect_tcp(**kwargs)
             ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
httpcore.ConnectError: All connection attempts failed

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/usr/lib/python3.13/site-packages/litellm/proxy/utils.py", line 3880, in update_spend_logs
    await prisma_client.db.litellm_spendlogs.create_many(data=batch_with_dates, skip_duplicates=True)
  File "/usr/lib/python3.13/site-packages/prisma/engine/http.py", line 97, in request
    response = await self.session.request(method, url, **kwargs)
               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
httpx.ConnectError: All connection attempts failed"#;

/// Writes one pod's start-up until its engine listens; returns what it wrote.
async fn play_pod(
    w: &mut CriWriter,
    engine: &EngineStandin,
    tick: Duration,
    serial: u64,
) -> Result<Expected> {
    let mut e = Expected {
        proxy_starts: 1,
        ..Default::default()
    };
    let mut op = |o: Operation| *e.db_connect_errors.entry(o.as_str()).or_default() += 1;
    w.write("stderr", "prisma:warn Prisma doesn't know which engines to download for the Linux distro \"wolfi\". Falling back to Prisma engines built \"debian\".")?;
    w.write("stderr", "prisma:warn Prisma doesn't know which engines to download for the Linux distro \"wolfi\". Falling back to Prisma engines built \"debian\".")?;
    w.write(
        "stdout",
        "INFO:     Started server process [1]\nINFO:     Waiting for application startup.",
    )?;
    w.write("stdout", "\x1b[32mLiteLLM: Proxy initialized with Config, Set models:\x1b[0m\n    gpt-4o\n    claude-sonnet")?;
    w.write("stdout", "LiteLLM: model cost map fetch attempt 1/3 failed (ConnectError fetching https://raw.githubusercontent.com/BerriAI/litellm/main/model_prices_and_context_window.json)")?;
    w.write("stdout", "INFO:     Application startup complete.\nINFO:     Uvicorn running on http://0.0.0.0:4000 (Press CTRL+C to quit)")?;
    w.write("stderr", &litellm("ERROR", "proxy_server.py:3155", "litellm.proxy.proxy_server.py::ProxyConfig:add_deployment - All connection attempts failed"))?;
    op(Operation::AddDeployment);
    w.write("stderr", &litellm("ERROR", "proxy_server.py:3380", "litellm.proxy_server.py::get_credentials() - Error getting credentials from DB - All connection attempts failed"))?;
    op(Operation::GetCredentials);
    e.deployment_load_failures = 1;
    e.credential_load_failures = 1;
    e.engine_distro_fallbacks = 2;
    let mut i: u64 = 0;
    while engine.bound_at().is_none() {
        let client = format!("10.0.{}.{}:{}", serial, 10 + i % 200, 40000 + i % 20000);
        w.write(
            "stdout",
            &format!("INFO:     {client} - \"GET /health/readiness HTTP/1.1\" 200 OK"),
        )?;
        if i.is_multiple_of(3) {
            w.write("stderr", &litellm("ERROR", "utils.py:2721", "LiteLLM Prisma Client Exception get_generic_data: All connection attempts failed"))?;
            op(Operation::GetGenericData);
        }
        if i % 4 == 1 {
            w.write(
                "stderr",
                &format!(
                    "{}\n{SPEND_TRACEBACK}",
                    litellm(
                        "ERROR",
                        "utils.py:3905",
                        "Error in spend logs queue monitor: All connection attempts failed"
                    )
                ),
            )?;
            e.spend_batches_dropped += 1;
            op(Operation::SpendLogsQueue);
        }
        if i.is_multiple_of(2) {
            w.write(
                "stderr",
                &format!(
                    "{}\nError: All connection attempts failed.",
                    litellm("WARNING", "auth_checks.py:511", "Budget lookup failed for user; cache will not be populated. Each request will hit the database.")
                ),
            )?;
            e.budget_cache_misses += 1;
            op(Operation::BudgetLookup);
            w.write(
                "stdout",
                &format!("INFO:     {client} - \"POST /v1/chat/completions HTTP/1.1\" 200 OK"),
            )?;
            e.requests_during_gap += 1;
        }
        i += 1;
        tokio::time::sleep(tick).await;
    }
    Ok(e)
}

/// Runs the demo; fails when the agent's counts differ from what was simulated.
pub async fn run(opts: DemoOptions) -> Result<()> {
    if opts.pods == 0 {
        bail!("--pods must be at least 1");
    }
    if opts.max_engine_delay.0 < opts.min_engine_delay.0 {
        bail!("--max-engine-delay must not be shorter than --min-engine-delay");
    }
    let tmp;
    let root = match &opts.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile_dir()?;
            tmp.path.clone()
        }
    };
    let pods_dir = root.join("pods");
    std::fs::create_dir_all(&pods_dir)
        .with_context(|| format!("cannot create {}", pods_dir.display()))?;
    let mut rng = Rng(opts.seed.max(1));
    let mut plans = Vec::new();
    for i in 0..opts.pods {
        let name = format!(
            "litellm-7f9c{:02}-{}",
            opts.seed % 100,
            ["x2k4p", "b8m1q", "z5n7r", "c3v9t", "h6w2y"][i % 5]
        );
        let pod = PodRef {
            namespace: "llm".into(),
            pod: format!("{name}{i}"),
        };
        let delay = rng.between(opts.min_engine_delay.0, opts.max_engine_delay.0);
        plans.push((pod, delay));
    }
    let cfg = Config {
        globs: vec![format!("{}/*_*litellm*_*/*/*.log", pods_dir.display())],
        state_file: root.join("state.json"),
        read_from: ReadFrom::Beginning,
        listen: opts.listen.clone(),
        poll_interval: HumanDuration(Duration::from_secs(1)),
        ..Config::default()
    };
    cfg.validate()?;
    // Registered before the banner: a Ctrl-C from then on stops the demo cleanly.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot install the Ctrl-C handler")?;
    let agent = Agent::start(cfg, Vec::new())
        .await
        .context("cannot start the agent (is --listen free?)")?;
    let header = header_lines(opts.pods, agent.addr, &pods_dir, &opts.links);
    for line in &header {
        println!("{line}");
    }
    // Ctrl-C ends the demo cleanly: the agent stops (final checkpoint), the
    // engine stand-ins close, the temporary tree is removed.
    let mut interrupted = false;
    let result = tokio::select! {
        r = deploy(&opts, &plans, &pods_dir, &agent, &header) => r,
        _ = interrupt.recv() => {
            println!("\ninterrupted: stopping the agent and cleaning up");
            interrupted = true;
            Ok(())
        }
    };
    if opts.keep && !interrupted {
        println!(
            "\n--keep: the agent goes on serving http://{}/metrics; Ctrl-C to stop",
            agent.addr
        );
        let _ = std::io::stdout().flush();
        interrupt.recv().await;
        println!("\ninterrupted: stopping the agent and cleaning up");
    }
    agent.shutdown().await;
    result
}

/// Plays the pods one after the other (a rolling deploy) and checks the agent.
async fn deploy(
    opts: &DemoOptions,
    plans: &[(PodRef, Duration)],
    pods_dir: &Path,
    agent: &Agent,
    header: &[String],
) -> Result<()> {
    let mut expected: Vec<(PodRef, Expected, Duration)> = Vec::new();
    let mut extra = Vec::new();
    for (i, (pod, delay)) in plans.iter().enumerate() {
        let engine = EngineStandin::start(StandinOptions {
            bind_after: *delay,
            ..Default::default()
        })
        .await?;
        // Register this pod's engine probe with the running agent.
        extra.push(agent_probe(agent, pod, &engine));
        let path = pods_dir
            .join(format!(
                "{}_{}_{:08x}-0000-4000-8000-{:012x}",
                pod.namespace, pod.pod, i, i
            ))
            .join("litellm")
            .join("0.log");
        let mut w = CriWriter::create(&path)?;
        let live = !opts.no_live;
        let printer = live.then(|| spawn_table_printer(agent, header.to_vec()));
        let e = play_pod(&mut w, &engine, opts.tick.0, i as u64).await?;
        // After the engine answers: normal traffic, which must not count as "during the gap".
        wait_until(Duration::from_secs(10), || {
            agent_in_gap(agent, pod) == Some(false)
        })
        .await;
        for k in 0..3 {
            w.write(
                "stdout",
                &format!(
                    "INFO:     10.0.9.{k}:5100{k} - \"POST /v1/chat/completions HTTP/1.1\" 200 OK"
                ),
            )?;
        }
        if let Some(p) = printer {
            p.abort();
        }
        expected.push((pod.clone(), e, *delay));
        engine.shutdown().await;
    }
    for t in extra {
        t.abort();
    }
    // Wait until the agent has read everything the demo wrote.
    let ok = wait_until(Duration::from_secs(15), || {
        expected
            .iter()
            .all(|(p, e, _)| measured(agent, p).as_ref() == Some(e))
    })
    .await;
    print_table(agent);
    println!("\nSummary (simulated → measured by the agent):");
    for (pod, e, delay) in &expected {
        let m = measured(agent, pod).unwrap_or_default();
        let gap = pod_views(&agent.tracker)
            .into_iter()
            .find(|v| v.pod == pod.pod)
            .and_then(|v| v.gap_seconds);
        println!(
            "  {}/{}: engine delay {:.1}s → gap {} ; dropped batches {} → {} ; budget misses {} → {} ; requests at risk {} → {}",
            pod.namespace,
            pod.pod,
            delay.as_secs_f64(),
            gap.map(|g| format!("{g:.2}s (probe)")).unwrap_or_else(|| "-".into()),
            e.spend_batches_dropped,
            m.spend_batches_dropped,
            e.budget_cache_misses,
            m.budget_cache_misses,
            e.requests_during_gap,
            m.requests_during_gap
        );
    }
    if !ok {
        for (pod, e, _) in &expected {
            let m = measured(agent, pod);
            if m.as_ref() != Some(e) {
                println!(
                    "  MISMATCH {}: simulated {e:?}\n                 measured  {m:?}",
                    pod.pod
                );
            }
        }
        bail!("the agent's counts differ from what the demo simulated");
    }
    println!(
        "\nAll counts match what was simulated. demo: {} passed, 0 failed",
        expected.len()
    );
    Ok(())
}

/// Starts probing `pod`'s engine inside the running agent (the demo's pods appear one by one).
fn agent_probe(agent: &Agent, pod: &PodRef, engine: &EngineStandin) -> tokio::task::JoinHandle<()> {
    let probes = ProbeConfig {
        engine_url: Some(engine.url()),
        fast_interval: Duration::from_millis(100),
        slow_interval: Duration::from_secs(2),
        timeout: Duration::from_millis(500),
        ..Default::default()
    };
    agent.add_probes(PodProbes {
        pod: pod.clone(),
        probes,
    })
}

fn agent_in_gap(agent: &Agent, pod: &PodRef) -> Option<bool> {
    let t = agent.tracker.lock();
    let p = t.pod(pod)?;
    Some(p.open_start().is_some() || p.starts.is_empty())
}

fn measured(agent: &Agent, pod: &PodRef) -> Option<Expected> {
    let t = agent.tracker.lock();
    let c = &t.pod(pod)?.counts;
    Some(Expected {
        proxy_starts: c[Counter::ProxyStarts],
        spend_batches_dropped: c[Counter::SpendBatchesDropped],
        budget_cache_misses: c[Counter::BudgetCacheMisses],
        requests_during_gap: c[Counter::RequestsDuringGap],
        deployment_load_failures: c[Counter::ConfigLoadFailures(ConfigKind::Deployments)],
        credential_load_failures: c[Counter::ConfigLoadFailures(ConfigKind::Credentials)],
        engine_distro_fallbacks: c[Counter::EngineDistroFallbacks],
        db_connect_errors: Operation::ALL
            .iter()
            .map(|o| (o.as_str(), c.db_connect_errors_for(*o)))
            .filter(|(_, n)| *n > 0)
            .collect(),
    })
}

async fn wait_until(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + deadline;
    while tokio::time::Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cond()
}

fn spawn_table_printer(agent: &Agent, header: Vec<String>) -> tokio::task::JoinHandle<()> {
    let tracker = agent.tracker.clone();
    tokio::spawn(async move {
        loop {
            print!("\x1b[2J\x1b[H");
            for line in &header {
                println!("{line}");
            }
            print_views(&pod_views(&tracker));
            let _ = std::io::stdout().flush();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

fn print_table(agent: &Agent) {
    print_views(&pod_views(&agent.tracker));
}

fn print_views(views: &[crate::server::PodView]) {
    println!(
        "{:<32} {:<9} {:>9} {:>8} {:>7} {:>9} {:>9}",
        "POD", "STATE", "GAP", "DROPPED", "MISSES", "AT RISK", "DB ERRORS"
    );
    for v in views {
        let state = if v.in_gap {
            "IN GAP"
        } else {
            match v.engine_up.get("engine") {
                Some(true) => "ready",
                // Its engine is gone: the rolling deploy replaced this pod.
                Some(false) if v.gap_seconds.is_some() => "replaced",
                _ => "starting",
            }
        };
        let gap = match (v.in_gap, v.gap_seconds, v.listening_at) {
            (true, _, Some(l)) => format!("{:.1}s…", Timestamp::now().seconds_since(l.0)),
            (_, Some(g), _) => format!("{g:.2}s"),
            _ => "-".into(),
        };
        let c = &v.counts;
        println!(
            "{:<32} {:<9} {:>9} {:>8} {:>7} {:>9} {:>9}",
            v.pod,
            state,
            gap,
            c[Counter::SpendBatchesDropped],
            c[Counter::BudgetCacheMisses],
            c[Counter::RequestsDuringGap],
            c.db_connect_errors_total()
        );
    }
}

/// A temporary directory removed on drop (no extra crate in the binary).
struct TempDir {
    path: PathBuf,
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn tempfile_dir() -> Result<TempDir> {
    let path = std::env::temp_dir().join(format!(
        "litellm-sentinel-demo-{}-{}",
        std::process::id(),
        Timestamp::now().0
    ));
    std::fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(TempDir { path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_has_the_urls_and_a_legend_line_per_column_and_state() {
        let addr: std::net::SocketAddr = "127.0.0.1:9464".parse().unwrap();
        let h = header_lines(
            3,
            addr,
            Path::new("/tmp/demo/pods"),
            &["prometheus alerts=http://127.0.0.1:9090/alerts".into()],
        );
        let text = h.join("\n");
        assert!(text.contains("http://127.0.0.1:9464/metrics"), "{text}");
        assert!(text.contains("http://127.0.0.1:9464/api/v1/pods"), "{text}");
        assert!(
            text.contains("prometheus alerts: http://127.0.0.1:9090/alerts"),
            "{text}"
        );
        for column in [
            "POD",
            "STATE",
            "GAP",
            "DROPPED",
            "MISSES",
            "AT RISK",
            "DB ERRORS",
        ] {
            assert!(
                h.iter().any(|l| l.trim_start().starts_with(column)),
                "no legend line for {column}: {text}"
            );
        }
        for state in ["starting:", "IN GAP:", "ready:", "replaced:"] {
            assert!(text.contains(state), "no legend for state {state}: {text}");
        }
        // Every legend line fits an 110-column terminal.
        assert!(h.iter().all(|l| l.chars().count() <= 110), "{text}");
    }
}
