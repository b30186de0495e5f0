//! The running agent: the tail loop on its own thread, the probes, the
//! checkpoint, the HTTP server, and a clean shutdown.
//!
//! This is the program's top: it wires the stages together (it is the only
//! module that knows all of them) and returns `anyhow` errors with context
//! for the binary to print.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::{mpsc, watch};

use crate::classify::RulePack;
use crate::config::{Config, ReadFrom, Role};
use crate::format::PodRef;
use crate::gate::{GateCollector, GateConfig, Gates, SharedGates};
use crate::metrics::{Metrics, SharedTracker, TrackerMutex};
use crate::pipeline::Pipeline;
use crate::probe::{ProbeConfig, ProbeOutcome, Secret, Target};
use crate::server::AppState;
use crate::state::{Snapshot, STATE_VERSION};
use crate::tail::{TailConfig, Tailer};
use crate::time::Timestamp;
use crate::timeline::{TimelineConfig, Tracker};

/// Raises the soft limit on open descriptors to the hard limit: a node
/// agent holds one per followed file (plus rotated ones draining), and the
/// usual soft limit of 1024 is far below what a busy node needs (the issue:
/// 400 files under `ulimit -n 256` made /healthz unreachable). Returns
/// (before, after).
pub fn raise_nofile_limit() -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok((before, lim.rlim_cur))
}

/// Probes of one pod, beyond what the config describes (the demo probes one engine per pod).
#[derive(Clone, Debug)]
pub struct PodProbes {
    pub pod: PodRef,
    pub probes: ProbeConfig,
}

/// A running agent.
pub struct Agent {
    /// Where the HTTP server listens (useful with port 0).
    pub addr: SocketAddr,
    pub tracker: SharedTracker,
    pub metrics: Arc<Metrics>,
    /// The gate and per-pod engine state (engines found/up, LiteLLM version).
    pub gates: SharedGates,
    shutdown: watch::Sender<bool>,
    shutdown_rx: watch::Receiver<bool>,
    tail_thread: Option<std::thread::JoinHandle<()>>,
    /// Reloads for the tail thread (globs, rules).
    reload_tx: Option<std::sync::mpsc::Sender<Reload>>,
    /// The configuration in force (for reload diffs).
    current: Mutex<Config>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The OTLP pusher and its own stop signal, given after the tail loop's
    /// final pass so that the final push carries the final counts.
    otlp: Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Loads the built-in rule pack plus the configured user pack.
pub fn load_rules(cfg: &Config) -> Result<RulePack> {
    let pin = cfg
        .litellm_version
        .as_deref()
        .and_then(crate::classify::VersionFamily::parse);
    let pack = match &cfg.rules {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read rule pack {}", path.display()))?;
            RulePack::with_user_pack(&text, &path.display().to_string())
                .with_context(|| format!("rule pack {} is invalid", path.display()))
        }
        None => RulePack::builtin()
            .context("the built-in rule pack does not compile (a bug: please report it)"),
    }?;
    Ok(pack.with_version_pin(pin))
}

/// The probe configuration of the sidecar (or a node agent given probe URLs).
fn configured_probes(cfg: &Config) -> Option<PodProbes> {
    let p = &cfg.probe;
    let discover = p
        .discover_engine
        .unwrap_or(cfg.role == Role::Sidecar && p.engine_url.is_none());
    let probes = ProbeConfig {
        engine_url: p.engine_url.clone(),
        discover_engine: discover,
        proc_root: p.proc_root.clone(),
        proxy_url: p.proxy_url.clone(),
        database_url: p.database_url.clone().map(Secret::new),
        fast_interval: p.fast_interval.0,
        slow_interval: p.slow_interval.0,
        timeout: p.timeout.0,
    };
    if probes.targets().is_empty() {
        return None;
    }
    let pod = PodRef {
        namespace: p.namespace.clone().unwrap_or_default(),
        pod: p.pod.clone().unwrap_or_else(|| "local".to_string()),
    };
    Some(PodProbes { pod, probes })
}

