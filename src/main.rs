//! The `litellm-sentinel` binary: argument parsing, logging, signals.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use litellm_sentinel::agent::{load_rules, Agent};
use litellm_sentinel::classify::RulePack;
use litellm_sentinel::config::{Config, LogFormat, Overrides};
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
    /// Post-mortem over log files: start-up gaps, dropped spend batches,
    /// budget-cache misses and DB errors per pod.
    Report {
        /// Files or directories (searched for *.log, rotated *.log.* and *.gz).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// User rule pack adding to / overriding the built-in rules.
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Quiet period that ends a log-measured gap, e.g. 60s.
        #[arg(long, default_value = "60s", value_parser = litellm_sentinel::config::HumanDuration::parse)]
        quiet_period: litellm_sentinel::config::HumanDuration,
    },
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

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn run(config: Option<PathBuf>, overrides: Overrides) -> Result<()> {
    let cfg = Config::load(config.as_deref(), &overrides)?;
    init_logging(cfg.log_format, "info");
    tracing::info!(config = %cfg.to_redacted_toml().replace('\n', "; "), "effective configuration");
    let watched: Vec<PathBuf> = config.iter().chain(cfg.rules.iter()).cloned().collect();
    let agent = Agent::start(cfg, Vec::new()).await?;
    let (_watcher, mut changed) = watch_files(&watched);
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot install the SIGHUP handler")?;
    let stop = wait_for_signal();
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
        let reloaded = match Config::load(config.as_deref(), &overrides) {
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
        Command::Report {
            paths,
            json,
            rules,
            quiet_period,
        } => return report_cmd(paths, json, rules, quiet_period),
        Command::Demo(opts) => {
            init_logging(LogFormat::Text, "warn");
            tokio_main(litellm_sentinel::demo::run(opts))
        }
        Command::CheckConfig { file } => Config::load(Some(&file), &Overrides::default())
            .map(|c| print!("{}", c.to_redacted_toml()))
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

fn report_cmd(
    paths: Vec<PathBuf>,
    json: bool,
    rules: Option<PathBuf>,
    quiet: litellm_sentinel::config::HumanDuration,
) -> ExitCode {
    let cfg = Config {
        rules,
        ..Config::default()
    };
    let rules = match load_rules(&cfg) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let opts = report::ReportOptions {
        quiet_period_secs: quiet.0.as_secs_f64(),
        ..Default::default()
    };
    match report::run(&paths, rules, &opts) {
        Ok(r) => {
            if json {
                println!("{}", report::render_json(&r));
            } else {
                print!("{}", report::render_table(&r));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
