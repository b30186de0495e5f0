//! Agent configuration in two layers.
//!
//! The raw layer, [`Config`], is what a person writes: a TOML file,
//! overridden by `LITELLM_SENTINEL_*` environment variables and then by
//! command-line flags ([`Overrides`]). It is plain data and checks nothing
//! beyond its shape (unknown keys, types, duration syntax).
//!
//! One conversion, [`Settings::try_from`], turns it into the compiled
//! [`Settings`] the agent runs on: a socket address, compiled globs, the
//! rule pack compiled once, and each subsystem's own config type (tail,
//! timeline, probe, gate, OTLP, web). There is no separate validation pass:
//! a value the agent cannot use fails the conversion with an error that
//! names the key and says what to do. `config` depends on the subsystems;
//! no subsystem depends on `config`.

use std::path::{Path, PathBuf};

mod settings;
mod toml_error;

pub use settings::{compile_rules, Settings, WebSettings};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which job the process does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// DaemonSet: tail every matching container log on the node.
    Node,
    /// Inside the LiteLLM pod: probe the engine on localhost and serve `/gate`.
    Sidecar,
}

/// Where to start reading files that exist when the agent first starts (no state file).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    /// Only what is written from now on (the default: no flood of old history).
    End,
    /// Everything already in the files.
    Beginning,
}

/// Format of the agent's own log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// A duration written as `250ms`, `10s`, `15m`, `1h` (or a bare number of seconds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// Parses `250ms`, `1.5s`, `15m`, `2h`, or seconds.
    ///
    /// The message never repeats the input (it may come from a config line
    /// next to a secret); values too large for a `Duration` are errors, not
    /// panics. Per-key upper bounds are checked when [`Settings`] are built.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let v: f64 = num
            .parse()
            .map_err(|_| "not a duration (use e.g. 250ms, 10s, 15m, 1h)".to_string())?;
        let secs = match unit.trim() {
            "ms" => v / 1000.0,
            "" | "s" => v,
            "m" => v * 60.0,
            "h" => v * 3600.0,
            _ => return Err("unknown unit (use ms, s, m or h)".to_string()),
        };
        if !secs.is_finite() || secs < 0.0 {
            return Err("not a valid duration (must be a finite, non-negative number)".into());
        }
        if secs > MAX_DURATION_SECS {
            return Err(format!(
                "too long (no setting accepts more than {})",
                HumanDuration(Duration::from_secs(MAX_DURATION_SECS as u64))
            ));
        }
        Duration::try_from_secs_f64(secs)
            .map(HumanDuration)
            .map_err(|_| "not a valid duration".to_string())
    }
}

/// Longest duration [`HumanDuration::parse`] accepts at all (one week); each
/// setting has its own, lower bound (see [`Config::durations`]).
const MAX_DURATION_SECS: f64 = 7.0 * 86_400.0;

