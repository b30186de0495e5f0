//! End-to-end tests of the OTLP push: the agent runs in-process, tails a
//! scripted CRI burst, and pushes to a test OTLP/HTTP receiver (axum on
//! loopback, decoding every body as an `ExportMetricsServiceRequest`).
//!
//! No fixed sleeps: every wait polls a condition against a deadline.

use crate::support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use litellm_sentinel::agent::Agent;
use litellm_sentinel::config::{Config, HumanDuration, ReadFrom};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Metric, NumberDataPoint,
};
use prost::Message;
use support::{cri, metric as prom_metric, LogTree};
use tokio::time::Instant;

const DROPPED: &str = "litellm_sentinel_spend_batches_dropped_total";
const DBERR: &str = "litellm_sentinel_db_connect_errors_total";
const FAILURES: &str = "litellm_sentinel_otlp_export_failures_total";
const POD: &str = "litellm-otlp";

// ---------------------------------------------------------------- receiver

/// One request as the receiver saw it.
#[derive(Clone)]
struct Received {
    content_type: Option<String>,
    request: ExportMetricsServiceRequest,
}

#[derive(Clone, Default)]
struct ReceiverState {
    received: Arc<Mutex<Vec<Received>>>,
    /// Bodies that did not decode (must stay 0).
    undecodable: Arc<Mutex<usize>>,
    /// Status to answer with.
    status: Arc<AtomicU16>,
}

/// A test OTLP/HTTP metrics receiver on 127.0.0.1.
struct Receiver {
    addr: SocketAddr,
    state: ReceiverState,
    task: tokio::task::JoinHandle<()>,
}

async fn export(State(s): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(request) = ExportMetricsServiceRequest::decode(body) else {
        *s.undecodable.lock().unwrap() += 1;
        return StatusCode::BAD_REQUEST.into_response();
    };
    s.received.lock().unwrap().push(Received {
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        request,
    });
    let status = StatusCode::from_u16(s.status.load(Ordering::SeqCst))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        ExportMetricsServiceResponse::default().encode_to_vec(),
    )
        .into_response()
}