impl Agent {
    /// Starts everything; returns once the server listens.
    pub async fn start(cfg: Config, extra_probes: Vec<PodProbes>) -> Result<Agent> {
        let rules = Arc::new(load_rules(&cfg)?);
        let cfg_for_reload = cfg.clone();
        let tailing = cfg.role == Role::Node || cfg.globs != Config::default().globs;
        let tracker: SharedTracker = Arc::new(TrackerMutex::new(Tracker::new(TimelineConfig {
            quiet_period_secs: cfg.quiet_period.0.as_secs_f64(),
            max_pods: cfg.max_pods,
            pod_ttl_secs: cfg.pod_ttl.0.as_secs_f64(),
            ..Default::default()
        })));
        let metrics = Arc::new(Metrics::new(tracker.clone()).context("cannot register metrics")?);
        metrics.agent.rules_loaded.set(rules.len() as i64);
        let otlp_cfg = crate::otlp::OtlpConfig::from_env_and_config(&cfg)
            .context("OTLP push settings (otlp_endpoint, OTEL_EXPORTER_OTLP_*)")?;
        let web = crate::server::web_security(cfg.web_config_file.as_deref())
            .context("web config (--web.config.file)")?;

        let mut restored = None;
        let mut state_lock = None;
        if tailing {
            match raise_nofile_limit() {
                Ok((before, after)) if after > before => {
                    tracing::info!(
                        before,
                        after,
                        "raised the open-file limit to its hard limit"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
            }
            if let Some(dir) = cfg
                .state_file
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                // Not fatal: counting goes on without checkpoints, and the failure
                // shows in `checkpoint_failures_total`, `/readyz` and the log.
                if let Err(e) = std::fs::create_dir_all(dir) {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot create the state directory (set --state-file to a writable path); counting continues without checkpoints");
                }
            }
            // One agent per state file: a second one would overwrite the
            // first one's checkpoints with its own (and count everything twice).
            match crate::state::lock_dir(&cfg.state_file) {
                Ok(l) => state_lock = Some(l),
                Err(e @ crate::state::StateError::Locked { .. }) => {
                    return Err(anyhow::Error::new(e).context("another agent uses this state file"))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot lock the state directory; counting continues")
                }
            }
            match crate::state::load(&cfg.state_file) {
                Ok(s) => restored = s,
                // Never a silent reset: a newer layout is somebody else's state.
                Err(e @ crate::state::StateError::TooNew { .. }) => {
                    return Err(anyhow::Error::new(e).context("cannot use the state file"))
                }
                Err(e) => tracing::warn!(error = %e, "starting without a checkpoint"),
            }
        }
        let first_start = restored.is_none();
        let (files, tracker_state, retained) = match restored {
            Some(s) => (s.files, Some(s.tracker), s.retained),
            None => (Vec::new(), None, Vec::new()),
        };
        if let Some(ts) = tracker_state {
            if let Ok(mut t) = tracker.lock() {
                t.restore(ts);
            }
            tracing::info!(
                files = files.len(),
                "restored checkpoint: counters continue from their saved values"
            );
        }

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let watching = Arc::new(AtomicBool::new(!tailing));

        // Probes: each pod's outcomes feed the tracker and the probe metrics.
        let mut all_probes = extra_probes;
        all_probes.extend(configured_probes(&cfg));
        let mut tasks = Vec::new();
        let mut gate = GateConfig {
            mode: cfg.gate,
            down_after: cfg.gate_down_after.0,
            state_file: cfg.gate_state_file.clone(),
            ..GateConfig::default()
        };
        for pp in &all_probes {
            pp.probes.validate().with_context(|| {
                format!("probe settings for pod {}/{}", pp.pod.namespace, pp.pod.pod)
            })?;
            let targets = pp.probes.targets();
            if gate.pod.is_none() && targets.contains(&Target::Engine) {
                gate.pod = Some(pp.pod.clone());
                gate.required = targets
                    .iter()
                    .copied()
                    .filter(|t| matches!(t, Target::Engine | Target::Database))
                    .collect();
                gate.proxy_probed = targets.contains(&Target::ProxyReadiness);
            }
        }
        let gates: SharedGates = Arc::new(Mutex::new(Gates::new(gate)));
        metrics
            .registry
            .register(Box::new(
                GateCollector::new(gates.clone()).context("cannot describe the gate metrics")?,
            ))
            .context("cannot register the gate metrics")?;
        for pp in &all_probes {
            tasks.push(spawn_pod_probes(
                pp.clone(),
                &tracker,
                &metrics,
                &gates,
                shutdown_rx.clone(),
            ));
        }

        let (reload_tx, reload_rx) = std::sync::mpsc::channel::<Reload>();
        let tail_thread = if tailing {
            let tail_loop = TailLoop {
                tail: TailConfig {
                    globs: cfg.globs.clone(),
                    max_line_bytes: cfg.max_line_bytes,
                    poll_interval: cfg.poll_interval.0,
                    force_polling: cfg.force_polling,
                    start_at_end: first_start && cfg.read_from == ReadFrom::End,
                },
                checkpoint_interval: cfg.checkpoint_interval.0,
                state_file: cfg.state_file.clone(),
                probed_pods: all_probes.iter().map(|p| p.pod.clone()).collect(),
                pipeline: Pipeline::new(rules, tracker.clone(), cfg.max_line_bytes, files.clone()),
                positions: files.into_iter().map(|f| f.position).collect(),
                retained,
                _state_lock: state_lock,
                tracker: tracker.clone(),
                metrics: metrics.clone(),
                watching: watching.clone(),
                shutdown: shutdown_rx.clone(),
                reloads: reload_rx,
            };
            Some(
                std::thread::Builder::new()
                    .name("tail".into())
                    .spawn(move || tail_loop.run())
                    .context("cannot start the tail thread")?,
            )
        } else {
            None
        };

        let addr: SocketAddr = cfg
            .listen
            .parse()
            .with_context(|| format!("`listen` = {} is not host:port", cfg.listen))?;
        let listener = crate::server::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = AppState {
            metrics: metrics.clone(),
            tracker: tracker.clone(),
            gates: gates.clone(),
            watching,
            state_file: tailing.then(|| cfg.state_file.clone()),
        };
        let mut rx = shutdown_rx.clone();
        let server = tokio::spawn(crate::server::serve_secured(
            listener,
            state,
            web,
            async move {
                let _ = rx.wait_for(|s| *s).await;
            },
        ));
        tracing::info!(%addr, role = ?cfg.role, tailing, "litellm-sentinel listening");
        let otlp = otlp_cfg.map(|oc| {
            let (stop, stop_rx) = watch::channel(false);
            (
                stop,
                crate::otlp::spawn_pusher(oc, metrics.clone(), stop_rx),
            )
        });
        Ok(Agent {
            addr,
            tracker,
            metrics,
            gates,
            shutdown: shutdown_tx,
            shutdown_rx,
            tail_thread,
            reload_tx: tailing.then_some(reload_tx),
            current: Mutex::new(cfg_for_reload),
            tasks,
            otlp,
            server,
        })
    }

    /// Starts probing another pod (the demo's pods appear one by one). Aborting
    /// the returned task stops its probes.
    pub fn add_probes(&self, pp: PodProbes) -> tokio::task::JoinHandle<()> {
        spawn_pod_probes(
            pp,
            &self.tracker,
            &self.metrics,
            &self.gates,
            self.shutdown_rx.clone(),
        )
    }

    /// Applies a new configuration without a restart: globs added start
    /// tailing, globs removed stop (their files drain; checkpoints are kept),
    /// and the rule pack is swapped. A config that does not validate, or a
    /// rule pack that does not compile, is rejected and the old one stays.
    /// Settings that need a restart (listen address, state file, probes) are
    /// reported in the returned list.
    pub fn reload(&self, new: Config) -> Result<Vec<&'static str>> {
        let applied = (|| -> Result<Vec<&'static str>> {
            new.validate()?;
            let rules = Arc::new(load_rules(&new)?);
            let mut cur = self
                .current
                .lock()
                .map_err(|_| anyhow::anyhow!("config lock poisoned"))?;
            let mut needs_restart = Vec::new();
            if new.listen != cur.listen {
                needs_restart.push("listen");
            }
            if new.state_file != cur.state_file {
                needs_restart.push("state_file");
            }
            if new.probe != cur.probe {
                needs_restart.push("probe");
            }
            if new.role != cur.role {
                needs_restart.push("role");
            }
            // The file's contents (certificates, users) reload by themselves; its path does not.
            if new.web_config_file != cur.web_config_file {
                needs_restart.push("web_config_file");
            }
            if let Some(tx) = &self.reload_tx {
                tx.send(Reload {
                    globs: new.globs.clone(),
                    rules: rules.clone(),
                })
                .context("the tail loop has stopped")?;
            }
            self.metrics.agent.rules_loaded.set(rules.len() as i64);
            *cur = new;
            Ok(needs_restart)
        })();
        let result = if applied.is_ok() {
            "success"
        } else {
            "failure"
        };
        self.metrics
            .agent
            .config_reloads
            .with_label_values(&[result])
            .inc();
        applied
    }

    /// Stops everything; the tail loop writes a final checkpoint first.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.tail_thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        if let Some((stop, pusher)) = self.otlp.take() {
            // One final push, bounded by the OTLP timeout.
            let _ = stop.send(true);
            let _ = pusher.await;
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
        let _ = tokio::time::timeout(Duration::from_secs(3), &mut self.server).await;
    }
}