impl std::fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0.as_millis();
        if !ms.is_multiple_of(1000) {
            write!(f, "{ms}ms")
        } else {
            write!(f, "{}s", ms / 1000)
        }
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a duration such as \"250ms\", \"10s\", \"15m\", \"1h\" or a number of seconds",
                )
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<HumanDuration, E> {
                HumanDuration::parse(s).map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<HumanDuration, E> {
                if n.is_finite() && n >= 0.0 {
                    HumanDuration::parse(&n.to_string()).map_err(E::custom)
                } else {
                    Err(E::custom(
                        "not a valid duration (must be a finite, non-negative number)",
                    ))
                }
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<HumanDuration, E> {
                u64::try_from(n)
                    .map_err(|_| E::custom("not a valid duration (must not be negative)"))
                    .and_then(|n| self.visit_u64(n))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<HumanDuration, E> {
                HumanDuration::parse(&n.to_string()).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// The default glob: LiteLLM pods' container logs under the kubelet's pods directory.
pub(crate) const DEFAULT_GLOB: &str = "/var/log/pods/*_*litellm*_*/*/*.log";

/// The whole configuration, as the TOML file spells it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub role: Role,
    /// Files to tail (node role); several globs allowed.
    pub globs: Vec<String>,
    /// Offsets + counters snapshot (one atomic file).
    pub state_file: PathBuf,
    pub read_from: ReadFrom,
    pub listen: String,
    /// Records longer than this are truncated (and counted malformed).
    pub max_line_bytes: usize,
    /// Without probes, a gap closes after this long without a DB connect error (record time).
    pub quiet_period: HumanDuration,
    pub checkpoint_interval: HumanDuration,
    /// Safety rescan of globs and files even when inotify is quiet (polling mode uses it as the interval).
    pub poll_interval: HumanDuration,
    /// Use polling only (for filesystems where inotify does not work, e.g. some network mounts).
    pub force_polling: bool,
    pub pod_ttl: HumanDuration,
    pub max_pods: usize,
    /// A user rule pack that adds to or overrides the built-in rules.
    pub rules: Option<PathBuf>,
    /// The LiteLLM release the pods run (`1.83.14`, `1.110`): decides what a
    /// spend-log write failure means (1.83 drops the batch, 1.108+ re-queues
    /// it). Unset: each log file's own retry lines decide.
    pub litellm_version: Option<String>,
    pub log_format: LogFormat,
    /// OTLP/HTTP collector base URL (plain http://, `/v1/metrics` appended); unset = no push.
    pub otlp_endpoint: Option<String>,
    /// Time between OTLP pushes (`OTEL_METRIC_EXPORT_INTERVAL`, in ms, overrides it).
    pub otlp_interval: HumanDuration,
    /// exporter-toolkit web config (YAML: TLS, basic auth, headers) for the
    /// HTTP server; unset = plain HTTP without auth.
    pub web_config_file: Option<PathBuf>,
    /// `/gate` mode: `startup` (latch: open once every engine answered, for
    /// the life of the proxy process) or `follow` (current state with hysteresis).
    pub gate: crate::gate::GateMode,
    /// `follow` mode: `/gate` closes only after failures spanning this long.
    pub gate_down_after: HumanDuration,
    /// Where the sidecar remembers an open start-up latch (an `emptyDir`
    /// survives a restart of the sidecar container alone); unset = not kept.
    pub gate_state_file: Option<PathBuf>,
    pub probe: ProbeSettings,
}

/// Probe settings (sidecar role, or a node agent pointed at one engine).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeSettings {
    /// Query engine base URL; overrides /proc discovery.
    pub engine_url: Option<String>,
    /// Find the engine in /proc (needs `shareProcessNamespace: true`); sidecar default.
    pub discover_engine: Option<bool>,
    pub proc_root: PathBuf,
    /// LiteLLM base URL for `/health/readiness`, e.g. `http://127.0.0.1:4000`.
    pub proxy_url: Option<String>,
    /// PostgreSQL URL for `SELECT 1` (never logged; prefer the DATABASE_URL env).
    pub database_url: Option<String>,
    pub fast_interval: HumanDuration,
    pub slow_interval: HumanDuration,
    pub timeout: HumanDuration,
    /// The pod these probes describe (sidecar: from the Downward API).
    pub namespace: Option<String>,
    pub pod: Option<String>,
}

impl Default for ProbeSettings {
    /// The probe subsystem's own defaults ([`crate::probe::ProbeConfig`]).
    fn default() -> Self {
        let d = crate::probe::ProbeConfig::default();
        ProbeSettings {
            engine_url: d.engine_url,
            discover_engine: None,
            proc_root: d.proc_root,
            proxy_url: d.proxy_url,
            database_url: None,
            fast_interval: HumanDuration(d.fast_interval),
            slow_interval: HumanDuration(d.slow_interval),
            timeout: HumanDuration(d.timeout),
            namespace: None,
            pod: None,
        }
    }
}

impl Default for Config {
    /// Each subsystem's own default where it has one (the timeline's quiet
    /// period, pod cap and TTL; the gate's and OTLP's intervals): one place per default.
    fn default() -> Self {
        let timeline = crate::timeline::TimelineConfig::default();
        Config {
            role: Role::Node,
            globs: vec![DEFAULT_GLOB.to_string()],
            state_file: PathBuf::from("/var/lib/litellm-sentinel/state.json"),
            read_from: ReadFrom::End,
            listen: "0.0.0.0:9464".to_string(),
            max_line_bytes: 256 * 1024,
            quiet_period: HumanDuration(Duration::from_secs_f64(timeline.quiet_period_secs)),
            checkpoint_interval: HumanDuration(Duration::from_secs(5)),
            poll_interval: HumanDuration(Duration::from_secs(60)),
            force_polling: false,
            pod_ttl: HumanDuration(Duration::from_secs_f64(timeline.pod_ttl_secs)),
            max_pods: timeline.max_pods,
            rules: None,
            litellm_version: None,
            log_format: LogFormat::Text,
            otlp_endpoint: None,
            otlp_interval: HumanDuration(crate::otlp::DEFAULT_INTERVAL),
            web_config_file: None,
            gate: crate::gate::GateMode::Startup,
            gate_down_after: HumanDuration(crate::gate::DEFAULT_DOWN_AFTER),
            gate_state_file: None,
            probe: ProbeSettings::default(),
        }
    }
}

/// Why a configuration was rejected. Each message names the key and what to do.
///
/// A cause is either part of the message or returned by `source()`, never
/// both: the binary prints the chain, so a cause in both would print twice.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("`rules`: cannot read the rule pack {path} (check --rules / rules)")]
    RulesRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// Command-line / environment overrides; `None` keeps the file's value.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct Overrides {
    /// Role: node (DaemonSet, tails logs) or sidecar (probes, serves /gate).
    #[arg(long, env = "LITELLM_SENTINEL_ROLE", value_enum)]
    pub role: Option<Role>,
    /// Glob of log files to tail; repeat for several (replaces the file's list).
    #[arg(long = "glob", env = "LITELLM_SENTINEL_GLOBS", value_delimiter = ',')]
    pub globs: Vec<String>,
    /// Path of the state file (offsets + counters).
    #[arg(long, env = "LITELLM_SENTINEL_STATE_FILE")]
    pub state_file: Option<PathBuf>,
    /// Where to start in files present at first start: end or beginning.
    #[arg(long, env = "LITELLM_SENTINEL_READ_FROM", value_enum)]
    pub read_from: Option<ReadFrom>,
    /// Address of the HTTP server (/metrics, /healthz, /readyz, /gate, /api/v1/pods).
    #[arg(long, env = "LITELLM_SENTINEL_LISTEN")]
    pub listen: Option<String>,
    /// Longest record kept (bytes); longer ones are truncated and counted.
    #[arg(long, env = "LITELLM_SENTINEL_MAX_LINE_BYTES")]
    pub max_line_bytes: Option<usize>,
    /// Quiet period that ends a log-measured gap, e.g. 60s.
    #[arg(long, env = "LITELLM_SENTINEL_QUIET_PERIOD", value_parser = HumanDuration::parse)]
    pub quiet_period: Option<HumanDuration>,
    /// How often the state snapshot is written, e.g. 5s.
    #[arg(long, env = "LITELLM_SENTINEL_CHECKPOINT_INTERVAL", value_parser = HumanDuration::parse)]
    pub checkpoint_interval: Option<HumanDuration>,
    /// Safety rescan interval (and the interval in polling mode).
    #[arg(long, env = "LITELLM_SENTINEL_POLL_INTERVAL", value_parser = HumanDuration::parse)]
    pub poll_interval: Option<HumanDuration>,
    /// Never use inotify; poll instead.
    #[arg(long, env = "LITELLM_SENTINEL_FORCE_POLLING")]
    pub force_polling: bool,
    /// Forget a pod this long after its log files are gone, e.g. 15m.
    #[arg(long, env = "LITELLM_SENTINEL_POD_TTL", value_parser = HumanDuration::parse)]
    pub pod_ttl: Option<HumanDuration>,
    /// Cap on tracked pods.
    #[arg(long, env = "LITELLM_SENTINEL_MAX_PODS")]
    pub max_pods: Option<usize>,
    /// User rule pack (TOML) adding to / overriding the built-in rules.
    #[arg(long, env = "LITELLM_SENTINEL_RULES")]
    pub rules: Option<PathBuf>,
    /// LiteLLM release the pods run, e.g. 1.83.14 or 1.110 (what a failed
    /// spend-log write means depends on it; unset: the logs' own lines decide).
    #[arg(long, env = "LITELLM_SENTINEL_LITELLM_VERSION")]
    pub litellm_version: Option<String>,
    /// Agent log format: text or json.
    #[arg(long, env = "LITELLM_SENTINEL_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Query engine URL (skips /proc discovery), e.g. http://127.0.0.1:41234.
    #[arg(long, env = "LITELLM_SENTINEL_ENGINE_URL")]
    pub engine_url: Option<String>,
    /// LiteLLM base URL for /health/readiness, e.g. http://127.0.0.1:4000.
    #[arg(long, env = "LITELLM_SENTINEL_PROXY_URL")]
    pub proxy_url: Option<String>,
    /// PostgreSQL URL for the database probe (also read from DATABASE_URL).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Namespace of the probed pod (sidecar; Downward API).
    #[arg(long, env = "POD_NAMESPACE")]
    pub pod_namespace: Option<String>,
    /// Name of the probed pod (sidecar; Downward API).
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// Push metrics over OTLP/HTTP to this collector, e.g. http://otel-collector:4318 (plain http only).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Web config YAML (Prometheus exporter-toolkit format): TLS and basic auth for the HTTP server.
    #[arg(long = "web.config.file", env = "LITELLM_SENTINEL_WEB_CONFIG_FILE")]
    pub web_config_file: Option<PathBuf>,
    /// /gate mode: startup (open once every engine answered, for the life of the proxy process) or follow.
    #[arg(long, env = "LITELLM_SENTINEL_GATE", value_enum)]
    pub gate: Option<crate::gate::GateMode>,
    /// follow mode: /gate closes only after failures spanning this long, e.g. 30s.
    #[arg(long, env = "LITELLM_SENTINEL_GATE_DOWN_AFTER", value_parser = HumanDuration::parse)]
    pub gate_down_after: Option<HumanDuration>,
    /// Keep an open start-up latch in this file (on an emptyDir) across sidecar restarts.
    #[arg(long, env = "LITELLM_SENTINEL_GATE_STATE_FILE")]
    pub gate_state_file: Option<PathBuf>,
}

/// Upper bound of `max_line_bytes` (and its lower bound): a record longer
/// than 64 MiB is not a log line, and the decoder buffers up to this much.
pub const MAX_LINE_BYTES: (usize, usize) = (1024, 64 * 1024 * 1024);
/// Bounds of `max_pods`: each tracked pod costs series and memory.
pub(crate) const MAX_PODS: (usize, usize) = (1, 100_000);

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// Allowed range of one duration setting. Upper bounds keep every
/// `Instant + interval` and timer far from overflow and catch unit
/// mistakes (`quiet_period = 3600000` meant as milliseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurationBounds {
    /// Zero is rejected when `false` (timers that would spin).
    pub zero_ok: bool,
    pub max: Duration,
}

