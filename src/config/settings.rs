//! The one conversion from the raw [`Config`] to the compiled [`Settings`].
//!
//! Like ripgrep's low-level → high-level arguments: the parser fills a plain
//! struct, and this conversion builds everything the agent runs on, once. A
//! value that cannot be used fails here, naming its key; nothing downstream
//! parses, compiles or re-checks a setting.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{check_size, Config, ConfigError, LogFormat, ReadFrom, Role, MAX_LINE_BYTES, MAX_PODS};
use crate::classify::{RulePack, VersionFamily};
use crate::format::PodRef;
use crate::gate::GateConfig;
use crate::otlp::OtlpConfig;
use crate::probe::{ProbeConfig, ProbeConfigError, Secret};
use crate::tail::discover::Glob;
use crate::tail::TailConfig;
use crate::timeline::TimelineConfig;

/// Everything the agent runs on, typed and compiled: built only by
/// [`Settings::try_from`] (or [`Settings::load`]), so holding one means every
/// setting was accepted. Composed of each subsystem's own config type.
pub struct Settings {
    pub role: Role,
    pub log_format: LogFormat,
    /// Where the HTTP server listens.
    pub listen: std::net::SocketAddr,
    /// Whether this process tails logs: the node role, or any role given its own globs.
    pub tailing: bool,
    /// The tailer's config with compiled globs; `start_at_end` says what
    /// `read_from` asks for a first start (the agent clears it when a checkpoint exists).
    pub tail: TailConfig,
    /// Offsets + counters snapshot.
    pub state_file: PathBuf,
    pub checkpoint_interval: Duration,
    pub timeline: TimelineConfig,
    /// The built-in pack plus the user's, with the LiteLLM version pin: compiled once.
    pub rules: Arc<RulePack>,
    /// The user rule pack file, if any (watched for reloads).
    pub rules_file: Option<PathBuf>,
    /// The configured probes (engine discovery resolved for the role); they
    /// run when [`ProbeConfig::targets`] is not empty.
    pub probe: ProbeConfig,
    /// The pod these probes describe.
    pub probe_pod: PodRef,
    /// `/gate` mode, hysteresis and latch file (the gated pod is filled in by the agent).
    pub gate: GateConfig,
    /// OTLP push, with the `OTEL_*` environment applied; `None` = off.
    pub otlp: Option<OtlpConfig>,
    /// `--web.config.file`, read and checked (certificates and key included).
    pub web: Option<WebSettings>,
    /// What these settings were built from (reload diffs, the effective config's rendering).
    raw: Config,
}

/// A checked web config: the server's runtime follows the file from here on.
pub struct WebSettings {
    pub path: PathBuf,
    /// The parsed file (its certificate and key loaded and matched).
    #[cfg(feature = "tls")]
    pub config: crate::webconfig::WebConfig,
}

impl WebSettings {
    /// What the file turns on (user names and hashes are not shown).
    fn summary(&self) -> String {
        #[cfg(feature = "tls")]
        return format!(
            "{}: {}, {} basic-auth user(s), {} extra header(s)",
            self.path.display(),
            if self.config.tls.is_some() {
                "TLS"
            } else {
                "plain HTTP"
            },
            self.config.basic_auth_users.len(),
            self.config.headers.len()
        );
        #[cfg(not(feature = "tls"))]
        self.path.display().to_string()
    }
}

impl std::fmt::Debug for Settings {
    /// The redacted effective config: a `Settings` never prints a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_redacted_toml())
    }
}

impl TryFrom<Config> for Settings {
    type Error = ConfigError;

    /// The conversion, with the `OTEL_*` variables read from the process environment.
    fn try_from(raw: Config) -> Result<Settings, ConfigError> {
        Settings::with_env(raw, &crate::otlp::env_var)
    }
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

impl Settings {
    /// Reads the file (if any), applies the overrides, converts.
    pub fn load(file: Option<&Path>, o: &super::Overrides) -> Result<Settings, ConfigError> {
        Settings::try_from(Config::read(file, o)?)
    }

