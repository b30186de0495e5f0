//! `litellm-sentinel demo`: the whole job on one machine, nothing else needed.
//!
//! It plays a rolling deploy of LiteLLM pods. For each pod it writes a CRI
//! log file in real time, as the real release prints it (the start-up lines,
//! then the start-up race: ConnectErrors with tracebacks, spend-log write
//! retries and the batch that fails, budget-cache misses, requests served),
//! and runs a query-engine stand-in that binds its port only after a random
//! delay. The pods cycle through three set-ups: LiteLLM 1.83.14 with the
//! sidecar probe, 1.110.2 with the sidecar probe (a failed spend batch is
//! re-queued, not dropped), and 1.83.14 watched from its logs only (the node
//! DaemonSet, no sidecar). The real agent tails the files, probes the
//! sidecar pods' engines and serves `/metrics`.
//!
//! The demo reads the agent only through `/metrics` over HTTP, like
//! Prometheus: the live table and the final check. The check compares every
//! count with what was written and each gap with the moment the stand-in
//! bound its port (within one probe interval for the sidecar, within one log
//! beat for the log estimate); any difference fails the demo (exit 1) and
//! names the series.

mod check;
mod scrape;
mod script;
mod table;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::agent::{Agent, PodProbes};
use crate::config::{Config, HumanDuration, ReadFrom};
use crate::engine_standin::{EngineStandin, StandinOptions};
use crate::format::PodRef;
use crate::probe::ProbeConfig;
use crate::time::Timestamp;

use check::{Check, Skew, Tolerance};
use scrape::{scrape, Exposition};
use script::{CriWriter, Family, Played, PodPlan, Rng, Watch};

/// Shown after the flags by `demo --help` (the one-line summary is the
/// subcommand's doc comment in main.rs).
const AFTER_LONG_HELP: &str = "\
The demo plays a rolling deploy of LiteLLM pods on this machine, lets the
real agent measure the start-up race, and checks the agent's numbers.

Each pod writes a CRI log file in real time, as the real release prints it,
and gets a query-engine stand-in that binds its port only after a random
delay (--min/--max-engine-delay): until then every DB call fails with
`httpx.ConnectError: All connection attempts failed`. The pods cycle through
  1. LiteLLM 1.83.14, sidecar probe: exact gap; failed spend batches are dropped
  2. LiteLLM 1.110.2, sidecar probe: failed spend batches are re-queued
  3. LiteLLM 1.83.14, logs only (node DaemonSet, no sidecar): estimated gap
The agent runs in this process (node role, plus a probe per sidecar pod)
and serves /metrics on --listen; the live table is read from that /metrics.

At the end the demo scrapes /metrics over HTTP and checks every count
against what it wrote, the probe gap against the stand-in's bind time (one
probe interval) and the log gap against the last DB failure (one log beat),
printing one line per number. Exit status: 0 all checks passed, 1 a check
failed (the line says simulated vs /metrics and the series) or the demo
could not run. Ctrl-C stops it cleanly at any time. The default run takes
about 25 s.

--dir DIR keeps the simulated logs: `litellm-sentinel report DIR/pods` then
gives the post-mortem of the same rollout. --keep goes on serving /metrics
(for a Prometheus: `make demo-stack`).";

/// Options of the demo.
#[derive(Clone, Debug, clap::Args)]
#[command(
    after_help = "`demo --help` explains what the demo does and checks, and its exit status.",
    after_long_help = AFTER_LONG_HELP
)]
pub struct DemoOptions {
    /// Pods in the rolling deploy (they cycle: 1.83 sidecar, 1.110 sidecar, 1.83 logs only).
    #[arg(long, default_value_t = 3)]
    pub pods: usize,
    /// Shortest delay before a pod's query engine binds its port.
    #[arg(long, default_value = "4s", value_parser = HumanDuration::parse)]
    pub min_engine_delay: HumanDuration,
    /// Longest delay before a pod's query engine binds its port.
    #[arg(long, default_value = "9s", value_parser = HumanDuration::parse)]
    pub max_engine_delay: HumanDuration,
    /// Time between two log beats of a pod in its gap (each beat logs DB failures).
    #[arg(long, default_value = "500ms", value_parser = HumanDuration::parse)]
    pub tick: HumanDuration,
    /// The agent's quiet_period: a logs-only gap ends at its last DB failure
    /// once this long passed without one (production default 30s).
    #[arg(long, default_value = "3s", value_parser = HumanDuration::parse)]
    pub quiet_period: HumanDuration,
    /// Seed of the random delays and batch sizes (same seed, same deploy).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Address of the agent's HTTP server (/metrics, /api/v1/pods).
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub listen: String,
    /// Directory for the simulated /var/log/pods tree (default: a temporary directory, removed at the end).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print the table only at the end (for scripts and tests).
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
    /// Test only: expect a wrong number for the first pod (`gap` or a check
    /// key such as `spend_rows_lost`), to prove the check fails.
    #[arg(long = "check-skew", hide = true, value_name = "CHECK")]
    pub check_skews: Vec<String>,
}