/// Runs the probes of one pod; their outcomes feed the tracker and the probe
/// metrics. The probe tasks end when the returned task ends (their channel closes).
fn spawn_pod_probes(
    pp: PodProbes,
    tracker: &SharedTracker,
    metrics: &Arc<Metrics>,
    gates: &SharedGates,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let targets = pp.probes.targets();
    if let Ok(mut t) = tracker.lock() {
        t.register_probes(&pp.pod, &targets);
    }
    metrics.register_probe_targets(&targets);
    let (tx, mut rx) = mpsc::channel::<ProbeOutcome>(64);
    let probe_tasks = crate::probe::spawn_probes(pp.probes.clone(), tx, shutdown);
    let (tracker, metrics, gates, pod) = (tracker.clone(), metrics.clone(), gates.clone(), pp.pod);
    tokio::spawn(async move {
        // Aborting this task drops the receiver; the probe tasks see a closed channel and stop.
        let _guard = AbortOnDrop(probe_tasks);
        // The pod's engine view and series go with its probes (the demo's pods come and go).
        let _forget = ForgetOnDrop(gates.clone(), pod.clone());
        while let Some(o) = rx.recv().await {
            metrics.observe_probe(&o);
            let mut starts = 0;
            if let Ok(mut t) = tracker.lock() {
                t.apply_probe(&pod, &o);
                starts = t.pod(&pod).map_or(0, |p| p.counts.proxy_starts);
            }
            if let Ok(mut g) = gates.lock() {
                g.observe(&pod, &o, starts);
            }
        }
    })
}