impl DurationBounds {
    const INTERVAL: DurationBounds = DurationBounds {
        zero_ok: false,
        max: DAY,
    };

    fn check(self, key: &'static str, d: Duration) -> Result<(), ConfigError> {
        if d.is_zero() && !self.zero_ok {
            return Err(ConfigError::Invalid {
                key,
                reason: "must be greater than zero".into(),
            });
        }
        if d > self.max {
            return Err(ConfigError::Invalid {
                key,
                reason: format!("must be at most {}", human_limit(self.max)),
            });
        }
        Ok(())
    }
}

/// `1 day`, `1 hour`, `1 minute`, else seconds: how limits are named in errors.
fn human_limit(d: Duration) -> String {
    match d.as_secs() {
        86_400 => "1 day (86400s)".into(),
        3600 => "1 hour (3600s)".into(),
        60 => "1 minute (60s)".into(),
        s => format!("{s}s"),
    }
}

fn check_size(key: &'static str, v: usize, (min, max): (usize, usize)) -> Result<(), ConfigError> {
    if v < min || v > max {
        return Err(ConfigError::Invalid {
            key,
            reason: format!("{v} is out of range (allowed: {min} to {max})"),
        });
    }
    Ok(())
}

impl Config {
    /// Every duration setting with its key and bounds (one list, so a new
    /// setting cannot be added without a bound).
    pub fn durations(&self) -> [(&'static str, HumanDuration, DurationBounds); 9] {
        [
            (
                "quiet_period",
                self.quiet_period,
                DurationBounds {
                    zero_ok: true,
                    max: HOUR,
                },
            ),
            (
                "checkpoint_interval",
                self.checkpoint_interval,
                DurationBounds::INTERVAL,
            ),
            (
                "poll_interval",
                self.poll_interval,
                DurationBounds::INTERVAL,
            ),
            ("pod_ttl", self.pod_ttl, DurationBounds::INTERVAL),
            (
                "otlp_interval",
                self.otlp_interval,
                DurationBounds::INTERVAL,
            ),
            (
                "probe.fast_interval",
                self.probe.fast_interval,
                DurationBounds {
                    zero_ok: false,
                    max: MINUTE,
                },
            ),
            (
                "probe.slow_interval",
                self.probe.slow_interval,
                DurationBounds {
                    zero_ok: false,
                    max: HOUR,
                },
            ),
            (
                "probe.timeout",
                self.probe.timeout,
                DurationBounds {
                    zero_ok: false,
                    max: MINUTE,
                },
            ),
            (
                "gate_down_after",
                self.gate_down_after,
                DurationBounds {
                    zero_ok: false,
                    max: HOUR,
                },
            ),
        ]
    }
}

impl Config {
    /// The raw layer: reads the file (if any) and applies the overrides.
    /// Nothing is checked beyond the file's shape; [`Settings::load`] also
    /// converts.
    pub fn read(file: Option<&Path>, o: &Overrides) -> Result<Config, ConfigError> {
        let mut cfg = match file {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        cfg.apply(o);
        Ok(cfg)
    }

    /// Parses a TOML file (no overrides, no checks beyond its shape).
    pub(crate) fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses TOML text; the error names the offending key.
    ///
    /// The message gives the line, column and key but never the text of the
    /// line or the value: a syntax error on the `database_url` line must not
    /// print the password to stderr or into a reload's ERROR log.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| toml_error::describe_toml_error(text, &e))
    }

