//! `--web.config.file` end to end, in process: the real agent serves HTTPS
//! with a certificate made at test time (rcgen, signed by a test CA) and
//! requires basic auth (bcrypt) everywhere except the kubelet's probe paths.
//! A rustls client trusting only the test CA plays Prometheus.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use litellm_sentinel::agent::Agent;
use litellm_sentinel::config::{Config, Overrides, Settings};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A CA and a server certificate for `localhost` / 127.0.0.1 that it signed.
struct Pki {
    ca_der: CertificateDer<'static>,
    server_cert_pem: String,
    server_key_pem: String,
}

fn make_pki(ca_name: &str) -> Pki {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "litellm-sentinel");
    let server_cert = params.signed_by(&server_key, &issuer).expect("server cert");
    Pki {
        ca_der: ca_cert.der().clone(),
        server_cert_pem: server_cert.pem(),
        server_key_pem: server_key.serialize_pem(),
    }
}

fn client_config(ca: &CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).expect("trust the test CA");
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(cfg)
}

/// An HTTP response, as far as the tests look at it.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// One HTTPS GET on a fresh connection (`Connection: close`).
async fn https_get(
    addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    path: &str,
    authorization: Option<String>,
) -> std::io::Result<Answer> {
    let tcp = TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(tls.clone());
    let name = ServerName::try_from("localhost").expect("server name");
    let mut stream = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("handshake timed out"))??;
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
    // A peer that closes without close_notify still gave us the whole response.
    if !matches!(read, Ok(Ok(_))) && buf.is_empty() {
        return Err(std::io::Error::other(format!("no response: {read:?}")));
    }
    parse_answer(&buf).ok_or_else(|| std::io::Error::other("not an HTTP response"))
}

fn parse_answer(buf: &[u8]) -> Option<Answer> {
    let text = String::from_utf8_lossy(buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some(Answer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    })
}

/// A plain-HTTP GET (`Connection: close`); `None` when the server answered nothing.
fn plain_http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let a = parse_answer(&buf)?;
    Some((a.status, a.body))
}

/// A node agent on 127.0.0.1:0 with its log tree and state under `dir`.
fn agent_config(dir: &Path, web: Option<PathBuf>) -> Config {
    std::fs::create_dir_all(dir.join("pods")).expect("pods dir");
    Config {
        listen: "127.0.0.1:0".into(),
        globs: vec![format!("{}/pods/*_*litellm*_*/*/*.log", dir.display())],
        state_file: dir.join("state").join("state.json"),
        web_config_file: web,
        ..Config::default()
    }
}

struct Setup {
    dir: tempfile::TempDir,
    web: PathBuf,
    pki: Pki,
}

/// Writes the PKI under `dir/tls/` and a web config that names it relatively.
fn setup(password: &str) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = make_pki("litellm-sentinel test CA");
    std::fs::create_dir_all(dir.path().join("web/tls")).expect("mkdir");
    write_server_pem(&dir.path().join("web"), &pki);
    let hash = bcrypt::hash(password, 4).expect("bcrypt");
    let web = dir.path().join("web").join("web-config.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: tls/server.crt\n  key_file: tls/server.key\nbasic_auth_users:\n  prometheus: '{hash}'\nhttp_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"
        ),
    )
    .expect("write web config");
    Setup { dir, web, pki }
}