/// Removes a pod's probe state from the gates when its probe task ends.
struct ForgetOnDrop(SharedGates, PodRef);

impl Drop for ForgetOnDrop {
    fn drop(&mut self) {
        if let Ok(mut g) = self.0.lock() {
            g.remove(&self.1);
        }
    }
}

/// Aborts tasks when dropped (so aborting a parent task stops its children).
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// What a reload changes in the tail thread.
struct Reload {
    globs: Vec<String>,
    rules: Arc<RulePack>,
}

/// Settings of the tail thread.
struct TailLoop {
    tail: TailConfig,
    checkpoint_interval: Duration,
    state_file: std::path::PathBuf,
    probed_pods: Vec<PodRef>,
    pipeline: Pipeline,
    /// Checkpointed positions to resume.
    positions: Vec<crate::tail::FilePosition>,
    /// Positions of closed files from the checkpoint.
    retained: Vec<crate::tail::RetainedPosition>,
    /// The state directory's lock, released when the tail loop ends.
    _state_lock: Option<crate::state::StateLock>,
    tracker: SharedTracker,
    metrics: Arc<Metrics>,
    /// Set once the first pass ran (for `/readyz`).
    watching: Arc<AtomicBool>,
    shutdown: watch::Receiver<bool>,
    reloads: std::sync::mpsc::Receiver<Reload>,
}

