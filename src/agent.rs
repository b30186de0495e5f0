//! The running agent: the tail loop on its own thread, the probes, the
//! checkpoint, the HTTP server, and a clean shutdown.
//!
//! This is the program's top: it wires the stages together (it is the only
//! module that knows all of them) and returns `anyhow` errors with context
//! for the binary to print.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::{mpsc, watch};

use crate::classify::RulePack;
use crate::config::{Config, Settings};
use crate::format::PodRef;
use crate::gate::{GateCollector, GateConfig, Gates, SharedGates};
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::probe::{ProbeConfig, ProbeOutcome, Target};
use crate::server::AppState;
use crate::state::{CheckpointWriter, Saved, Snapshot, StateError};
use crate::tail::{TailConfig, Tailer};
use crate::time::Timestamp;
use crate::timeline::{SharedTracker, Tracker};

/// Raises the soft limit on open descriptors to the hard limit: a node
/// agent holds one per followed file (plus rotated ones draining), and the
/// usual soft limit of 1024 is far below what a busy node needs (the issue:
/// 400 files under `ulimit -n 256` made /healthz unreachable). Returns
/// (before, after).
pub(crate) fn raise_nofile_limit() -> std::io::Result<(u64, u64)> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    // `None` is RLIM_INFINITY.
    let before = lim.current.unwrap_or(u64::MAX);
    if before < lim.maximum.unwrap_or(u64::MAX) {
        lim.current = lim.maximum;
        setrlimit(Resource::Nofile, lim)?;
    }
    Ok((before, lim.current.unwrap_or(u64::MAX)))
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

impl Agent {
    /// Starts everything from `settings` (a [`Settings`], or a raw
    /// [`crate::config::Config`], converted here once); returns once the server listens.
    pub async fn start<S>(settings: S, extra_probes: Vec<PodProbes>) -> Result<Agent>
    where
        S: TryInto<Settings>,
        S::Error: std::error::Error + Send + Sync + 'static,
    {
        let s: Settings = settings.try_into()?;
        let tracker = SharedTracker::new(Tracker::new(s.timeline.clone()));
        let metrics = Arc::new(Metrics::new(tracker.clone()).context("cannot register metrics")?);
        metrics.agent.rules_loaded.set(s.rules.len() as i64);
        // The runtime follows the file (certificates, users) from here on.
        let web = crate::server::web_security(s.web.as_ref().map(|w| w.path.as_path()))
            .context("web config (--web.config.file)")?;
        let (restored, state_lock) = if s.tailing {
            prepare_state(&s.state_file)?
        } else {
            (None, None)
        };
        let first_start = restored.is_none();
        let (files, retained) = restore(&tracker, restored);

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let watching = Arc::new(AtomicBool::new(!s.tailing));

        // Probes: each pod's outcomes feed the tracker and the probe metrics.
        let mut all_probes = extra_probes;
        if !s.probe.targets().is_empty() {
            all_probes.push(PodProbes {
                pod: s.probe_pod.clone(),
                probes: s.probe.clone(),
            });
        }
        let gates = gates_for(s.gate.clone(), &all_probes, &metrics)?;
        let spawn = |pp: &PodProbes| {
            spawn_pod_probes(pp.clone(), &tracker, &metrics, &gates, shutdown_rx.clone())
        };
        let tasks = all_probes.iter().map(spawn).collect();

        let (reload_tx, reload_rx) = std::sync::mpsc::channel::<Reload>();
        let tail_thread = if s.tailing {
            let mut tail = s.tail.clone();
            tail.start_at_end &= first_start;
            let tail_loop = TailLoop {
                tail,
                checkpoint_interval: s.checkpoint_interval,
                state_file: s.state_file.clone(),
                probed_pods: all_probes.iter().map(|p| p.pod.clone()).collect(),
                pipeline: Pipeline::new(
                    s.rules.clone(),
                    tracker.clone(),
                    s.tail.max_line_bytes,
                    files.clone(),
                ),
                positions: files.into_iter().map(|f| f.position).collect(),
                retained,
                _state_lock: state_lock,
                tracker: tracker.clone(),
                metrics: metrics.clone(),
                watching: watching.clone(),
                shutdown: shutdown_rx.clone(),
                reloads: reload_rx,
            };
            Some(tail_loop.spawn()?)
        } else {
            None
        };

        let state = AppState {
            metrics: metrics.clone(),
            tracker: tracker.clone(),
            gates: gates.clone(),
            watching,
            state_file: s.tailing.then(|| s.state_file.clone()),
        };
        let (addr, server) = start_server(s.listen, state, web, shutdown_rx.clone()).await?;
        tracing::info!(%addr, role = ?s.role, tailing = s.tailing, "litellm-sentinel listening");
        // Its own stop signal: the final push comes after the tail loop's final pass.
        let otlp = s.otlp.clone().map(|oc| {
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
            reload_tx: s.tailing.then_some(reload_tx),
            current: Mutex::new(s.raw().clone()),
            tasks,
            otlp,
            server,
        })
    }