fn write_server_pem(web_dir: &Path, pki: &Pki) {
    // Written to a temp name and renamed, as a Secret update would be: never half a file.
    for (name, text) in [
        ("server.crt", &pki.server_cert_pem),
        ("server.key", &pki.server_key_pem),
    ] {
        let tmp = web_dir.join("tls").join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).expect("write pem");
        std::fs::rename(&tmp, web_dir.join("tls").join(name)).expect("rename pem");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_basic_auth_protects_metrics_but_not_probes() {
    let s = setup("correct horse");
    let agent = Agent::start(agent_config(s.dir.path(), Some(s.web.clone())), Vec::new())
        .await
        .expect("agent starts with the web config");
    let addr = agent.addr;
    let tls = client_config(&s.pki.ca_der);

    let no_creds = https_get(addr, &tls, "/metrics", None)
        .await
        .expect("https");
    assert_eq!(no_creds.status, 401, "{no_creds:?}");
    assert!(
        no_creds
            .head
            .to_ascii_lowercase()
            .contains("www-authenticate: basic realm=\"litellm-sentinel\""),
        "{no_creds:?}"
    );
    assert!(!no_creds.body.contains("litellm_sentinel_build_info"));
    assert!(
        no_creds
            .head
            .to_ascii_lowercase()
            .contains("x-content-type-options: nosniff"),
        "configured headers are on every answer: {no_creds:?}"
    );

    for wrong in [
        basic("prometheus", "wrong horse"),
        basic("nobody", "correct horse"),
        "Basic !!!not-base64==".to_string(),
        // Valid base64 of a user name that is not UTF-8.
        format!("Basic {}", {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(b"\xffprometheus:correct horse")
        }),
        "Bearer correct horse".to_string(),
    ] {
        let a = https_get(addr, &tls, "/metrics", Some(wrong.clone()))
            .await
            .expect("https");
        assert_eq!(a.status, 401, "{wrong}: {a:?}");
    }

    let good = basic("prometheus", "correct horse");
    for _ in 0..2 {
        // The second time is answered from the verification cache.
        let ok = https_get(addr, &tls, "/metrics", Some(good.clone()))
            .await
            .expect("https");
        assert_eq!(ok.status, 200, "{ok:?}");
        assert!(ok.body.contains("litellm_sentinel_build_info"), "{ok:?}");
    }
    let pods = https_get(addr, &tls, "/api/v1/pods", None)
        .await
        .expect("https");
    assert_eq!(pods.status, 401, "the pod API needs credentials too");
    let unknown = https_get(addr, &tls, "/metrics/../healthz", None)
        .await
        .expect("https");
    assert_eq!(unknown.status, 401, "only the exact probe paths are exempt");

    // The kubelet's probes need no credentials.
    let health = https_get(addr, &tls, "/healthz", None)
        .await
        .expect("https");
    assert_eq!(health.status, 200, "{health:?}");
    for probe in ["/readyz", "/gate"] {
        let a = https_get(addr, &tls, probe, None).await.expect("https");
        assert_ne!(a.status, 401, "{probe}: {a:?}");
    }

    // Plain HTTP to the TLS port gets no metrics, only a hint to use https.
    let plain = tokio::task::spawn_blocking(move || plain_http_get(addr, "/metrics"))
        .await
        .expect("join");
    let (status, body) = plain.expect("an answer to plain HTTP");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("use https://"), "{body}");
    // A client that does not trust the certificate cannot connect.
    let stranger = client_config(&make_pki("some other CA").ca_der);
    assert!(https_get(addr, &stranger, "/healthz", None).await.is_err());
    // The server survived both failed handshakes.
    let health = https_get(addr, &tls, "/healthz", None)
        .await
        .expect("https");
    assert_eq!(health.status, 200);

    // An idle keep-alive connection does not hold up shutdown.
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let mut idle = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("handshake");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).await.expect("response");
    assert_eq!(&first, b"HTTP/1.1 200");
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), agent.shutdown())
        .await
        .expect("shutdown within the 5 s budget");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_served_without_a_restart() {
    let s = setup("pw");
    let agent = Agent::start(agent_config(s.dir.path(), Some(s.web.clone())), Vec::new())
        .await
        .expect("agent");
    let addr = agent.addr;
    let old = client_config(&s.pki.ca_der);
    assert_eq!(
        https_get(addr, &old, "/healthz", None)
            .await
            .expect("https")
            .status,
        200
    );

    let rotated = make_pki("rotated CA");
    write_server_pem(s.web.parent().expect("dir"), &rotated);
    let new = client_config(&rotated.ca_der);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(a) = https_get(addr, &new, "/healthz", None).await {
            assert_eq!(a.status, 200);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rotated certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        https_get(addr, &old, "/healthz", None).await.is_err(),
        "old CA no longer matches"
    );
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_web_config_the_server_stays_plain_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(agent_config(dir.path(), None), Vec::new())
        .await
        .expect("agent");
    let addr = agent.addr;
    let (status, body) = tokio::task::spawn_blocking(move || plain_http_get(addr, "/metrics"))
        .await
        .expect("join")
        .expect("plain http");
    assert_eq!(status, 200);
    assert!(body.contains("litellm_sentinel_build_info"));
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_requires_a_client_certificate_from_the_client_ca() {
    let s = setup("pw");
    let web_dir = s.web.parent().expect("dir").to_path_buf();
    // The client CA signs the client's certificate; the server CA stays separate.
    let client_ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "client CA");
    let client_ca = ca_params.self_signed(&client_ca_key).expect("client CA");
    std::fs::write(web_dir.join("tls/client-ca.crt"), client_ca.pem()).expect("write");
    let issuer = Issuer::new(ca_params, client_ca_key);
    let client_key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "prometheus");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = params.signed_by(&client_key, &issuer).expect("client cert");
    std::fs::write(
        &s.web,
        "tls_server_config:\n  cert_file: tls/server.crt\n  key_file: tls/server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: tls/client-ca.crt\n",
    )
    .expect("write web config");

    let agent = Agent::start(agent_config(s.dir.path(), Some(s.web.clone())), Vec::new())
        .await
        .expect("agent");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(s.pki.ca_der.clone()).expect("root");
    let with_cert = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![client_cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(client_key.serialize_der().into()),
        )
        .expect("client auth"),
    );
    let ok = https_get(agent.addr, &with_cert, "/metrics", None)
        .await
        .expect("client certificate accepted");
    assert_eq!(ok.status, 200, "no basic auth configured: {ok:?}");
    let without = client_config(&s.pki.ca_der);
    assert!(
        https_get(agent.addr, &without, "/healthz", None)
            .await
            .is_err(),
        "no client certificate, no connection"
    );
    agent.shutdown().await;
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    overrides: Overrides,
}

#[test]
fn the_flag_is_validated_at_load() {
    let s = setup("pw");
    let cli = Cli::try_parse_from([
        "litellm-sentinel",
        "--web.config.file",
        s.web.to_str().expect("utf-8 path"),
    ])
    .expect("flag parses");
    assert_eq!(
        cli.overrides.web_config_file.as_deref(),
        Some(s.web.as_path())
    );
    let cfg = Settings::load(None, &cli.overrides).expect("a good web config validates");
    assert_eq!(cfg.raw().web_config_file.as_deref(), Some(s.web.as_path()));

    // A key file that is not a key is caught before the server starts, naming the key.
    std::fs::write(
        s.web.parent().expect("dir").join("tls/server.key"),
        "\u{1b}[0mnot a key\n",
    )
    .expect("write");
    let e = Settings::load(None, &cli.overrides)
        .expect_err("bad key")
        .to_string();
    assert!(
        e.contains("web_config_file") && e.contains("key_file"),
        "{e}"
    );
}