impl Receiver {
    async fn start(status: u16) -> Receiver {
        let state = ReceiverState::default();
        state.status.store(status, Ordering::SeqCst);
        let app = Router::new()
            .route("/v1/metrics", post(export))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, state, task }
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.state.received.lock().unwrap().len()
    }

    /// Waits until some request satisfies `pred`; returns it.
    async fn wait_for(
        &self,
        what: &str,
        deadline: Duration,
        pred: impl Fn(&ExportMetricsServiceRequest) -> bool,
    ) -> Received {
        let end = Instant::now() + deadline;
        loop {
            if let Some(r) = self.received().into_iter().rev().find(|r| pred(&r.request)) {
                return r;
            }
            assert!(
                Instant::now() < end,
                "timed out after {deadline:?} waiting for {what}; got {} requests",
                self.count()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------- lookups

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

fn find_metric<'a>(req: &'a ExportMetricsServiceRequest, name: &str) -> Option<&'a Metric> {
    req.resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .find(|m| m.name == name)
}

fn value(p: &NumberDataPoint) -> f64 {
    match p.value {
        Some(number_data_point::Value::AsDouble(v)) => v,
        Some(number_data_point::Value::AsInt(v)) => v as f64,
        None => f64::NAN,
    }
}

/// The value of the Sum point of `name` whose attributes include all of `want`.
fn sum_value(req: &ExportMetricsServiceRequest, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    let Some(metric::Data::Sum(s)) = find_metric(req, name)?.data.as_ref() else {
        return None;
    };
    s.data_points
        .iter()
        .find(|p| want.iter().all(|(k, v)| attr(&p.attributes, k) == Some(*v)))
        .map(value)
}

// ---------------------------------------------------------------- agent

/// A 1.83.x spend-queue failure: coloured header + traceback, separate CRI records.
fn spend_failure(ts: &str) -> String {
    let mut s = cri(ts, "stderr", "\x1b[92m10:15:02 - LiteLLM Proxy:ERROR\x1b[0m: utils.py:3905 - Error in spend logs queue monitor: All connection attempts failed");
    for l in [
        "Traceback (most recent call last):",
        "  File \"/usr/lib/python3.13/site-packages/litellm/proxy/utils.py\", line 3880, in update_spend_logs",
        "    await prisma_client.db.litellm_spendlogs.create_many(data=batch_with_dates, skip_duplicates=True)",
        "httpcore.ConnectError: All connection attempts failed",
        "",
        "The above exception was the direct cause of the following exception:",
        "",
        "Traceback (most recent call last):",
        "  File \"/usr/lib/python3.13/site-packages/prisma/engine/http.py\", line 97, in request",
        "httpx.ConnectError: All connection attempts failed",
    ] {
        s.push_str(&cri(ts, "stderr", l));
    }
    s
}

/// The scripted burst: proxy start, 3 spend-queue failures, and some noise
/// (invalid UTF-8, a truncated record) that must not count.
fn write_burst(tree: &LogTree) {
    let log = tree.log_path("llm", POD);
    let mut text = cri(
        "2026-11-24T10:15:00.123456789Z",
        "stdout",
        "INFO:     Uvicorn running on http://0.0.0.0:4000 (Press CTRL+C to quit)",
    );
    for (i, ts) in [
        "2026-11-24T10:15:01.5Z",
        "2026-11-24T10:15:02.250000001Z",
        "2026-11-24T10:15:03.987654321Z",
    ]
    .iter()
    .enumerate()
    {
        text.push_str(&spend_failure(ts));
        text.push_str(&cri(
            ts,
            "stdout",
            &format!("INFO:     10.0.0.{i}:46642 - \"POST /v1/chat/completions HTTP/1.1\" 200 OK"),
        ));
    }
    LogTree::append(&log, &text);
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(
        &mut f,
        b"2026-11-24T10:15:04.000000001Z stdout F caf\xc3\x28 \xff\xfe bytes\n2026-11-24T10:15:0",
    )
    .unwrap();
}

fn agent_config(tree: &LogTree, otlp: &str, interval: Duration) -> Config {
    Config {
        globs: vec![format!("{}/*_*litellm*_*/*/*.log", tree.pods().display())],
        state_file: tree.state_file(),
        listen: "127.0.0.1:0".into(),
        read_from: ReadFrom::Beginning,
        checkpoint_interval: HumanDuration(Duration::from_millis(200)),
        poll_interval: HumanDuration(Duration::from_millis(500)),
        otlp_endpoint: Some(otlp.to_string()),
        otlp_interval: HumanDuration(interval),
        ..Config::default()
    }
}

/// `/metrics` of the in-process agent (blocking client, off the runtime's workers).
async fn scrape(addr: SocketAddr) -> Option<(u16, String)> {
    tokio::task::spawn_blocking(move || support::http_get(addr, "/metrics"))
        .await
        .ok()
        .flatten()
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_the_same_series_as_metrics_with_otel_conventions() {
    let receiver = Receiver::start(200).await;
    let tree = LogTree::new();
    std::fs::create_dir_all(tree.pods()).unwrap();
    let cfg = agent_config(&tree, &receiver.base_url(), Duration::from_millis(200));
    let cfg = litellm_sentinel::config::Settings::try_from(cfg).unwrap();
    let agent = Agent::start(cfg, vec![]).await.unwrap();
    write_burst(&tree);

    let want = [("k8s.pod.name", POD), ("k8s.namespace.name", "llm")];
    let got = receiver
        .wait_for("3 dropped spend batches", Duration::from_secs(20), |r| {
            sum_value(r, DROPPED, &want) == Some(3.0)
        })
        .await;
    assert_eq!(got.content_type.as_deref(), Some("application/x-protobuf"));
    let req = &got.request;

    // Resource and scope.
    assert_eq!(req.resource_metrics.len(), 1);
    let rm = &req.resource_metrics[0];
    let res = &rm.resource.as_ref().unwrap().attributes;
    assert_eq!(attr(res, "service.name"), Some("litellm-sentinel"));
    assert_eq!(
        attr(res, "service.version"),
        Some(env!("CARGO_PKG_VERSION"))
    );
    let node = std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty());
    assert_eq!(attr(res, "k8s.node.name"), node.as_deref());
    assert_eq!(rm.scope_metrics.len(), 1);
    assert_eq!(
        rm.scope_metrics[0].scope.as_ref().unwrap().name,
        "litellm-sentinel"
    );

    // Counters: monotonic cumulative sums, same names, Kubernetes attribute names.
    let m = find_metric(req, DROPPED).unwrap();
    let Some(metric::Data::Sum(s)) = &m.data else {
        panic!("{DROPPED} is not a Sum: {m:?}")
    };
    assert!(s.is_monotonic);
    assert_eq!(
        s.aggregation_temporality,
        AggregationTemporality::Cumulative as i32
    );
    assert_eq!(m.unit, "1");
    assert!(!m.description.is_empty());
    for p in &s.data_points {
        assert!(attr(&p.attributes, "pod").is_none() && attr(&p.attributes, "namespace").is_none());
        assert!(p.start_time_unix_nano > 0 && p.time_unix_nano >= p.start_time_unix_nano);
    }
    assert_eq!(
        sum_value(
            req,
            DBERR,
            &[("k8s.pod.name", POD), ("operation", "spend_logs_queue")]
        ),
        Some(3.0)
    );

    // Gauges and units.
    let lag = find_metric(req, "litellm_sentinel_tail_lag_bytes").unwrap();
    assert_eq!(lag.unit, "By");
    assert!(matches!(lag.data, Some(metric::Data::Gauge(_))));

    // Histograms: present ones are well-formed.
    for name in [
        "litellm_sentinel_probe_duration_seconds",
        "litellm_sentinel_startup_gap_seconds",
    ] {
        let Some(m) = find_metric(req, name) else {
            continue;
        };
        assert_eq!(m.unit, "s");
        let Some(metric::Data::Histogram(h)) = &m.data else {
            panic!("{name} is not a Histogram")
        };
        assert_eq!(
            h.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        for p in &h.data_points {
            assert_eq!(p.bucket_counts.len(), p.explicit_bounds.len() + 1, "{name}");
            assert_eq!(p.bucket_counts.iter().sum::<u64>(), p.count, "{name}");
            assert!(p.explicit_bounds.windows(2).all(|w| w[0] < w[1]), "{name}");
            assert!(p.explicit_bounds.iter().all(|b| b.is_finite()), "{name}");
        }
    }

    // Every non-empty family of /metrics is pushed under the same name.
    let (status, text) = scrape(agent.addr).await.expect("scrape");
    assert_eq!(status, 200);
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split_whitespace().nth(2).unwrap();
        let has_series = text.lines().filter(|l| !l.starts_with('#')).any(|l| {
            let series = l.split(['{', ' ']).next().unwrap_or("");
            series == name || series == format!("{name}_count")
        });
        if has_series {
            assert!(find_metric(req, name).is_some(), "{name} not pushed");
        }
    }
    assert_eq!(*receiver.state.undecodable.lock().unwrap(), 0);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_collector_is_counted_and_never_blocks_metrics() {
    let receiver = Receiver::start(500).await;
    let tree = LogTree::new();
    std::fs::create_dir_all(tree.pods()).unwrap();
    let cfg = agent_config(&tree, &receiver.base_url(), Duration::from_millis(100));
    let agent = Agent::start(cfg, vec![]).await.unwrap();

    // Failures grow (backoff capped at the 100 ms interval) while /metrics answers.
    let end = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        let (status, text) = scrape(agent.addr).await.expect("/metrics must answer");
        assert_eq!(status, 200);
        let failures = prom_metric(&text, FAILURES, &[]).expect("failure counter exported");
        seen.push(failures);
        if failures >= 3.0 {
            break;
        }
        assert!(Instant::now() < end, "failures stuck at {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(receiver.count() >= 3, "every failure was a real attempt");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");

    // The collector recovers: pushes succeed and the counter stops growing.
    receiver.state.status.store(200, Ordering::SeqCst);
    let before = receiver.count();
    let end = Instant::now() + Duration::from_secs(20);
    while receiver.count() < before + 3 {
        assert!(Instant::now() < end, "pushes did not resume");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let settled = agent.metrics.agent.otlp_export_failures.get();
    let target = receiver.count() + 3;
    while receiver.count() < target {
        assert!(Instant::now() < end, "pushes stopped");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(agent.metrics.agent.otlp_export_failures.get(), settled);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_pushes_the_final_counts_once() {
    let receiver = Receiver::start(200).await;
    let tree = LogTree::new();
    std::fs::create_dir_all(tree.pods()).unwrap();
    // An hour: no periodic push happens during the test, only the final one.
    let cfg = agent_config(&tree, &receiver.base_url(), Duration::from_secs(3600));
    let agent = Agent::start(cfg, vec![]).await.unwrap();
    write_burst(&tree);
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, text) = scrape(agent.addr).await.expect("scrape");
        if prom_metric(&text, DROPPED, &[("pod", POD)]) == Some(3.0) {
            break;
        }
        assert!(Instant::now() < end, "burst not tailed:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(receiver.count(), 0);
    agent.shutdown().await;
    let got = receiver.received();
    assert_eq!(got.len(), 1, "exactly one final push");
    assert_eq!(
        sum_value(&got[0].request, DROPPED, &[("k8s.pod.name", POD)]),
        Some(3.0)
    );
}

// ---------------------------------------------------------------- https, mTLS, gzip

/// A managed-backend stand-in: OTLP/HTTP over TLS on 127.0.0.1 that requires
/// a client certificate signed by the test CA (mTLS), and records every
/// request's target, headers and (gunzipped) body.
#[cfg(feature = "tls")]
mod tls_receiver {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use http_body_util::{BodyExt, Full};
    use hyper::body::{Bytes, Incoming};
    use hyper::{Request, Response};
    use hyper_util::rt::TokioIo;
    use opentelemetry_proto::tonic::collector::metrics::v1::{
        ExportMetricsServiceRequest, ExportMetricsServiceResponse,
    };
    use prost::Message;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    /// One request as the TLS receiver saw it.
    #[derive(Clone, Debug)]
    pub struct Seen {
        pub target: String,
        pub host: Option<String>,
        pub content_encoding: Option<String>,
        pub client_cert: bool,
        pub request: Option<ExportMetricsServiceRequest>,
    }

    /// PEM files of a test PKI: CA, server (localhost), client.
    pub struct Pki {
        /// Holds the files below.
        _dir: tempfile::TempDir,
        pub ca: std::path::PathBuf,
        pub client_cert: std::path::PathBuf,
        pub client_key: std::path::PathBuf,
        server_cert: String,
        server_key: String,
        ca_pem: String,
    }

    impl Pki {
        pub fn new() -> Pki {
            let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
            ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
            let server_key = KeyPair::generate().unwrap();
            let server = CertificateParams::new(vec!["localhost".to_string()])
                .unwrap()
                .signed_by(&server_key, &ca)
                .unwrap();
            let client_key = KeyPair::generate().unwrap();
            let client = CertificateParams::new(vec!["litellm-sentinel".to_string()])
                .unwrap()
                .signed_by(&client_key, &ca)
                .unwrap();
            let dir = tempfile::tempdir().unwrap();
            let write = |name: &str, text: &str| {
                let p = dir.path().join(name);
                std::fs::write(&p, text).unwrap();
                p
            };
            Pki {
                ca: write("ca.pem", &ca.pem()),
                client_cert: write("client.pem", &client.pem()),
                client_key: write("client-key.pem", &client_key.serialize_pem()),
                server_cert: server.pem(),
                server_key: server_key.serialize_pem(),
                ca_pem: ca.pem(),
                _dir: dir,
            }
        }
    }

    pub struct TlsReceiver {
        pub addr: SocketAddr,
        pub seen: Arc<Mutex<Vec<Seen>>>,
        pub handshakes_failed: Arc<Mutex<usize>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for TlsReceiver {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl TlsReceiver {
        pub async fn start(pki: &Pki) -> TlsReceiver {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
                roots.add(c.unwrap()).unwrap();
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .unwrap();
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(pki.server_cert.as_bytes())
                    .map(|c| c.unwrap())
                    .collect();
            let key = PrivateKeyDer::from_pem_slice(pki.server_key.as_bytes()).unwrap();
            let config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_client_cert_verifier(verifier)
                .with_single_cert(chain, key)
                .unwrap();
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
            let handshakes_failed: Arc<Mutex<usize>> = Arc::default();
            let (seen2, failed2) = (seen.clone(), handshakes_failed.clone());
            let task = tokio::spawn(async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    let acceptor = acceptor.clone();
                    let (seen, failed) = (seen2.clone(), failed2.clone());
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            *failed.lock().unwrap() += 1;
                            return;
                        };
                        let client_cert = tls.get_ref().1.peer_certificates().is_some();
                        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                            let seen = seen.clone();
                            async move {
                                let target = req.uri().to_string();
                                let header = |n: &str| {
                                    req.headers()
                                        .get(n)
                                        .and_then(|v| v.to_str().ok())
                                        .map(str::to_string)
                                };
                                let (host, content_encoding) =
                                    (header("host"), header("content-encoding"));
                                let body = req.into_body().collect().await?.to_bytes();
                                let raw = if content_encoding.as_deref() == Some("gzip") {
                                    let mut out = Vec::new();
                                    std::io::Read::read_to_end(
                                        &mut flate2::read::GzDecoder::new(&body[..]),
                                        &mut out,
                                    )
                                    .map(|_| out)
                                    .ok()
                                } else {
                                    Some(body.to_vec())
                                };
                                let request = raw
                                    .and_then(|b| ExportMetricsServiceRequest::decode(&b[..]).ok());
                                seen.lock().unwrap().push(Seen {
                                    target,
                                    host,
                                    content_encoding,
                                    client_cert,
                                    request,
                                });
                                Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(
                                    ExportMetricsServiceResponse::default().encode_to_vec(),
                                ))))
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                    });
                }
            });
            TlsReceiver {
                addr,
                seen,
                handshakes_failed,
                task,
            }
        }
    }
}