    /// The conversion with the `OTEL_*` variables read through `env`
    /// (tests pass a fixed environment). Cheap checks come first; the rule
    /// pack, the one expensive part, is compiled last.
    pub(crate) fn with_env(
        raw: Config,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        check_size("max_line_bytes", raw.max_line_bytes, MAX_LINE_BYTES)?;
        check_size("max_pods", raw.max_pods, MAX_PODS)?;
        for (key, d, bounds) in raw.durations() {
            bounds.check(key, d.0)?;
        }
        let pin = version_pin(&raw)?;
        let tail = tail_config(&raw)?;
        let listen = raw.listen.parse().map_err(|e| {
            invalid(
                "listen",
                format!("`{}` is not host:port ({e}); e.g. 0.0.0.0:9464", raw.listen),
            )
        })?;
        let (probe, probe_pod) = probe_config(&raw)?;
        let otlp = otlp_config(&raw, env)?;
        let web = web_settings(&raw)?;
        let rules = Arc::new(compile_rules(raw.rules.as_deref(), pin)?);
        Ok(Settings {
            role: raw.role,
            log_format: raw.log_format,
            listen,
            tailing: raw.role == Role::Node || raw.globs != [super::DEFAULT_GLOB],
            tail,
            state_file: raw.state_file.clone(),
            checkpoint_interval: raw.checkpoint_interval.0,
            timeline: TimelineConfig {
                quiet_period_secs: raw.quiet_period.0.as_secs_f64(),
                max_pods: raw.max_pods,
                pod_ttl_secs: raw.pod_ttl.0.as_secs_f64(),
                ..TimelineConfig::default()
            },
            rules,
            rules_file: raw.rules.clone(),
            probe,
            probe_pod,
            gate: GateConfig {
                mode: raw.gate,
                down_after: raw.gate_down_after.0,
                state_file: raw.gate_state_file.clone(),
                ..GateConfig::default()
            },
            otlp,
            web,
            raw,
        })
    }

    /// The raw config these settings were built from.
    pub fn raw(&self) -> &Config {
        &self.raw
    }

    /// The effective configuration as TOML, every URL redacted (for
    /// `check-config` and the start-up log line): the raw values with what
    /// the conversion resolved (listen address, engine discovery, the OTLP
    /// interval after `OTEL_METRIC_EXPORT_INTERVAL`), under comment lines
    /// naming what was compiled. Feeding it back in gives the same settings.
    pub fn to_redacted_toml(&self) -> String {
        use crate::redact::redact;
        let mut c = self.raw.clone();
        c.listen = self.listen.to_string();
        c.probe.discover_engine = Some(self.probe.discover_engine);
        let otlp = match &self.otlp {
            Some(o) => {
                c.otlp_interval = super::HumanDuration(o.interval);
                format!(
                    "push to {} every {}",
                    redact(&o.endpoint),
                    super::HumanDuration(o.interval)
                )
            }
            None => "off".to_string(),
        };
        let targets: Vec<&str> = self.probe.targets().iter().map(|t| t.as_str()).collect();
        let user = self
            .rules_file
            .as_ref()
            .map_or(String::new(), |p| format!(" + {}", p.display()));
        let mut header = format!(
            "# effective configuration\n# rules: {} compiled (built-in{user})\n# tailing: {}; probes: {}; otlp: {otlp}\n",
            self.rules.len(),
            if self.tailing { "yes" } else { "no" },
            if targets.is_empty() { "none".to_string() } else { targets.join(", ") },
        );
        if let Some(w) = &self.web {
            header.push_str(&format!("# web: {}\n", w.summary()));
        }
        let mut out = header + &c.to_redacted_toml();
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out
    }
}

/// Compiles the built-in rule pack plus the user's (`rules`), pinned to a
/// LiteLLM release. The one place a pack is compiled; it says so in the log
/// (one line per compile: a reload compiles once).
pub fn compile_rules(
    user_pack: Option<&Path>,
    pin: Option<VersionFamily>,
) -> Result<RulePack, ConfigError> {
    let pack = match user_pack {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::RulesRead {
                path: path.to_path_buf(),
                source,
            })?;
            RulePack::with_user_pack(&text, &path.display().to_string())
                .map_err(|e| invalid("rules", e.to_string()))?
        }
        None => RulePack::builtin().map_err(|e| {
            invalid(
                "rules",
                format!("the built-in rule pack does not compile (a bug: please report it): {e}"),
            )
        })?,
    };
    let pack = pack.with_version_pin(pin);
    tracing::info!(
        rules = pack.len(),
        user_pack = user_pack.map(|p| p.display().to_string()),
        "compiled the rule pack"
    );
    Ok(pack)
}

