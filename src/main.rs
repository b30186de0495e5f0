//! The `litellm-sentinel` binary: argument parsing, logging, signals.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use litellm_sentinel::agent::Agent;
use litellm_sentinel::classify::RulePack;
use litellm_sentinel::config::{
    compile_rules, Config, HumanDuration, LogFormat, Overrides, Settings,
};
use litellm_sentinel::error::chain;
use litellm_sentinel::report;

/// Watches LiteLLM proxy pods for the Prisma query-engine start-up race
/// (`httpx.ConnectError: All connection attempts failed` for minutes after a
/// pod starts) and turns it into Prometheus metrics, alerts and a readiness gate.
#[derive(Parser)]
#[command(name = "litellm-sentinel", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at start-up; boxing buys nothing
enum Command {
    /// Run the agent: tail LiteLLM container logs (node role, DaemonSet) or
    /// probe the query engine and serve /gate (sidecar role).
    Run {
        /// TOML configuration file (every key can also be set by flag or LITELLM_SENTINEL_* env).
        #[arg(long, short, env = "LITELLM_SENTINEL_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Post-mortem over log files or `kubectl logs` output: start-up gaps,
    /// dropped spend batches, budget-cache misses and DB errors per pod; a
    /// loss ledger (--events), an HTML timeline (--html) and an exit code
    /// for CI (--fail-on).
    #[command(after_help = REPORT_AFTER_HELP)]
    Report(ReportArgs),
    /// Simulate a rolling deploy of LiteLLM pods on this machine and watch the
    /// real agent measure it (log files, late-starting engine stand-ins, probes).
    Demo(litellm_sentinel::demo::DemoOptions),
    /// Validate a configuration file and print the effective configuration.
    CheckConfig {
        /// The TOML file to check.
        file: PathBuf,
    },
    /// Print the built-in rule pack (a starting point for your own `--rules` file).
    Rules,
    /// Add the sidecar and its /gate probe to every LiteLLM Deployment/StatefulSet
    /// in the Kubernetes manifests on stdin; write them to stdout (everything
    /// else byte-identical). A Helm post-renderer:
    /// `helm install … --post-renderer litellm-sentinel --post-renderer-args inject`.
    Inject(litellm_sentinel::inject::InjectOptions),
}

const REPORT_AFTER_HELP: &str = "\
Examples:
  kubectl logs -n llm -l app=litellm --prefix --timestamps --tail=-1 \\
    | litellm-sentinel report -n llm - --html incident.html --fail-on drops
  litellm-sentinel report /var/log/pods --since 2h --events > ledger.jsonl
  litellm-sentinel report rollout.log --fail-on 'drops,gap>60s,outage'

Exit status:
  0  the report was made and no --fail-on condition holds
  1  a --fail-on condition holds (one line on stderr says which)
  2  usage error (bad flag or value, bad --rules file, --since not before --until)
  3  an input could not be read or an output not written (the path is named)";

#[derive(clap::Args)]
struct ReportArgs {
    /// Files or directories (searched for *.log, rotated *.log.* and *.gz);
    /// `-` reads stdin. `kubectl logs --prefix` lines are split into one pod per prefix.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long, conflicts_with = "events")]
    json: bool,
    /// Print the loss ledger instead of a table: one line per event (record
    /// time, pod, kind, operation, rows, rule id, file and byte offset; never the line's text).
    #[arg(long)]
    events: bool,
    /// Format of --events.
    #[arg(long, value_enum, default_value = "jsonl", requires = "events")]
    events_format: report::ledger::LedgerFormat,
    /// Also write a self-contained HTML page: totals and one SVG timeline per pod.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Exit 1 when the logs show this: `drops` (a dropped spend batch, a lost
    /// row or key/user/team spend not applied), `gap>DURATION` (a start-up gap longer than that, e.g. gap>60s),
    /// `outage` (a mid-life DB outage). Repeat it or give a comma list; quote
    /// `'gap>60s'` in a shell.
    #[arg(long, value_name = "CONDITION", value_delimiter = ',', value_parser = report::failon::FailOn::parse)]
    fail_on: Vec<report::failon::FailOn>,
    /// Only records at or after this: an RFC 3339 time, or a duration before
    /// the last record (`2h`: the last two hours logged).
    #[arg(long, value_name = "TIME|DURATION", value_parser = report::window::Bound::parse)]
    since: Option<report::window::Bound>,
    /// Only records before this: an RFC 3339 time, or a duration before the last record.
    #[arg(long, value_name = "TIME|DURATION", value_parser = report::window::Bound::parse)]
    until: Option<report::window::Bound>,
    /// The pod of inputs that do not name one (a plain `kubectl logs` file, stdin).
    #[arg(long, value_name = "NAMESPACE/NAME")]
    pod: Option<String>,
    /// Namespace of pods whose input does not say (`kubectl logs --prefix` names no namespace).
    #[arg(long, short = 'n')]
    namespace: Option<String>,
    /// User rule pack adding to / overriding the built-in rules.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Quiet period that ends a log-measured gap, e.g. 60s.
    #[arg(long, default_value_t = default_quiet_period(), value_parser = HumanDuration::parse)]
    quiet_period: HumanDuration,
    /// LiteLLM release the logs come from (1.83.14, 1.110): 1.83 drops a
    /// failed spend-log batch, 1.108+ re-queues it. Default: each file's own
    /// retry lines decide (with no hint, the 1.83 reading).
    #[arg(long, value_parser = parse_litellm_version)]
    litellm_version: Option<litellm_sentinel::classify::VersionFamily>,
}

/// The timeline's own default (the agent's `quiet_period` starts from it too).
fn default_quiet_period() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs_f64(
        litellm_sentinel::timeline::DEFAULT_QUIET_PERIOD_SECS,
    ))
}