/// The sidecar's probe interval while an engine does not answer (the agent's default).
const PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// The set-ups the pods cycle through.
const SETUPS: [(Family, Watch); 3] = [
    (Family::V1_83, Watch::Sidecar),
    (Family::V1_110, Watch::Sidecar),
    (Family::V1_83, Watch::LogsOnly),
];

/// What keeps running until the demo ends: the engines, the sidecar probes
/// and the pods' logs.
#[derive(Default)]
struct Fleet {
    engines: Vec<EngineStandin>,
    probes: Vec<tokio::task::JoinHandle<()>>,
    logs: Vec<CriWriter>,
}

impl Fleet {
    /// Stops the probes and engines; returns the logs, still open.
    async fn stop(self) -> Vec<CriWriter> {
        for p in self.probes {
            p.abort();
        }
        for e in self.engines {
            e.shutdown().await;
        }
        self.logs
    }
}

fn plans(opts: &DemoOptions) -> Vec<PodPlan> {
    let mut rng = Rng(opts.seed.max(1));
    (0..opts.pods)
        .map(|i| {
            let (family, watch) = SETUPS[i % SETUPS.len()];
            PodPlan {
                pod: PodRef {
                    namespace: "llm".into(),
                    pod: format!(
                        "litellm-7f9c{:02}-{}{i}",
                        opts.seed % 100,
                        ["x2k4p", "b8m1q", "z5n7r", "c3v9t", "h6w2y"][i % 5]
                    ),
                },
                family,
                watch,
                engine_delay: rng.between(opts.min_engine_delay.0, opts.max_engine_delay.0),
                rows_seed: rng.next(),
            }
        })
        .collect()
}