fn version_pin(raw: &Config) -> Result<Option<VersionFamily>, ConfigError> {
    raw.litellm_version
        .as_deref()
        .map(|v| {
            VersionFamily::parse(v).ok_or_else(|| {
                invalid(
                    "litellm_version",
                    format!("`{v}` is not a LiteLLM version like \"1.83.14\" or \"1.110\""),
                )
            })
        })
        .transpose()
}

/// The tailer's config: every glob compiled here, once.
fn tail_config(raw: &Config) -> Result<TailConfig, ConfigError> {
    if raw.role == Role::Node && raw.globs.is_empty() {
        return Err(invalid(
            "globs",
            "the node role needs at least one glob of log files to tail",
        ));
    }
    let globs = raw
        .globs
        .iter()
        .map(|g| Glob::new(g).map_err(|e| invalid("globs", e.to_string())))
        .collect::<Result<Vec<Glob>, ConfigError>>()?;
    if raw.role == Role::Node {
        for own in own_log_files() {
            if let Some(g) = globs.iter().find(|g| glob_matches(g, &own)) {
                return Err(invalid(
                    "globs",
                    format!(
                        "`{g}` matches the agent's own log output {} (stdout/stderr): the agent would read its own lines, and at debug level every line read logs more; write the agent's log elsewhere or narrow the glob",
                        own.path.display()
                    ),
                ));
            }
        }
    }
    Ok(TailConfig {
        globs,
        max_line_bytes: raw.max_line_bytes,
        poll_interval: raw.poll_interval.0,
        force_polling: raw.force_polling,
        start_at_end: raw.read_from == ReadFrom::End,
    })
}

/// The probes: the probe subsystem's own check decides what an http URL is;
/// this adds what only the config knows (credentials, the database URL's
/// scheme) and names the key.
fn probe_config(raw: &Config) -> Result<(ProbeConfig, PodRef), ConfigError> {
    let p = &raw.probe;
    for (key, url) in [
        ("probe.engine_url", &p.engine_url),
        ("probe.proxy_url", &p.proxy_url),
    ] {
        if url.as_deref().is_some_and(has_userinfo) {
            return Err(no_credentials(key));
        }
    }
    if let Some(db) = &p.database_url {
        if !(db.starts_with("postgres://") || db.starts_with("postgresql://")) {
            return Err(invalid(
                "probe.database_url",
                "must be a postgres:// or postgresql:// URL",
            ));
        }
    }
    let probe = ProbeConfig {
        engine_url: p.engine_url.clone(),
        discover_engine: p
            .discover_engine
            .unwrap_or(raw.role == Role::Sidecar && p.engine_url.is_none()),
        proc_root: p.proc_root.clone(),
        proxy_url: p.proxy_url.clone(),
        database_url: p.database_url.clone().map(Secret::new),
        fast_interval: p.fast_interval.0,
        slow_interval: p.slow_interval.0,
        timeout: p.timeout.0,
    };
    probe.validate().map_err(|e| match e {
        ProbeConfigError::InvalidUrl { field, value } => {
            let key = if field == "engine_url" {
                "probe.engine_url"
            } else {
                "probe.proxy_url"
            };
            invalid(
                key,
                format!(
                    "`{}` must be an http:// URL with a host (probes are plain HTTP on localhost), e.g. http://127.0.0.1:4000",
                    crate::redact::redact(&value)
                ),
            )
        }
        ProbeConfigError::DatabaseProbeUnavailable => invalid("probe.database_url", e.to_string()),
        ProbeConfigError::ZeroDuration { .. } => invalid("probe", e.to_string()),
    })?;
    let pod = PodRef {
        namespace: p.namespace.clone().unwrap_or_default(),
        pod: p.pod.clone().unwrap_or_else(|| "local".to_string()),
    };
    Ok((probe, pod))
}