impl TailLoop {
    fn run(self) {
        let TailLoop {
            pipeline,
            positions,
            retained,
            tracker,
            metrics,
            watching,
            shutdown,
            reloads,
            ..
        } = self;
        let mut pipeline = pipeline;
        let mut tailer = Tailer::new(self.tail.clone(), positions);
        tailer.restore_retained(retained);
        crate::state::set_checkpoint_interval(self.checkpoint_interval);
        // The last snapshot written, and the inode and size it has on disk:
        // an unchanged state is not rewritten while that file is still there.
        let mut last_saved: Option<(Vec<u8>, (u64, u64, u64))> = None;
        let mut next_checkpoint = Instant::now() + self.checkpoint_interval;
        let mut next_expiry = Instant::now() + Duration::from_secs(30);
        let mut last = crate::tail::TailStats::default();
        let mut checkpoint_failing = false;
        let (mut last_dropped, mut last_cap_warning) = (0u64, None::<Instant>);
        loop {
            let stopping = *shutdown.borrow();
            while let Ok(r) = reloads.try_recv() {
                tailer.set_globs(r.globs);
                pipeline.set_rules(r.rules);
                tracing::info!("reloaded globs and rules");
            }
            tailer.pass(&mut pipeline);
            pipeline.advance_clocks();
            watching.store(true, Ordering::Relaxed);
            // Every file was read to its end: a silent pod's log-method gap may close.
            if let Ok(mut t) = tracker.lock() {
                t.tick(Timestamp::now());
            }
            let st = tailer.stats();
            let a = &metrics.agent;
            a.files_watched.set(st.files_watched as i64);
            a.tail_lag_bytes.set(st.lag_bytes as i64);
            a.lines_read.inc_by(st.lines_read - last.lines_read);
            a.bytes_read.inc_by(st.bytes_read - last.bytes_read);
            a.rotated_bytes_unread
                .inc_by(st.rotated_bytes_unread - last.rotated_bytes_unread);
            last = st;
            let counts = pipeline.take_counts();
            for (reason, n) in counts.malformed {
                a.lines_malformed.with_label_values(&[reason]).inc_by(n);
            }
            for (reason, n) in counts.read_errors {
                a.read_errors.with_label_values(&[reason]).inc_by(n);
            }
            // Rate-limited: a flood of new pods must not flood the agent's own log.
            let dropped = tracker.lock().map(|t| t.pods_dropped()).unwrap_or(0);
            if dropped > last_dropped
                && last_cap_warning.is_none_or(|w| w.elapsed() >= Duration::from_secs(60))
            {
                tracing::warn!(
                    dropped_events = dropped,
                    "tracked-pod cap reached: events of further pods are dropped (raise max_pods?)"
                );
                last_cap_warning = Some(Instant::now());
            }
            last_dropped = dropped;
            if Instant::now() >= next_expiry {
                next_expiry = Instant::now() + Duration::from_secs(30);
                let mut live: HashSet<PodRef> = pipeline.live_pods().cloned().collect();
                live.extend(self.probed_pods.iter().cloned());
                if let Ok(mut t) = tracker.lock() {
                    let n = t.expire(Timestamp::now(), &live);
                    a.series_expired.inc_by(n as u64);
                }
            }
            if stopping || Instant::now() >= next_checkpoint {
                next_checkpoint = Instant::now() + self.checkpoint_interval;
                // Offsets, per-file state and counters, all as of this instant:
                // this thread is the only writer of counters and offsets.
                let snap = Snapshot {
                    version: STATE_VERSION,
                    files: pipeline.file_states(tailer.positions()),
                    tracker: tracker.lock().map(|t| t.snapshot()).unwrap_or_default(),
                    retained: tailer.retained(),
                };
                let saved = serde_json::to_vec(&snap)
                    .map_err(|e| crate::state::StateError::Write {
                        path: self.state_file.clone(),
                        source: std::io::Error::other(e),
                    })
                    .and_then(|bytes| {
                        // Unchanged since the last write (idle node) and still on
                        // disk (one stat): that file already is this checkpoint;
                        // no rewrite, no fsync.
                        let on_disk = crate::state::file_identity(&self.state_file);
                        let unchanged = last_saved
                            .as_ref()
                            .is_some_and(|(b, id)| *b == bytes && on_disk == Some(*id));
                        if !unchanged {
                            crate::state::save_bytes(&self.state_file, &bytes)?;
                            last_saved =
                                crate::state::file_identity(&self.state_file).map(|id| (bytes, id));
                        }
                        Ok(())
                    });
                crate::state::record_checkpoint(&self.state_file, saved.is_ok());
                match saved {
                    Ok(()) => {
                        a.checkpoint_writes.inc();
                        if checkpoint_failing {
                            tracing::info!("checkpoint writes work again");
                            checkpoint_failing = false;
                        }
                    }
                    Err(e) => {
                        a.checkpoint_failures.inc();
                        if !checkpoint_failing {
                            // Said once per failing streak, not every few seconds.
                            tracing::warn!(error = %e, "checkpoint failed; tailing continues, a restart would re-read from the last good checkpoint");
                            checkpoint_failing = true;
                        }
                    }
                }
            }
            if stopping {
                tracing::info!("tail loop stopped after a final checkpoint");
                return;
            }
            // Idle wake-ups cost CPU on every node: at most one a second (which
            // also bounds how long a SIGTERM waits), sooner for a due checkpoint.
            let until_checkpoint = next_checkpoint.saturating_duration_since(Instant::now());
            tailer.wait(until_checkpoint.clamp(Duration::from_millis(10), Duration::from_secs(1)));
        }
    }
}
