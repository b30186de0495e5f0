//! Agent configuration: a TOML file, overridden by `LITELLM_SENTINEL_*`
//! environment variables and then by command-line flags.
//!
//! Validation happens here, once, so that the rest of the agent only ever sees
//! a config that works: unknown keys, bad globs, bad durations and bad rule
//! packs are errors that name the key and the reason.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let v: f64 = num
            .parse()
            .map_err(|_| format!("`{s}` is not a duration (use e.g. 250ms, 10s, 15m, 1h)"))?;
        let secs = match unit.trim() {
            "ms" => v / 1000.0,
            "" | "s" => v,
            "m" => v * 60.0,
            "h" => v * 3600.0,
            u => return Err(format!("`{s}`: unknown unit `{u}` (use ms, s, m or h)")),
        };
        if !secs.is_finite() || secs < 0.0 {
            return Err(format!("`{s}` is not a valid duration"));
        }
        Ok(HumanDuration(Duration::from_secs_f64(secs)))
    }
}

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
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(f64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(n) => HumanDuration::parse(&n.to_string()).map_err(serde::de::Error::custom),
            Raw::Str(s) => HumanDuration::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// The default glob: LiteLLM pods' container logs under the kubelet's pods directory.
pub const DEFAULT_GLOB: &str = "/var/log/pods/*_*litellm*_*/*/*.log";

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
    fn default() -> Self {
        ProbeSettings {
            engine_url: None,
            discover_engine: None,
            proc_root: PathBuf::from("/proc"),
            proxy_url: None,
            database_url: None,
            fast_interval: HumanDuration(Duration::from_millis(250)),
            slow_interval: HumanDuration(Duration::from_secs(10)),
            timeout: HumanDuration(Duration::from_secs(2)),
            namespace: None,
            pod: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            role: Role::Node,
            globs: vec![DEFAULT_GLOB.to_string()],
            state_file: PathBuf::from("/var/lib/litellm-sentinel/state.json"),
            read_from: ReadFrom::End,
            listen: "0.0.0.0:9464".to_string(),
            max_line_bytes: 256 * 1024,
            quiet_period: HumanDuration(Duration::from_secs(60)),
            checkpoint_interval: HumanDuration(Duration::from_secs(5)),
            poll_interval: HumanDuration(Duration::from_secs(30)),
            force_polling: false,
            pod_ttl: HumanDuration(Duration::from_secs(900)),
            max_pods: 2000,
            rules: None,
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
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
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

impl Config {
    /// Reads the file (if any), applies overrides, validates.
    pub fn load(file: Option<&Path>, o: &Overrides) -> Result<Config, ConfigError> {
        let mut cfg = match file {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        cfg.apply(o);
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses a TOML file (no overrides, no validation).
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
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
    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim().replace('\n', " "))
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

    /// Checks every setting; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: String| ConfigError::Invalid { key, reason };
        if self.role == Role::Node && self.globs.is_empty() {
            return Err(invalid(
                "globs",
                "the node role needs at least one glob of log files to tail".into(),
            ));
        }
        for g in &self.globs {
            glob::Pattern::new(g)
                .map_err(|e| invalid("globs", format!("`{g}` is not a valid glob: {e}")))?;
            if !g.starts_with('/') {
                return Err(invalid("globs", format!("`{g}` must be an absolute path")));
            }
        }
        self.listen.parse::<SocketAddr>().map_err(|e| {
            invalid(
                "listen",
                format!(
                    "`{}` is not host:port ({e}); e.g. 0.0.0.0:9464",
                    self.listen
                ),
            )
        })?;
        if self.max_line_bytes < 1024 {
            return Err(invalid(
                "max_line_bytes",
                format!("{} is too small (minimum 1024)", self.max_line_bytes),
            ));
        }
        if self.max_pods == 0 {
            return Err(invalid("max_pods", "must be at least 1".into()));
        }
        for (key, d) in [
            ("checkpoint_interval", self.checkpoint_interval),
            ("poll_interval", self.poll_interval),
            ("probe.fast_interval", self.probe.fast_interval),
            ("probe.slow_interval", self.probe.slow_interval),
            ("probe.timeout", self.probe.timeout),
            ("otlp_interval", self.otlp_interval),
            ("gate_down_after", self.gate_down_after),
        ] {
            if d.0.is_zero() {
                return Err(invalid(key, "must be greater than zero".into()));
            }
        }
        for (key, url) in [
            ("probe.engine_url", &self.probe.engine_url),
            ("probe.proxy_url", &self.probe.proxy_url),
        ] {
            if let Some(u) = url {
                if !u.starts_with("http://") {
                    return Err(invalid(
                        key,
                        format!(
                            "`{u}` must be an http:// URL (probes are plain HTTP on localhost)"
                        ),
                    ));
                }
            }
        }
        if let Some(db) = &self.probe.database_url {
            if !(db.starts_with("postgres://") || db.starts_with("postgresql://")) {
                return Err(invalid(
                    "probe.database_url",
                    "must be a postgres:// or postgresql:// URL".into(),
                ));
            }
        }
        if let Some(u) = &self.otlp_endpoint {
            // Same checks as the pusher's (plain http only: the agent has no TLS).
            crate::otlp::OtlpConfig::from_lookup(Some(u.clone()), self.otlp_interval.0, |_| None)
                .map_err(|e| invalid("otlp_endpoint", e.to_string()))?;
        }
        if let Some(web) = &self.web_config_file {
            // Reads the certificate and key too: a bad file fails at start, not at the first scrape.
            #[cfg(feature = "tls")]
            crate::webconfig::WebConfig::load(web)
                .map_err(|e| invalid("web_config_file", e.to_string()))?;
            #[cfg(not(feature = "tls"))]
            return Err(invalid(
                "web_config_file",
                format!(
                    "{} is set, but this build has no TLS/basic-auth support (rebuild with the `tls` cargo feature)",
                    web.display()
                ),
            ));
        }
        if let Some(rules) = &self.rules {
            let text = std::fs::read_to_string(rules)
                .map_err(|e| invalid("rules", format!("cannot read {}: {e}", rules.display())))?;
            crate::classify::RulePack::with_user_pack(&text, &rules.display().to_string())
                .map_err(|e| invalid("rules", e.to_string()))?;
        }
        Ok(())
    }

    /// The effective config as TOML, with the database password redacted (for logs and `check-config`).
    pub fn to_redacted_toml(&self) -> String {
        let mut c = self.clone();
        c.probe.database_url = c.probe.database_url.as_deref().map(redact_url);
        c.otlp_endpoint = c.otlp_endpoint.as_deref().map(redact_url);
        toml::to_string(&c).unwrap_or_else(|e| format!("# cannot render config: {e}"))
    }
}

/// Replaces the password of a URL (`scheme://user:pass@host`) with `***`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return "***".into();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..scheme_end], user, &rest[at..])
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        Config::default().validate().unwrap();
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
            let e = c.validate().unwrap_err().to_string();
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
        assert_eq!(
            redact_url("postgresql://llm:s3cret@db:5432/litellm"),
            "postgresql://llm:***@db:5432/litellm"
        );
        assert_eq!(
            redact_url("postgresql://db/litellm"),
            "postgresql://db/litellm"
        );
        let mut c = Config::default();
        c.probe.database_url = Some("postgres://u:hunter2@h/d".into());
        let t = c.to_redacted_toml();
        assert!(!t.contains("hunter2") && t.contains("u:***@h"), "{t}");
    }
}