fn no_credentials(key: &'static str) -> ConfigError {
    invalid(
        key,
        "must not carry credentials (`user:password@`): HTTP clients log the authority at trace level and send it in clear; for OTLP put them in OTEL_EXPORTER_OTLP_HEADERS (e.g. Authorization=Basic%20…)",
    )
}

/// The OTLP subsystem's own parser, fed the config's endpoint and interval
/// and the `OTEL_*` environment.
fn otlp_config(
    raw: &Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<OtlpConfig>, ConfigError> {
    if raw.otlp_endpoint.as_deref().is_some_and(has_userinfo) {
        return Err(no_credentials("otlp_endpoint"));
    }
    OtlpConfig::from_lookup(raw.otlp_endpoint.clone(), raw.otlp_interval.0, env)
        .map_err(|e| invalid("otlp_endpoint", e.to_string()))
}

/// Reads the web config now, certificate and key too: a bad file fails at
/// start (or rejects a reload), not at the first scrape.
fn web_settings(raw: &Config) -> Result<Option<WebSettings>, ConfigError> {
    let Some(path) = &raw.web_config_file else {
        return Ok(None);
    };
    #[cfg(feature = "tls")]
    {
        let config = crate::webconfig::WebConfig::load(path)
            .map_err(|e| invalid("web_config_file", crate::error::chain(&e).to_string()))?;
        Ok(Some(WebSettings {
            path: path.clone(),
            config,
        }))
    }
    #[cfg(not(feature = "tls"))]
    Err(invalid(
        "web_config_file",
        format!(
            "{} is set, but this build has no TLS/basic-auth support (rebuild with the `tls` cargo feature)",
            path.display()
        ),
    ))
}

/// A regular file the agent's stdout or stderr writes to.
#[derive(Debug)]
struct OwnLog {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

/// The files behind fd 1 and 2 (when they are regular files, i.e. the agent
/// logs to a file rather than a pipe or terminal).
fn own_log_files() -> Vec<OwnLog> {
    use std::os::unix::fs::MetadataExt;
    let mut out: Vec<OwnLog> = Vec::new();
    for fd in [1, 2] {
        let link = PathBuf::from(format!("/proc/self/fd/{fd}"));
        let (Ok(path), Ok(meta)) = (std::fs::read_link(&link), std::fs::metadata(&link)) else {
            continue;
        };
        if meta.is_file()
            && !out
                .iter()
                .any(|o| o.dev == meta.dev() && o.ino == meta.ino())
        {
            out.push(OwnLog {
                path,
                dev: meta.dev(),
                ino: meta.ino(),
            });
        }
    }
    out
}

/// Whether the tailer would pick `own` up through glob `g`: by its path, or
/// (through symlinks or bind mounts) as the same file among the glob's matches.
fn glob_matches(g: &Glob, own: &OwnLog) -> bool {
    if g.matches_path(&own.path) {
        return true;
    }
    // The same walk the tailer's first pass makes; unreadable paths are its to report.
    let mut listings = crate::tail::discover::Listings::default();
    crate::tail::discover::expand(std::slice::from_ref(g), &mut listings, &mut |_, _| {})
        .into_iter()
        .any(|f| f.key.dev == own.dev && f.key.ino == own.ino)
}

/// Whether an http URL has a `user[:password]@` part (an `@` before the
/// query, which is where an unencoded one in a password would sit too).
fn has_userinfo(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['?', '#']).next().unwrap_or("").contains('@')
}