    fn apply(&mut self, o: &Overrides) {
        macro_rules! set {
            ($field:expr, $v:expr) => {
                if let Some(v) = $v.clone() {
                    $field = v;
                }
            };
        }
        set!(self.role, o.role);
        if !o.globs.is_empty() {
            self.globs = o.globs.clone();
        }
        set!(self.state_file, o.state_file);
        set!(self.read_from, o.read_from);
        set!(self.listen, o.listen);
        set!(self.max_line_bytes, o.max_line_bytes);
        set!(self.quiet_period, o.quiet_period);
        set!(self.checkpoint_interval, o.checkpoint_interval);
        set!(self.poll_interval, o.poll_interval);
        self.force_polling |= o.force_polling;
        set!(self.pod_ttl, o.pod_ttl);
        set!(self.max_pods, o.max_pods);
        if o.rules.is_some() {
            self.rules = o.rules.clone();
        }
        if o.litellm_version.is_some() {
            self.litellm_version = o.litellm_version.clone();
        }
        set!(self.log_format, o.log_format);
        if o.engine_url.is_some() {
            self.probe.engine_url = o.engine_url.clone();
        }
        if o.proxy_url.is_some() {
            self.probe.proxy_url = o.proxy_url.clone();
        }
        if o.database_url.is_some() {
            self.probe.database_url = o.database_url.clone();
        }
        if o.pod_namespace.is_some() {
            self.probe.namespace = o.pod_namespace.clone();
        }
        if o.pod_name.is_some() {
            self.probe.pod = o.pod_name.clone();
        }
        if o.otlp_endpoint.is_some() {
            self.otlp_endpoint = o.otlp_endpoint.clone();
        }
        if o.web_config_file.is_some() {
            self.web_config_file = o.web_config_file.clone();
        }
        set!(self.gate, o.gate);
        set!(self.gate_down_after, o.gate_down_after);
        if o.gate_state_file.is_some() {
            self.gate_state_file = o.gate_state_file.clone();
        }
    }