/// A child agent started with its own environment; killed on drop.
#[cfg(feature = "tls")]
struct AgentChild {
    child: std::process::Child,
    log: std::path::PathBuf,
}

#[cfg(feature = "tls")]
impl Drop for AgentChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The agent binary with OTLP settings in its environment (never this process's).
#[cfg(feature = "tls")]
fn spawn_agent_with_env(tree: &LogTree, vars: &[(&str, String)]) -> (AgentChild, SocketAddr) {
    let port = support::free_port();
    let config = tree.config(port, "");
    let log = config.with_extension("otlp-tls.log");
    let mut cmd = std::process::Command::new(support::bin());
    cmd.args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    for v in [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_CLIENT_KEY",
        "OTEL_EXPORTER_OTLP_COMPRESSION",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_SERVICE_NAME",
        "NODE_NAME",
        "POD_UID",
    ] {
        cmd.env_remove(v);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let child = AgentChild {
        child: cmd.spawn().unwrap(),
        log,
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    (child, addr)
}

#[cfg(feature = "tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_mtls_gzip_and_resource_attributes_reach_a_managed_backend() {
    let pki = tls_receiver::Pki::new();
    let receiver = tls_receiver::TlsReceiver::start(&pki).await;
    let tree = LogTree::new();
    std::fs::create_dir_all(tree.pods()).unwrap();
    let port = receiver.addr.port();
    let path = |p: &std::path::Path| p.display().to_string();
    let (agent, _) = spawn_agent_with_env(
        &tree,
        &[
            // A gateway path and a query string: /v1/metrics joins the path.
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("https://localhost:{port}/otlp?tenant=llm-eu"),
            ),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", path(&pki.ca)),
            (
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                path(&pki.client_cert),
            ),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", path(&pki.client_key)),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".into()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200".into()),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=prod,k8s.cluster.name=eu%2D1".into(),
            ),
            ("OTEL_SERVICE_NAME", "litellm-sentinel-eu".into()),
            ("NODE_NAME", "node-tls-1".into()),
        ],
    );
    write_burst(&tree);

    let want = [("k8s.pod.name", POD), ("k8s.namespace.name", "llm")];
    let end = Instant::now() + Duration::from_secs(30);
    let got = loop {
        let seen = receiver.seen.lock().unwrap().clone();
        if let Some(s) = seen.iter().rev().find(|s| {
            s.request
                .as_ref()
                .is_some_and(|r| sum_value(r, DROPPED, &want) == Some(3.0))
        }) {
            break s.clone();
        }
        assert!(
            Instant::now() < end,
            "no push with 3 dropped batches; seen {} requests ({} undecodable), {} failed handshakes\nagent log:\n{}",
            seen.len(),
            seen.iter().filter(|s| s.request.is_none()).count(),
            receiver.handshakes_failed.lock().unwrap(),
            std::fs::read_to_string(&agent.log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(got.target, "/otlp/v1/metrics?tenant=llm-eu");
    assert_eq!(
        got.host.as_deref(),
        Some(format!("localhost:{port}").as_str())
    );
    assert_eq!(got.content_encoding.as_deref(), Some("gzip"));
    assert!(got.client_cert, "the agent presented no client certificate");
    let req = got.request.unwrap();
    let res = &req.resource_metrics[0]
        .resource
        .as_ref()
        .unwrap()
        .attributes;
    assert_eq!(attr(res, "service.name"), Some("litellm-sentinel-eu"));
    assert_eq!(attr(res, "service.instance.id"), Some("node-tls-1"));
    assert_eq!(attr(res, "k8s.node.name"), Some("node-tls-1"));
    assert_eq!(attr(res, "deployment.environment"), Some("prod"));
    assert_eq!(attr(res, "k8s.cluster.name"), Some("eu-1"));
    assert_eq!(
        attr(res, "service.version"),
        Some(env!("CARGO_PKG_VERSION"))
    );
    // Every body was gzipped and decoded (none fell back to plain protobuf).
    let seen = receiver.seen.lock().unwrap().clone();
    assert!(seen
        .iter()
        .all(|s| s.content_encoding.as_deref() == Some("gzip") && s.request.is_some()));
    assert_eq!(*receiver.handshakes_failed.lock().unwrap(), 0);
}

#[cfg(feature = "tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_to_an_untrusted_server_fails_and_is_counted() {
    let pki = tls_receiver::Pki::new();
    let receiver = tls_receiver::TlsReceiver::start(&pki).await;
    let tree = LogTree::new();
    std::fs::create_dir_all(tree.pods()).unwrap();
    // No OTEL_EXPORTER_OTLP_CERTIFICATE: the compiled-in public roots do not
    // trust the test CA, so the handshake must fail (verification is real).
    let (agent, addr) = spawn_agent_with_env(
        &tree,
        &[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("https://localhost:{}", receiver.addr.port()),
            ),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200".into()),
        ],
    );
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let failures = scrape(addr)
            .await
            .and_then(|(_, text)| prom_metric(&text, FAILURES, &[]));
        if failures.is_some_and(|f| f >= 2.0) {
            break;
        }
        assert!(
            Instant::now() < end,
            "{FAILURES} = {failures:?}\nagent log:\n{}",
            std::fs::read_to_string(&agent.log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        receiver.seen.lock().unwrap().is_empty(),
        "a request got through"
    );
    assert!(*receiver.handshakes_failed.lock().unwrap() >= 1);
}