    /// Starts probing another pod (the demo's pods appear one by one). Aborting
    /// the returned task stops its probes.
    pub(crate) fn add_probes(&self, pp: PodProbes) -> tokio::task::JoinHandle<()> {
        spawn_pod_probes(
            pp,
            &self.tracker,
            &self.metrics,
            &self.gates,
            self.shutdown_rx.clone(),
        )
    }

    /// Applies new settings without a restart: globs added start tailing,
    /// globs removed stop (their files drain; checkpoints are kept), and the
    /// rule pack is swapped (compiled once, when `new` was built; a config
    /// that does not convert never gets here and the old one stays).
    /// Settings that need a restart (listen address, state file, probes) are
    /// reported in the returned list.
    pub fn reload(&self, new: Settings) -> Result<Vec<&'static str>> {
        let applied = (|| -> Result<Vec<&'static str>> {
            let mut cur = crate::sync::lock(&self.current);
            let needs_restart = needs_restart(&cur, new.raw());
            if let Some(tx) = &self.reload_tx {
                tx.send(Reload {
                    globs: new.tail.globs.clone(),
                    rules: new.rules.clone(),
                })
                .context("the tail loop has stopped")?;
            }
            self.metrics.agent.rules_loaded.set(new.rules.len() as i64);
            *cur = new.raw().clone();
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

/// Puts a checkpoint's counters into the tracker; returns its per-file
/// state and the positions of closed files.
fn restore(
    tracker: &SharedTracker,
    restored: Option<Snapshot>,
) -> (
    Vec<crate::state::FileState>,
    Vec<crate::tail::RetainedPosition>,
) {
    let Some(snap) = restored else {
        return (Vec::new(), Vec::new());
    };
    tracker.lock().restore(snap.tracker);
    tracing::info!(
        files = snap.files.len(),
        "restored checkpoint: counters continue from their saved values"
    );
    (snap.files, snap.retained)
}

/// Binds `listen` and serves until `shutdown` turns true.
async fn start_server(
    listen: SocketAddr,
    state: AppState,
    web: Option<crate::server::WebSecurity>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let listener = crate::server::bind(listen).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(crate::server::serve_secured(
        listener,
        state,
        web,
        async move {
            let _ = shutdown.wait_for(|s| *s).await;
        },
    ));
    Ok((addr, server))
}

/// Settings that a reload cannot apply: they only take effect after a restart.
fn needs_restart(cur: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    if new.listen != cur.listen {
        out.push("listen");
    }
    if new.state_file != cur.state_file {
        out.push("state_file");
    }
    if new.probe != cur.probe {
        out.push("probe");
    }
    if new.role != cur.role {
        out.push("role");
    }
    // The file's contents (certificates, users) reload by themselves; its path does not.
    if new.web_config_file != cur.web_config_file {
        out.push("web_config_file");
    }
    out
}

/// Readies the state file of a tailing agent: raises the descriptor limit,
/// creates the directory, takes the lock (one agent per state file) and
/// loads the last checkpoint. Only a state file in use by another agent or
/// written by a newer release stops the start; anything else is logged and
/// counting goes on without (or with fresh) checkpoints.
fn prepare_state(
    state_file: &std::path::Path,
) -> Result<(Option<Snapshot>, Option<crate::state::StateLock>)> {
    use crate::error::chain;
    use crate::state::StateError;
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
    if let Some(dir) = state_file.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Not fatal: counting goes on without checkpoints, and the failure
        // shows in `checkpoint_failures_total`, `/readyz` and the log.
        if let Err(e) = std::fs::create_dir_all(dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot create the state directory (set --state-file to a writable path); counting continues without checkpoints");
        }
    }
    // One agent per state file: a second one would overwrite the
    // first one's checkpoints with its own (and count everything twice).
    let lock = match crate::state::lock_dir(state_file) {
        Ok(l) => Some(l),
        Err(e @ StateError::Locked { .. }) => {
            return Err(anyhow::Error::new(e).context("another agent uses this state file"))
        }
        Err(e) => {
            tracing::warn!(error = %chain(&e), "cannot lock the state directory; counting continues");
            None
        }
    };
    let restored = match crate::state::load(state_file) {
        Ok(s) => s,
        // Never a silent reset: a newer layout is somebody else's state.
        Err(e @ StateError::TooNew { .. }) => {
            return Err(anyhow::Error::new(e).context("cannot use the state file"))
        }
        Err(e) => {
            tracing::warn!(error = %chain(&e), "starting without a checkpoint");
            None
        }
    };
    Ok((restored, lock))
}

/// The gate: it speaks for the first pod whose probes include the engine,
/// and requires the engine (and the database when probed).
fn gates_for(
    mut gate: GateConfig,
    all_probes: &[PodProbes],
    metrics: &Metrics,
) -> Result<SharedGates> {
    for pp in all_probes {
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
    Ok(gates)
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
    tracker
        .lock()
        .register_probes(&pp.pod, &targets, Timestamp::now());
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
            let starts = {
                let mut t = tracker.lock();
                t.apply_probe(&pod, &o);
                t.pod(&pod)
                    .map_or(0, |p| p.counts[crate::model::Counter::ProxyStarts])
            };
            crate::sync::lock(&gates).observe(&pod, &o, starts);
        }
    })
}

