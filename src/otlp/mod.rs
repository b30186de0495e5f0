//! OTLP/HTTP push of the agent's metrics (`http/protobuf`, cumulative temporality).
//!
//! Many clusters collect through an OpenTelemetry Collector instead of
//! scraping. The `prometheus::Registry` that serves `/metrics` stays the one
//! source of truth: every push gathers it and converts the families with
//! [`to_request`], so an OTLP backend sees the same names, units and values
//! as a scrape (counters keep their `_total` suffix).
//!
//! Transport: `http://` to a collector in the cluster, or `https://` straight
//! to a managed backend (rustls, the `tls` feature): server certificates are
//! verified against `OTEL_EXPORTER_OTLP_CERTIFICATE` when set, else against
//! the Mozilla roots compiled in (the image is `FROM scratch`, with no CA
//! bundle); `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` / `_CLIENT_KEY` add mTLS.
//! `OTEL_EXPORTER_OTLP_COMPRESSION=gzip` compresses bodies (a 5–10× smaller
//! push). The resource carries `service.name` (`OTEL_SERVICE_NAME`),
//! `service.version`, `service.instance.id` (the pod uid `POD_UID` in the
//! sidecar, else the node name `NODE_NAME`, else the host name) and
//! `OTEL_RESOURCE_ATTRIBUTES`. Every setting is checked (files read and
//! parsed) when the configuration is read, not at the first push.
//!
//! Header values (`OTEL_EXPORTER_OTLP_HEADERS`) are usually API keys: they
//! are never logged, never put in an error, and `OtlpConfig`'s `Debug`
//! redacts them.

//!
//! One job per file: `config` reads and checks the settings (OTel
//! environment variables plus the agent's own), `resource` says who pushes,
//! `convert` turns a gathered registry into an OTLP request, `push` sends it
//! on a timer through the shared [`crate::http_client`], `tls` builds the
//! rustls client configuration.

use std::time::Duration;

mod config;
mod convert;
mod push;
mod resource;
#[cfg(test)]
mod test_util;
#[cfg(feature = "tls")]
mod tls;

pub use config::{env, env_var, Compression, OtlpConfig, OtlpError, TlsFiles};
pub use convert::{to_request, unix_nanos_now};
pub use push::{spawn_pusher, PushError};
pub use resource::ResourceInfo;

/// `service.name` of the agent, and the name of its instrumentation scope.
pub(crate) const SERVICE_NAME: &str = "litellm-sentinel";
/// Path of the OTLP/HTTP metrics endpoint, appended to a base endpoint.
pub(crate) const METRICS_PATH: &str = "/v1/metrics";
/// Push interval when neither the config nor `OTEL_METRIC_EXPORT_INTERVAL` sets one (OTel default).
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Per-push deadline when `OTEL_EXPORTER_OTLP_TIMEOUT` is unset (OTel default).
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// First retry delay after a failed push; doubles up to the interval.
pub(crate) const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