/// `--litellm-version`: a release like 1.83.14 or 1.110.
fn parse_litellm_version(s: &str) -> Result<litellm_sentinel::classify::VersionFamily, String> {
    litellm_sentinel::classify::VersionFamily::parse(s)
        .ok_or_else(|| format!("`{s}` is not a LiteLLM version like 1.83.14 or 1.110"))
}

/// Logs go to stderr; `RUST_LOG` filters them (default `info`, the demo `warn`).
fn init_logging(format: LogFormat, default_level: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

/// Waits for SIGTERM (the kubelet) or SIGINT (a terminal).
async fn wait_for_signal(mut term: tokio::signal::unix::Signal) {
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        r = tokio::signal::ctrl_c() => match r {
            Ok(()) => tracing::info!("SIGINT: shutting down"),
            Err(e) => {
                // SIGTERM still works; wait for it alone.
                tracing::warn!(error = %e, "cannot listen for SIGINT; only SIGTERM stops the agent");
                term.recv().await;
                tracing::info!("SIGTERM: shutting down");
            }
        },
    }
}

async fn run(config: Option<PathBuf>, overrides: Overrides) -> Result<()> {
    // The raw layer first: it says how to log; the conversion then logs what it compiles.
    let raw = Config::read(config.as_deref(), &overrides)?;
    init_logging(raw.log_format, "info");
    let settings = Settings::try_from(raw)?;
    tracing::info!(config = %settings.to_redacted_toml().trim_end().replace('\n', "; "), "effective configuration");
    let watched: Vec<PathBuf> = config
        .iter()
        .chain(settings.rules_file.iter())
        .cloned()
        .collect();
    // Installed before the agent starts: a SIGTERM during start-up (a pod
    // deleted while restoring its checkpoint) shuts down cleanly, not by
    // the signal's default action.
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
    let agent = Agent::start(settings, Vec::new()).await?;
    let (_watcher, mut changed) = watch_files(&watched);
    let stop = wait_for_signal(term);
    tokio::pin!(stop);
    loop {
        let why = tokio::select! {
            _ = &mut stop => break,
            _ = hup.recv() => "SIGHUP",
            Some(()) = changed.recv() => {
                // Editors and ConfigMap updates write in several steps: let them settle.
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                while changed.try_recv().is_ok() {}
                "file change"
            }
        };
        // Built once: the rule pack is compiled here, and only here.
        let reloaded = match Settings::load(config.as_deref(), &overrides) {
            Ok(new) => agent.reload(new),
            Err(e) => {
                agent
                    .metrics
                    .agent
                    .config_reloads
                    .with_label_values(&["failure"])
                    .inc();
                Err(e.into())
            }
        };
        match reloaded {
            Ok(restart) if restart.is_empty() => {
                tracing::info!(trigger = why, "configuration reloaded")
            }
            Ok(restart) => {
                tracing::warn!(trigger = why, needs_restart = ?restart, "configuration reloaded; these settings only take effect after a restart")
            }
            Err(e) => {
                tracing::error!(trigger = why, error = %format!("{e:#}"), "configuration rejected; the previous one stays in force")
            }
        }
    }
    // Bounded: the process must be gone well within the kubelet's grace period.
    if tokio::time::timeout(std::time::Duration::from_secs(5), agent.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown took longer than 5 s; exiting anyway");
    }
    Ok(())
}