/// Removes a pod's probe state from the gates when its probe task ends.
struct ForgetOnDrop(SharedGates, PodRef);

impl Drop for ForgetOnDrop {
    fn drop(&mut self) {
        crate::sync::lock(&self.0).remove(&self.1);
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
    globs: Vec<crate::tail::discover::Glob>,
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

/// What the tail loop remembers between passes.
struct LoopState {
    /// Writes the snapshots on its own thread (None once finished).
    writer: Option<CheckpointWriter>,
    /// The tailer's and the tracker's change numbers at the last snapshot,
    /// and how many intervals were skipped since (nothing had changed).
    snapshot_of: Option<(u64, u64)>,
    skipped: u32,
    next_checkpoint: Instant,
    next_expiry: Instant,
    /// Tail counters as of the last pass (the metrics get the differences).
    last: crate::tail::TailStats,
    last_dropped: u64,
    last_cap_warning: Option<Instant>,
}

impl TailLoop {
    /// Runs the loop on its own thread (reading files blocks).
    fn spawn(self) -> Result<std::thread::JoinHandle<()>> {
        let writer = CheckpointWriter::spawn(
            self.state_file.clone(),
            checkpoint_outcome(self.state_file.clone(), Arc::clone(&self.metrics)),
        )
        .context("cannot start the checkpoint thread")?;
        std::thread::Builder::new()
            .name("tail".into())
            .spawn(move || self.run(writer))
            .context("cannot start the tail thread")
    }

    fn run(mut self, writer: CheckpointWriter) {
        let mut tailer = Tailer::new(self.tail.clone(), std::mem::take(&mut self.positions));
        tailer.restore_retained(std::mem::take(&mut self.retained));
        crate::state::set_checkpoint_interval(self.checkpoint_interval);
        let mut st = LoopState {
            writer: Some(writer),
            snapshot_of: None,
            skipped: 0,
            next_checkpoint: Instant::now() + self.checkpoint_interval,
            next_expiry: Instant::now() + Duration::from_secs(30),
            last: crate::tail::TailStats::default(),
            last_dropped: 0,
            last_cap_warning: None,
        };
        loop {
            let stopping = *self.shutdown.borrow();
            while let Ok(r) = self.reloads.try_recv() {
                tailer.set_globs(r.globs);
                self.pipeline.set_rules(r.rules);
                tracing::info!("reloaded globs and rules");
            }
            tailer.pass(&mut self.pipeline);
            self.pipeline.advance_clocks();
            self.watching.store(true, Ordering::Relaxed);
            // Every file quiet for a tick was read to its end (a busy one is at
            // most two ticks behind): a silent pod's log-method gap may close.
            self.tracker.lock().tick(Timestamp::now());
            self.export_counts(&tailer, &mut st);
            self.warn_pod_cap(&mut st);
            if Instant::now() >= st.next_expiry {
                st.next_expiry = Instant::now() + Duration::from_secs(30);
                self.expire_pods();
            }
            if stopping || Instant::now() >= st.next_checkpoint {
                st.next_checkpoint = Instant::now() + self.checkpoint_interval;
                self.checkpoint(&tailer, &mut st, stopping);
            }
            if stopping {
                tracing::info!("tail loop stopped after a final checkpoint");
                return;
            }
            // Idle wake-ups cost CPU on every node: at most one a second (which
            // also bounds how long a SIGTERM waits), sooner for a due checkpoint.
            let until_checkpoint = st.next_checkpoint.saturating_duration_since(Instant::now());
            tailer.wait(until_checkpoint.clamp(Duration::from_millis(10), Duration::from_secs(1)));
        }
    }

    /// The tailer's and the pipeline's counters into the agent's metrics.
    fn export_counts(&mut self, tailer: &Tailer, st: &mut LoopState) {
        let now = tailer.stats();
        let a = &self.metrics.agent;
        a.files_watched.set(now.files_watched as i64);
        a.tail_lag_bytes.set(now.lag_bytes as i64);
        a.lines_read.inc_by(now.lines_read - st.last.lines_read);
        a.bytes_read.inc_by(now.bytes_read - st.last.bytes_read);
        a.rotated_bytes_unread
            .inc_by(now.rotated_bytes_unread - st.last.rotated_bytes_unread);
        st.last = now;
        let counts = self.pipeline.take_counts();
        for (reason, n) in counts.malformed {
            a.lines_malformed.with_label_values(&[reason]).inc_by(n);
        }
        for (reason, n) in counts.read_errors {
            a.read_errors.with_label_values(&[reason]).inc_by(n);
        }
    }

    /// Rate-limited: a flood of new pods must not flood the agent's own log.
    fn warn_pod_cap(&self, st: &mut LoopState) {
        let dropped = self.tracker.lock().pods_dropped();
        if dropped > st.last_dropped
            && st
                .last_cap_warning
                .is_none_or(|w| w.elapsed() >= Duration::from_secs(60))
        {
            tracing::warn!(
                dropped_events = dropped,
                "tracked-pod cap reached: events of further pods are dropped (raise max_pods?)"
            );
            st.last_cap_warning = Some(Instant::now());
        }
        st.last_dropped = dropped;
    }

    /// Forgets pods with no live log file and no probes.
    fn expire_pods(&self) {
        let live: rustc_hash::FxHashSet<&PodRef> = self
            .pipeline
            .live_pods()
            .chain(self.probed_pods.iter())
            .collect();
        let n = self
            .tracker
            .lock()
            .expire(Timestamp::now(), &|p| live.contains(p));
        self.metrics.agent.series_expired.inc_by(n as u64);
    }

    /// Offsets, per-file state and counters, all as of this instant (this
    /// thread is the only writer of counters and offsets), handed to the
    /// checkpoint thread; when stopping, written before this returns.
    fn checkpoint(&self, tailer: &Tailer, st: &mut LoopState, stopping: bool) {
        // Nothing changed (an idle node): no snapshot of thousands of files
        // every interval. Still one now and then, so a state file deleted
        // behind the agent's back comes back within a minute or so.
        let changed;
        let tracker = {
            let t = self.tracker.lock();
            let now = (tailer.changes(), t.changes());
            // (Never while writes fail: `/readyz` and the alert count on them.)
            let failing = crate::state::failing_since(&self.state_file).is_some();
            if !stopping
                && !failing
                && st.snapshot_of == Some(now)
                && st.skipped < SKIPS_BEFORE_RECHECK
            {
                st.skipped += 1;
                // The file already holds this state, as an unchanged write would find.
                self.metrics.agent.checkpoint_writes.inc();
                return;
            }
            changed = st.snapshot_of != Some(now);
            st.snapshot_of = Some(now);
            st.skipped = 0;
            t.snapshot()
        };
        let snap = Snapshot {
            files: self.pipeline.file_states(tailer.positions()),
            tracker,
            retained: tailer.retained(),
        };
        match (stopping, st.writer.take()) {
            (true, Some(w)) => w.finish(snap, changed),
            (false, Some(w)) => {
                w.submit(snap, changed);
                st.writer = Some(w);
            }
            (_, None) => {}
        }
    }
}

/// Checkpoint intervals skipped for want of changes before a snapshot is
/// taken anyway (the writer then finds it unchanged on disk, or rewrites a
/// state file that went missing).
const SKIPS_BEFORE_RECHECK: u32 = 11;

/// What the checkpoint thread does with each outcome: metrics, `/readyz`'s
/// failing streak, and one log line per streak (not one every few seconds).
fn checkpoint_outcome(
    state_file: std::path::PathBuf,
    metrics: Arc<Metrics>,
) -> impl FnMut(Result<Saved, StateError>) + Send + 'static {
    let mut failing = false;
    move |saved| {
        crate::state::record_checkpoint(&state_file, saved.is_ok());
        let a = &metrics.agent;
        match saved {
            Ok(_) => {
                a.checkpoint_writes.inc();
                if failing {
                    tracing::info!("checkpoint writes work again");
                    failing = false;
                }
            }
            Err(e) => {
                a.checkpoint_failures.inc();
                if !failing {
                    tracing::warn!(error = %crate::error::chain(&e), "checkpoint failed; tailing continues, a restart would re-read from the last good checkpoint");
                    failing = true;
                }
            }
        }
    }
}