    /// This raw config as TOML with every URL passed through
    /// [`crate::redact::redact`] ([`Settings::to_redacted_toml`] renders the
    /// effective one from it).
    pub fn to_redacted_toml(&self) -> String {
        use crate::redact::redact;
        let mut c = self.clone();
        c.probe.database_url = c.probe.database_url.as_deref().map(redact);
        c.otlp_endpoint = c.otlp_endpoint.as_deref().map(redact);
        c.probe.engine_url = c.probe.engine_url.as_deref().map(redact);
        c.probe.proxy_url = c.probe.proxy_url.as_deref().map(redact);
        toml::to_string(&c).unwrap_or_else(|e| format!("# cannot render config: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_convert() {
        let s = Settings::try_from(Config::default()).unwrap();
        assert_eq!(s.listen.port(), 9464);
        assert!(s.tailing && !s.rules.is_empty() && s.otlp.is_none() && s.web.is_none());
        assert_eq!(
            s.timeline.quiet_period_secs,
            crate::timeline::DEFAULT_QUIET_PERIOD_SECS
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::from_toml("globz = [\"/x\"]").unwrap_err();
        assert!(e.contains("globz"), "{e}");
    }

    #[test]
    fn durations_and_overrides() {
        let mut c = Config::from_toml(
            "quiet_period = \"90s\"\npoll_interval = \"250ms\"\n[probe]\ntimeout = 3\n",
        )
        .unwrap();
        assert_eq!(c.quiet_period.0, Duration::from_secs(90));
        assert_eq!(c.poll_interval.0, Duration::from_millis(250));
        assert_eq!(c.probe.timeout.0, Duration::from_secs(3));
        let o = Overrides {
            globs: vec!["/a/*.log".into()],
            quiet_period: Some(HumanDuration(Duration::from_secs(5))),
            ..Default::default()
        };
        c.apply(&o);
        assert_eq!(c.globs, vec!["/a/*.log"]);
        assert_eq!(c.quiet_period.0, Duration::from_secs(5));
        assert!(Config::from_toml("quiet_period = \"5 parsecs\"")
            .unwrap_err()
            .contains("quiet_period"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let bad = |c: Config, key: &str| {
            let e = Settings::try_from(c).unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
        };
        bad(
            Config {
                globs: vec!["/var/log/[".into()],
                ..Default::default()
            },
            "globs",
        );
        bad(
            Config {
                globs: vec!["relative/*.log".into()],
                ..Default::default()
            },
            "globs",
        );
        bad(
            Config {
                listen: "nope".into(),
                ..Default::default()
            },
            "listen",
        );
        bad(
            Config {
                max_line_bytes: 10,
                ..Default::default()
            },
            "max_line_bytes",
        );
        let mut c = Config::default();
        c.probe.engine_url = Some("https://x".into());
        bad(c, "probe.engine_url");
    }

    #[test]
    fn password_is_redacted() {
        let mut c = Config::default();
        c.probe.database_url = Some("postgresql://llm@db/litellm?password=Hunter2Query".into());
        c.otlp_endpoint = Some("http://otel:4318/?token=Hunter2Tok".into());
        c.probe.proxy_url = Some("http://u:Hunter2Proxy@127.0.0.1:4000".into());
        c.probe.engine_url = Some("http://127.0.0.1:1/?secret=Hunter2Eng".into());
        let t = c.to_redacted_toml();
        assert!(!t.contains("Hunter2"), "{t}");
        assert!(t.contains("llm@db/litellm?password=***"), "{t}");
        let mut c = Config::default();
        c.probe.database_url = Some("postgres://u:hunter2@h/d".into());
        let t = c.to_redacted_toml();
        assert!(!t.contains("hunter2") && t.contains("u:***@h"), "{t}");
    }

    /// (`toml` key as written, the leaf the error must name, table or "").
    const DURATION_KEYS: [(&str, &str); 8] = [
        ("", "quiet_period"),
        ("", "checkpoint_interval"),
        ("", "poll_interval"),
        ("", "pod_ttl"),
        ("", "otlp_interval"),
        ("probe", "fast_interval"),
        ("probe", "slow_interval"),
        ("probe", "timeout"),
    ];

    fn toml_for(table: &str, key: &str, value: &str) -> String {
        if table.is_empty() {
            format!("{key} = {value}\n")
        } else {
            format!("[{table}]\n{key} = {value}\n")
        }
    }

    /// Parses and validates; an error must name the key and never the value.
    fn load_text(text: &str, key: &str, marker: &str) -> Result<Config, String> {
        let r = Config::from_toml(text).and_then(|c| {
            Settings::try_from(c.clone())
                .map(|_| c)
                .map_err(|e| e.to_string())
        });
        if let Err(e) = &r {
            assert!(
                e.contains(key),
                "error for {text:?} does not name {key}: {e}"
            );
            assert!(
                marker.is_empty() || !e.contains(marker),
                "error for {text:?} echoes the value: {e}"
            );
        }
        r
    }

    /// Everything a valid config can make the agent do with a duration.
    fn durations_are_usable(c: &Config) {
        let now = std::time::Instant::now();
        for (key, d, bounds) in c.durations() {
            assert!(d.0 <= bounds.max, "{key} = {d} passed validation");
            // The tail loop, the probes and the pusher add intervals to now
            // (and back off up to twice them): none may overflow.
            assert!(now.checked_add(d.0 * 4).is_some(), "{key}");
            assert!(tokio::time::Instant::now().checked_add(d.0 * 4).is_some());
        }
        assert!(c.max_line_bytes <= MAX_LINE_BYTES.1 && c.max_pods <= MAX_PODS.1);
    }

    #[test]
    fn huge_durations_are_errors_that_name_the_key_not_panics() {
        for (text, key) in [
            (
                "checkpoint_interval = \"99999999999999999999s\"",
                "checkpoint_interval",
            ),
            ("poll_interval = \"10000000000000000000s\"", "poll_interval"),
            ("quiet_period = 1e300", "quiet_period"),
            ("otlp_interval = \"18446744073709551615\"", "otlp_interval"),
            ("[probe]\nfast_interval = \"1e30\"", "probe.fast_interval"),
            (
                "[probe]\nslow_interval = 18446744073709551615",
                "probe.slow_interval",
            ),
        ] {
            let e = load_text(text, key, "").unwrap_err();
            assert!(e.contains(key), "{e}");
        }
        // Within what a Duration holds, but over the key's own bound: the limit is named.
        let e = load_text("quiet_period = \"2h\"", "quiet_period", "").unwrap_err();
        assert!(e.contains("at most 1 hour"), "{e}");
        let e = load_text("poll_interval = \"25h\"", "poll_interval", "").unwrap_err();
        assert!(e.contains("at most 1 day"), "{e}");
        let e = load_text("max_line_bytes = 67108865", "max_line_bytes", "").unwrap_err();
        assert!(e.contains("67108864"), "{e}");
        let e = load_text("max_pods = 100001", "max_pods", "").unwrap_err();
        assert!(e.contains("100000"), "{e}");
        // The bounds themselves are valid.
        let c = load_text(
            "quiet_period = \"1h\"\npoll_interval = \"1d\"",
            "poll_interval",
            "",
        );
        assert!(c.is_err(), "`d` is not a unit");
        let c = load_text(
            "quiet_period = \"1h\"\npoll_interval = \"24h\"\nmax_line_bytes = 67108864\nmax_pods = 100000",
            "",
            "",
        )
        .unwrap();
        durations_are_usable(&c);
    }

    #[test]
    fn parse_errors_name_key_and_position_but_never_the_value() {
        for (text, key) in [
            (
                "[probe]\ndatabase_url = \"postgresql://u:Hunter2Zq@h/d",
                "probe.database_url",
            ),
            (
                "[probe]\ndatabase_url = postgresql://u:Hunter2Zq@h/d",
                "probe.database_url",
            ),
            (
                "[probe]\ndatabase_url = 'postgresql://u:Hunter2Zq@h/d",
                "probe.database_url",
            ),
            ("max_pods = \"Hunter2Zq\"", "max_pods"),
            ("role = \"Hunter2Zq\"", "role"),
            ("quiet_period = \"Hunter2Zq\"", "quiet_period"),
            (
                "listen = 1\notlp_endpoint = \"http://x/?token=Hunter2Zq\"",
                "listen",
            ),
        ] {
            let e = Config::from_toml(text).unwrap_err();
            assert!(e.contains(key), "{text:?}: {e}");
            assert!(e.contains("line "), "{text:?}: {e}");
            assert!(!e.contains("Hunter2Zq"), "{text:?} echoed: {e}");
        }
    }

    fn value_strategy() -> impl proptest::strategy::Strategy<Value = (String, String)> {
        use proptest::prelude::*;
        // (TOML value, a marker that must never be echoed or "")
        prop_oneof![
            any::<u64>().prop_map(|n| (n.to_string(), String::new())),
            any::<i64>().prop_map(|n| (n.to_string(), String::new())),
            (0u64..200_000).prop_map(|n| (n.to_string(), String::new())),
            any::<f64>()
                .prop_filter("toml float", |f| f.is_finite())
                .prop_map(|f| (format!("{f:e}"), String::new())),
            Just(("nan".to_string(), String::new())),
            Just(("inf".to_string(), String::new())),
            (
                any::<u64>(),
                prop::sample::select(vec!["ms", "s", "m", "h", "", "us", " s", "d"])
            )
                .prop_map(|(n, u)| (format!("\"{n}{u}\""), String::new())),
            (
                0u64..100_000,
                prop::sample::select(vec!["ms", "s", "m", "h", ""])
            )
                .prop_map(|(n, u)| (format!("\"{n}{u}\""), String::new())),
            (0.0f64..1e6, prop::sample::select(vec!["ms", "s", "m", "h"]))
                .prop_map(|(n, u)| (format!("\"{n}{u}\""), String::new())),
            "[a-z0-9.]{0,12}".prop_map(|s| (format!("\"Zq9{s}\""), "Zq9".to_string())),
            Just(("true".to_string(), String::new())),
            Just(("[1]".to_string(), String::new())),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]

        /// Any value of any duration or size setting in the file is valid
        /// (and then usable without overflow) or a clear error naming the key.
        #[test]
        fn every_setting_is_valid_or_a_clear_error(
            (value, marker) in value_strategy(),
            idx in 0usize..10,
        ) {
            let (table, key) = match idx {
                8 => ("", "max_line_bytes"),
                9 => ("", "max_pods"),
                i => DURATION_KEYS[i],
            };
            let text = toml_for(table, key, &value);
            if let Ok(c) = load_text(&text, key, &marker) {
                durations_are_usable(&c);
            }
        }

        /// The same through flags (and so the environment, which clap reads
        /// into the same fields): a clap error, or a config that is valid or
        /// rejected naming the key.
        #[test]
        fn every_flag_is_valid_or_a_clear_error(
            (value, _marker) in value_strategy(),
            idx in 0usize..6,
        ) {
            use clap::Parser;
            #[derive(clap::Parser)]
            struct Cli {
                #[command(flatten)]
                o: Overrides,
            }
            let (flag, key) = [
                ("--quiet-period", "quiet_period"),
                ("--checkpoint-interval", "checkpoint_interval"),
                ("--poll-interval", "poll_interval"),
                ("--pod-ttl", "pod_ttl"),
                ("--max-line-bytes", "max_line_bytes"),
                ("--max-pods", "max_pods"),
            ][idx];
            let value = value.trim_matches('"').to_string();
            match Cli::try_parse_from(["x".to_string(), format!("{flag}={value}")]) {
                Err(e) => {
                    let e = e.to_string();
                    proptest::prop_assert!(e.contains(flag), "{e}");
                }
                Ok(cli) => match Settings::load(None, &cli.o) {
                    Ok(s) => durations_are_usable(s.raw()),
                    Err(e) => proptest::prop_assert!(e.to_string().contains(key), "{e}"),
                },
            }
        }
    }
    fn convert(c: Config) -> Result<Settings, ConfigError> {
        Settings::with_env(c, &|_| None)
    }

    /// Moved from `otlp.rs` (the OTLP module no longer knows the config):
    /// the conversion builds the pusher's own config from the two keys.
    #[test]
    fn otlp_keys_convert_through_the_pushers_parser() {
        let c = Config::from_toml(
            "otlp_endpoint = \"http://otel-collector:4318\"\notlp_interval = \"15s\"\n",
        )
        .unwrap();
        let o = convert(c).unwrap().otlp.unwrap();
        assert_eq!(o.endpoint, "http://otel-collector:4318/v1/metrics");
        assert_eq!(o.interval, Duration::from_secs(15));
        let https = Config {
            otlp_endpoint: Some("https://otlp.example.com".into()),
            ..Config::default()
        };
        convert(https).unwrap();
        let bad = Config {
            otlp_endpoint: Some("ftp://otel-collector:4318".into()),
            ..Config::default()
        };
        let msg = convert(bad).unwrap_err().to_string();
        assert!(
            msg.starts_with("`otlp_endpoint`") && msg.contains("http://"),
            "{msg}"
        );
        let zero = Config {
            otlp_interval: HumanDuration(Duration::ZERO),
            ..Config::default()
        };
        assert!(convert(zero)
            .unwrap_err()
            .to_string()
            .contains("otlp_interval"));
        // OTEL_METRIC_EXPORT_INTERVAL wins over the file, and the effective config says so.
        let c = Config {
            otlp_endpoint: Some("http://otel:4318".into()),
            ..Config::default()
        };
        let s = Settings::with_env(c, &|k| {
            (k == "OTEL_METRIC_EXPORT_INTERVAL").then(|| "7000".to_string())
        })
        .unwrap();
        assert!(s.to_redacted_toml().contains("otlp_interval = \"7s\""));
    }

    /// Moved from `gate.rs` (the gate no longer knows the config).
    #[test]
    fn gate_keys() {
        use crate::gate::{GateMode, DEFAULT_DOWN_AFTER};
        let c = Config::from_toml("gate = \"follow\"\ngate_down_after = \"45s\"\n").unwrap();
        assert_eq!(c.gate, GateMode::Follow);
        assert_eq!(c.gate_down_after.0, Duration::from_secs(45));
        let s = convert(c).unwrap();
        assert_eq!(
            (s.gate.mode, s.gate.down_after),
            (GateMode::Follow, Duration::from_secs(45))
        );
        let d = Config::default();
        assert_eq!(
            (d.gate, d.gate_down_after.0),
            (GateMode::Startup, DEFAULT_DOWN_AFTER)
        );
        let e = Config::from_toml("gate = \"sometimes\"\n").unwrap_err();
        assert!(e.contains("gate"), "{e}");
        let zero = Config {
            gate_down_after: HumanDuration(Duration::ZERO),
            ..Config::default()
        };
        assert!(convert(zero)
            .unwrap_err()
            .to_string()
            .contains("gate_down_after"));
        assert!(convert(d)
            .unwrap()
            .to_redacted_toml()
            .contains("gate = \"startup\""));
    }

    /// Each subsystem's default is the one the raw layer starts from.
    #[test]
    fn defaults_come_from_their_subsystems() {
        let s = convert(Config::default()).unwrap();
        let t = crate::timeline::TimelineConfig::default();
        assert_eq!(
            (
                s.timeline.quiet_period_secs,
                s.timeline.max_pods,
                s.timeline.pod_ttl_secs
            ),
            (t.quiet_period_secs, t.max_pods, t.pod_ttl_secs)
        );
        let p = crate::probe::ProbeConfig::default();
        assert_eq!(
            (
                s.probe.fast_interval,
                s.probe.slow_interval,
                s.probe.timeout
            ),
            (p.fast_interval, p.slow_interval, p.timeout)
        );
    }

    /// The effective config names what was compiled and round-trips: what
    /// `check-config` prints converts to the same settings.
    #[test]
    fn effective_config_round_trips() {
        let c = Config {
            role: Role::Sidecar,
            listen: "127.0.0.1:0".into(),
            ..Config::default()
        };
        let s = convert(c).unwrap();
        let text = s.to_redacted_toml();
        assert!(text.starts_with("# effective configuration"), "{text}");
        assert!(
            text.contains("compiled (built-in)") && text.contains("probes: engine"),
            "{text}"
        );
        assert!(text.contains("discover_engine = true"), "{text}");
        let again = convert(Config::from_toml(&text).unwrap()).unwrap();
        assert_eq!(again.to_redacted_toml(), text);
    }

    #[test]
    fn bad_globs_name_the_key_and_the_glob() {
        for (g, needle) in [
            ("/var/log/[", "not a valid glob"),
            ("relative/*.log", "absolute"),
            ("/var/log/**", "file name"),
            ("/var/log/pods/", "file name"),
        ] {
            let c = Config {
                globs: vec![g.into()],
                ..Config::default()
            };
            let e = convert(c).unwrap_err().to_string();
            assert!(
                e.starts_with("`globs`") && e.contains(g) && e.contains(needle),
                "{e}"
            );
        }
    }

    #[test]
    fn probe_urls_are_checked_by_the_probe_and_redacted() {
        let mut c = Config::default();
        c.probe.proxy_url = Some("ftp://127.0.0.1:4000/?token=Hunter2Ftp".into());
        let e = convert(c).unwrap_err().to_string();
        assert!(
            e.starts_with("`probe.proxy_url`") && e.contains("http://"),
            "{e}"
        );
        assert!(!e.contains("Hunter2Ftp"), "{e}");
    }

    #[test]
    fn a_missing_rule_pack_names_the_key_and_keeps_its_cause_apart() {
        let c = Config {
            rules: Some("/nonexistent/rules.toml".into()),
            ..Config::default()
        };
        let e = convert(c).unwrap_err();
        let top = e.to_string();
        let cause = std::error::Error::source(&e)
            .map(|s| s.to_string())
            .unwrap_or_default();
        assert!(
            top.contains("`rules`") && top.contains("/nonexistent/rules.toml"),
            "{top}"
        );
        assert!(
            !cause.is_empty() && !top.contains(&cause),
            "{top} / {cause}"
        );
    }
    /// The web config is read once by the conversion and summarised (no user names, no hashes).
    #[cfg(feature = "tls")]
    #[test]
    fn the_web_config_is_read_by_the_conversion() {
        let dir = tempfile::tempdir().unwrap();
        let web = dir.path().join("web.yml");
        std::fs::write(&web, "").unwrap();
        let c = Config {
            web_config_file: Some(web.clone()),
            ..Config::default()
        };
        let s = convert(c.clone()).unwrap();
        assert!(s.web.as_ref().is_some_and(|w| w.config.tls.is_none()));
        assert!(
            s.to_redacted_toml()
                .contains(": plain HTTP, 0 basic-auth user(s), 0 extra header(s)"),
            "{s:?}"
        );
        std::fs::remove_file(&web).unwrap();
        let e = convert(c).unwrap_err().to_string();
        assert!(
            e.starts_with("`web_config_file`") && e.contains("web.yml"),
            "{e}"
        );
        assert_eq!(e.matches("os error 2").count(), 1, "{e}");
    }
}