/// Watches the directories of the config and rule files (a Kubernetes
/// ConfigMap update swaps a symlink in the directory, it does not write the file).
fn watch_files(
    files: &[PathBuf],
) -> (
    Option<notify::RecommendedWatcher>,
    tokio::sync::mpsc::UnboundedReceiver<()>,
) {
    use notify::Watcher;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    if files.is_empty() {
        return (None, rx);
    }
    let names: Vec<std::ffi::OsString> = files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_owned()))
        .collect();
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            let relevant = ev.paths.iter().any(|p| {
                p.file_name().is_some_and(|n| {
                    names.iter().any(|w| w == n) || n.to_string_lossy().starts_with("..")
                })
            });
            if relevant && !matches!(ev.kind, notify::EventKind::Access(_)) {
                let _ = tx.send(());
            }
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the config file; reload with SIGHUP");
            return (None, rx);
        }
    };
    for f in files {
        let dir = f
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        if let Err(e) = watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
            tracing::warn!(path = %dir.display(), error = %e, "cannot watch the config directory; reload with SIGHUP");
        }
    }
    (Some(watcher), rx)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config, overrides } => tokio_main(run(config, overrides)),
        Command::Report(args) => return report_cmd(args),
        Command::Demo(opts) => {
            init_logging(LogFormat::Text, "warn");
            tokio_main(litellm_sentinel::demo::run(opts))
        }
        Command::CheckConfig { file } => Settings::load(Some(&file), &Overrides::default())
            .map(|s| print!("{}", s.to_redacted_toml()))
            .map_err(Into::into),
        Command::Rules => {
            print!("{}", RulePack::builtin_source());
            Ok(())
        }
        Command::Inject(opts) => inject_cmd(&opts),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `inject`: stdin → stdout; what changed goes to stderr (stdout is the manifest stream).
fn inject_cmd(opts: &litellm_sentinel::inject::InjectOptions) -> Result<()> {
    use std::io::{Read, Write};
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("cannot read the manifests from stdin (UTF-8 YAML expected)")?;
    let out = litellm_sentinel::inject::inject(&input, opts)?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.output.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write the manifests to stdout")?;
    for w in &out.changed {
        eprintln!("litellm-sentinel inject: {w}: sidecar added");
    }
    for w in &out.already {
        eprintln!("litellm-sentinel inject: {w}: already has the sidecar, unchanged");
    }
    if out.changed.is_empty() && out.already.is_empty() {
        eprintln!(
            "litellm-sentinel inject: no Deployment/StatefulSet runs LiteLLM (container name {:?} or image {:?}*); nothing changed",
            opts.container_name, opts.image_match
        );
    }
    Ok(())
}

fn tokio_main(fut: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(fut)
}

/// `report`: exit 0 (fine), 1 (a --fail-on condition holds), 2 (usage), 3 (I/O, naming the path).
fn report_cmd(args: ReportArgs) -> ExitCode {
    use report::ReportError;
    let usage = |msg: String| {
        eprintln!("error: {msg}");
        ExitCode::from(2)
    };
    let pod = match args.pod.as_deref().map(parse_pod).transpose() {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let rules = match compile_rules(args.rules.as_deref(), args.litellm_version) {
        Ok(r) => Arc::new(r),
        Err(e) => return usage(chain(&e).to_string()),
    };
    let opts = report::ReportOptions {
        quiet_period_secs: args.quiet_period.0.as_secs_f64(),
        pod,
        namespace: args.namespace.clone(),
        window: report::window::WindowSpec {
            since: args.since,
            until: args.until,
        },
        ..Default::default()
    };
    let inputs: Vec<report::input::Input> = args
        .paths
        .iter()
        .map(|p| report::input::Input::parse(p))
        .collect();
    {
        use std::io::IsTerminal;
        if inputs.contains(&report::input::Input::Stdin) && std::io::stdin().is_terminal() {
            eprintln!("hint: reading logs from the terminal (end with Ctrl-D); pipe `kubectl logs --prefix --timestamps` into `report -`");
        }
    }
    let r = match report::run(&inputs, rules, &opts) {
        Ok(r) => r,
        Err(e @ ReportError::Usage(_)) => return usage(e.to_string()),
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            return ExitCode::from(3);
        }
    };
    for hint in &r.hints {
        eprintln!("hint: {hint}");
    }
    if let Some(path) = &args.html {
        if let Err(e) = std::fs::write(path, report::html::render(&r)) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::from(3);
        }
    }
    let written = {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let w = if args.events {
            report::ledger::write(&r, args.events_format, &mut out)
        } else if args.json {
            writeln!(out, "{}", report::render_json(&r))
        } else {
            write!(out, "{}", report::render_table(&r))
        };
        w.and_then(|()| out.flush())
    };
    match written {
        Ok(()) => {}
        // `report … | head`: the reader has what it wanted.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            eprintln!("error: cannot write the report to stdout: {e}");
            return ExitCode::from(3);
        }
    }
    match report::failon::verdict(&args.fail_on, &r) {
        Some(reason) => {
            eprintln!("{reason}");
            ExitCode::from(1)
        }
        None => ExitCode::SUCCESS,
    }
}

/// `--pod NAMESPACE/NAME` (or a bare NAME), checked like Kubernetes names.
fn parse_pod(s: &str) -> Result<litellm_sentinel::format::PodRef, String> {
    let (ns, name) = s.split_once('/').unwrap_or(("", s));
    let ok = |n: &str, max: usize| {
        (1..=max).contains(&n.len())
            && n.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'.'))
    };
    if !ok(name, 253) || !(ns.is_empty() || ok(ns, 63)) {
        return Err(format!(
            "--pod `{s}`: expected NAMESPACE/NAME with Kubernetes names (lowercase letters, digits, `-`, `.`)"
        ));
    }
    Ok(litellm_sentinel::format::PodRef::new(ns, name))
}