/// Runs the demo; fails when the agent's `/metrics` differ from what was simulated.
pub async fn run(opts: DemoOptions) -> Result<()> {
    let skews = check_options(&opts)?;
    let began = Instant::now();
    // Removed at the end of the run when the demo chose it.
    let (root, _tmp) = demo_root(&opts)?;
    let pods_dir = root.join("pods");
    std::fs::create_dir_all(&pods_dir)
        .with_context(|| format!("cannot create {}", pods_dir.display()))?;
    let plans = plans(&opts);
    let cfg = agent_settings(&opts, &root, &pods_dir)?;
    // Registered before the banner: a Ctrl-C from then on stops the demo cleanly.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot install the Ctrl-C handler")?;
    let agent = Agent::start(cfg, Vec::new())
        .await
        .context("cannot start the agent (is --listen free?)")?;
    let header = table::header_lines(opts.pods, agent.addr, &pods_dir, &opts.links);
    for line in &header {
        println!("{line}");
    }
    // Ctrl-C ends the demo cleanly: the agent stops (final checkpoint), the
    // engine stand-ins close, the temporary tree is removed.
    let mut fleet = Fleet::default();
    let mut interrupted = false;
    let result = tokio::select! {
        r = deploy(&opts, &plans, &pods_dir, &agent, &header, &skews, &mut fleet, began) => r,
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
    wind_down(fleet, agent).await;
    if result.is_ok() && !interrupted {
        print_next_step(&opts, &pods_dir);
    }
    result
}

/// Checks the flags before anything starts; returns the parsed `--check-skew`s.
fn check_options(opts: &DemoOptions) -> Result<Vec<Skew>> {
    if opts.pods == 0 {
        bail!("--pods must be at least 1");
    }
    if opts.max_engine_delay.0 < opts.min_engine_delay.0 {
        bail!("--max-engine-delay must not be shorter than --min-engine-delay");
    }
    if opts.min_engine_delay.0 < Duration::from_millis(100) {
        bail!("--min-engine-delay must be at least 100ms: the race needs an engine that binds after the proxy takes traffic");
    }
    if opts.tick.0.is_zero() {
        bail!("--tick must be longer than 0");
    }
    if opts.quiet_period.0 < 2 * opts.tick.0 {
        bail!("--quiet-period must be at least twice --tick: a logs-only gap would end between two beats of its own errors");
    }
    opts.check_skews
        .iter()
        .map(|s| Skew::parse(s).map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>>>()
}

/// The demo's tree: `--dir` (which must not hold an earlier run) or a
/// temporary directory, returned too so it lives as long as the run.
fn demo_root(opts: &DemoOptions) -> Result<(PathBuf, Option<TempDir>)> {
    match &opts.dir {
        // A second run into the same tree would append to the first run's
        // logs and resume its checkpoint: its numbers would be doubled.
        Some(d) if d.join("pods").exists() || d.join("state.json").exists() => bail!(
            "--dir {} holds an earlier demo's logs or state: remove it or choose another directory",
            d.display()
        ),
        Some(d) => Ok((d.clone(), None)),
        None => {
            let tmp = tempfile_dir()?;
            Ok((tmp.path.clone(), Some(tmp)))
        }
    }
}

/// The agent's settings: the node role over the simulated pods' logs.
fn agent_settings(
    opts: &DemoOptions,
    root: &Path,
    pods_dir: &Path,
) -> Result<crate::config::Settings> {
    let cfg = Config {
        globs: vec![format!("{}/*_*litellm*_*/*/*.log", pods_dir.display())],
        state_file: root.join("state.json"),
        read_from: ReadFrom::Beginning,
        listen: opts.listen.clone(),
        poll_interval: HumanDuration(Duration::from_secs(1)),
        quiet_period: opts.quiet_period,
        ..Config::default()
    };
    Ok(crate::config::Settings::try_from(cfg)?)
}

/// Stops the fleet and the agent, then ends the pods' logs.
async fn wind_down(fleet: Fleet, agent: Agent) {
    let logs = fleet.stop().await;
    agent.shutdown().await;
    // The pods end with the demo: their logs say so as Uvicorn does, after
    // the agent stopped reading, so `report` over them sees complete runs.
    for mut w in logs {
        if let Err(e) = script::shut_down(&mut w) {
            tracing::warn!(error = %e, "cannot finish a simulated log");
        }
    }
}

/// What to try next after a successful run.
fn print_next_step(opts: &DemoOptions, pods_dir: &Path) {
    match &opts.dir {
        Some(dir) => println!(
            "\nThe logs stay in {}: `litellm-sentinel report {}` tells the same story after the fact (gaps estimated from the logs).",
            dir.display(),
            pods_dir.display()
        ),
        None => println!(
            "\nNext: `demo --dir DIR` keeps these logs for `litellm-sentinel report`; deploy/ and `litellm-sentinel inject` put the agent on your cluster."
        ),
    }
}

/// Plays the pods one after the other (a rolling deploy), then checks the agent.
#[allow(clippy::too_many_arguments)]
async fn deploy(
    opts: &DemoOptions,
    plans: &[PodPlan],
    pods_dir: &Path,
    agent: &Agent,
    header: &[String],
    skews: &[Skew],
    fleet: &mut Fleet,
    began: Instant,
) -> Result<()> {
    let started = Arc::new(AtomicUsize::new(0));
    // Stops redrawing when `deploy` ends, however it ends (an error stays on screen).
    let printer = (!opts.no_live).then(|| {
        AbortOnDrop(Some(spawn_table_printer(
            agent.addr,
            header.to_vec(),
            plans.to_vec(),
            started.clone(),
        )))
    });
    let played = play_pods(opts, plans, pods_dir, agent, fleet, &started).await?;
    // Wait until the agent has read everything and closed every gap (the
    // logs-only pod's after its quiet period).
    let tol = Tolerance {
        probe_interval: PROBE_INTERVAL,
    };
    let checks_of = |m: &Exposition, skews: &[Skew]| -> Vec<Vec<Check>> {
        plans
            .iter()
            .zip(&played)
            .enumerate()
            .map(|(i, (plan, p))| {
                check::pod_checks(plan, p, m, &tol, if i == 0 { skews } else { &[] })
            })
            .collect()
    };
    // Settled: the agent's numbers are what was written (a wrong agent
    // never settles and is judged at the deadline).
    let deadline = opts.quiet_period.0 + Duration::from_secs(15);
    let last = wait_for(agent.addr, deadline, |m| {
        checks_of(m, &[]).iter().flatten().all(|c| c.ok)
    })
    .await
    .context("cannot read the agent's /metrics")?;
    if let Some(p) = printer {
        // Wait until it has stopped: a redraw must not clear the summary.
        p.stop().await;
    }
    let checks = checks_of(&last, skews);
    verdict(plans, &played, &checks, &last, began)
}

/// Plays each pod's log (its engine stand-in and, for a sidecar pod, the
/// agent's probe of it), one after the other; `started` counts the pods
/// begun, for the live table.
async fn play_pods(
    opts: &DemoOptions,
    plans: &[PodPlan],
    pods_dir: &Path,
    agent: &Agent,
    fleet: &mut Fleet,
    started: &AtomicUsize,
) -> Result<Vec<Played>> {
    let mut played: Vec<Played> = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        let engine = EngineStandin::start(StandinOptions {
            bind_after: plan.engine_delay,
            ..Default::default()
        })
        .await
        .context("cannot start a query-engine stand-in")?;
        if plan.watch == Watch::Sidecar {
            fleet.probes.push(agent_probe(agent, &plan.pod, &engine));
        }
        let path = pods_dir
            .join(format!(
                "{}_{}_{:08x}-0000-4000-8000-{:012x}",
                plan.pod.namespace, plan.pod.pod, i, i
            ))
            .join("litellm")
            .join("0.log");
        let mut w = CriWriter::create(&path)?;
        started.store(i + 1, Ordering::Relaxed);
        let p = script::play(&mut w, plan, &engine, opts.tick.0, i as u64).await?;
        fleet.engines.push(engine);
        if plan.watch == Watch::Sidecar {
            // Traffic after the probe saw the engine must not count as at risk.
            // (Not closed in time: the final check says so.)
            wait_for(agent.addr, Duration::from_secs(10), |m| gap_closed(m, plan))
                .await
                .context("cannot read the agent's /metrics")?;
        }
        script::after_gap(&mut w, i as u64)?;
        fleet.logs.push(w);
        played.push(p);
    }
    Ok(played)
}

/// Prints the final table and summary; fails naming every check that did
/// not hold.
fn verdict(
    plans: &[PodPlan],
    played: &[Played],
    checks: &[Vec<Check>],
    last: &Exposition,
    began: Instant,
) -> Result<()> {
    println!();
    for line in table::table(plans, last, Timestamp::now()) {
        println!("{line}");
    }
    print_summary(plans, played, checks, last);
    let total = checks.iter().map(Vec::len).sum::<usize>();
    let failed: Vec<String> = plans
        .iter()
        .zip(checks)
        .flat_map(|(plan, cs)| {
            cs.iter()
                .filter(|c| !c.ok)
                .map(|c| check::mismatch(plan, c))
        })
        .collect();
    let took = began.elapsed().as_secs_f64();
    if !failed.is_empty() {
        println!(
            "\ndemo: {} of {total} checks FAILED ({took:.1} s): the agent's /metrics differ from what was simulated",
            failed.len()
        );
        bail!(
            "{} of {total} checks failed:\n  {}",
            failed.len(),
            failed.join("\n  ")
        );
    }
    println!(
        "\nAll counts match what was simulated. demo: {} pods, {total} checks passed, 0 failed ({took:.1} s)",
        plans.len()
    );
    Ok(())
}

fn print_summary(plans: &[PodPlan], played: &[Played], checks: &[Vec<Check>], m: &Exposition) {
    println!(
        "\nSummary: what the demo simulated = what the agent's /metrics say (scraped over HTTP)"
    );
    println!(
        "    {:<4} {:<28} {:>9}   {:<9} meaning",
        "", "", "simulated", "/metrics"
    );
    for ((plan, p), cs) in plans.iter().zip(played).zip(checks) {
        println!("  {}", check::pod_heading(plan, p));
        for c in cs {
            println!("{}", check::check_line(c));
        }
    }
    let sum = |name: &str| -> f64 {
        m.select(&format!("litellm_sentinel_{name}"), &[("namespace", "llm")])
            .map(|s| s.value)
            .sum()
    };
    println!(
        "\n  Across the rollout: {} spend batches dropped ({} rows never billed), {} rows re-queued, {} requests served inside a gap.",
        sum("spend_batches_dropped_total"),
        sum("spend_rows_lost_total"),
        sum("spend_rows_requeued_total"),
        sum("requests_during_gap_total")
    );
}

/// Starts probing `pod`'s engine inside the running agent, as its sidecar would.
fn agent_probe(agent: &Agent, pod: &PodRef, engine: &EngineStandin) -> tokio::task::JoinHandle<()> {
    let probes = ProbeConfig {
        engine_url: Some(engine.url()),
        fast_interval: PROBE_INTERVAL,
        slow_interval: Duration::from_secs(2),
        timeout: Duration::from_millis(500),
        ..Default::default()
    };
    agent.add_probes(PodProbes {
        pod: pod.clone(),
        probes,
    })
}

/// The probe has closed `plan`'s gap (as `/metrics` shows it).
fn gap_closed(m: &Exposition, plan: &PodPlan) -> bool {
    let with = [
        ("namespace", plan.pod.namespace.as_str()),
        ("pod", plan.pod.pod.as_str()),
    ];
    m.value("litellm_sentinel_in_startup_gap", &with) == Some(0.0)
        && m.select("litellm_sentinel_last_startup_gap_seconds", &with)
            .next()
            .is_some()
}

/// Scrapes `/metrics` until `cond` holds or `deadline` passes; returns the
/// last scrape (an error only if no scrape ever succeeded).
async fn wait_for(
    addr: std::net::SocketAddr,
    deadline: Duration,
    mut cond: impl FnMut(&Exposition) -> bool,
) -> Result<Exposition> {
    let end = tokio::time::Instant::now() + deadline;
    let mut last: Option<Exposition> = None;
    let mut last_err = None;
    loop {
        match scrape(addr).await {
            Ok(m) => {
                let done = cond(&m);
                last = Some(m);
                if done {
                    break;
                }
            }
            Err(e) => last_err = Some(e),
        }
        if tokio::time::Instant::now() >= end {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    match (last, last_err) {
        (Some(m), _) => Ok(m),
        (None, Some(e)) => Err(e.into()),
        (None, None) => bail!("no scrape of /metrics"),
    }
}

fn spawn_table_printer(
    addr: std::net::SocketAddr,
    header: Vec<String>,
    plans: Vec<PodPlan>,
    started: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let n = started.load(Ordering::Relaxed).min(plans.len());
            let rows = match scrape(addr).await {
                Ok(m) => table::table(&plans[..n], &m, Timestamp::now()),
                Err(e) => vec![format!("(cannot read /metrics: {e})")],
            };
            print!("\x1b[2J\x1b[H");
            for line in header.iter().chain(&rows) {
                println!("{line}");
            }
            let _ = std::io::stdout().flush();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

/// A task aborted when this is dropped.
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl AbortOnDrop {
    /// Aborts the task and waits until it no longer runs.
    async fn stop(mut self) {
        if let Some(t) = self.0.take() {
            t.abort();
            // A cancelled task's JoinError is the expected outcome.
            let _ = t.await;
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.abort();
        }
    }
}

/// A temporary directory removed on drop (no extra crate in the binary).
struct TempDir {
    path: PathBuf,
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the demo's temporary directory");
        }
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
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        demo: DemoOptions,
    }

    #[test]
    fn pods_cycle_through_both_families_and_a_logs_only_pod() {
        let cli = Cli::parse_from(["demo", "--pods", "4"]);
        let p = plans(&cli.demo);
        let setups: Vec<_> = p.iter().map(|p| (p.family, p.watch)).collect();
        assert_eq!(
            setups,
            [
                (Family::V1_83, Watch::Sidecar),
                (Family::V1_110, Watch::Sidecar),
                (Family::V1_83, Watch::LogsOnly),
                (Family::V1_83, Watch::Sidecar),
            ]
        );
        for plan in &p {
            assert!((Duration::from_secs(4)..Duration::from_secs(9)).contains(&plan.engine_delay));
        }
        // Same seed, same deploy.
        let again = plans(&Cli::parse_from(["demo", "--pods", "4"]).demo);
        assert_eq!(
            p.iter().map(|p| p.engine_delay).collect::<Vec<_>>(),
            again.iter().map(|p| p.engine_delay).collect::<Vec<_>>()
        );
    }
}
