//! TLS accept: the handshake of an accepted connection within
//! [`TLS_HANDSHAKE_TIMEOUT`], a plain-HTTP request sent to the TLS port
//! answered with a 400 that says to use https, failures counted and logged
//! at debug level, rate-limited.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::reload::WebRuntime;
use super::TLS_HANDSHAKE_TIMEOUT;

/// At most one debug line about failed TLS handshakes per this interval.
const HANDSHAKE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What a plain HTTP client gets from the TLS port.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server: use https://\n";

/// Failed handshakes: a counter and the rate limit of their log line.
#[derive(Default)]
pub(super) struct HandshakeStats {
    failures: AtomicU64,
    log: Mutex<HandshakeLog>,
}

#[derive(Default)]
struct HandshakeLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl HandshakeStats {
    fn note(&self, peer: SocketAddr, reason: &str) {
        let total = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let mut log = crate::sync::lock(&self.log);
        if log
            .last
            .is_some_and(|t| t.elapsed() < HANDSHAKE_LOG_INTERVAL)
        {
            log.suppressed += 1;
            return;
        }
        tracing::debug!(
            %peer,
            reason,
            suppressed_since_last = log.suppressed,
            total,
            "TLS handshake failed"
        );
        log.last = Some(Instant::now());
        log.suppressed = 0;
    }
}

impl WebRuntime {
    /// Completes the TLS handshake of an accepted connection, within
    /// [`TLS_HANDSHAKE_TIMEOUT`]. A plain HTTP request gets a 400 that says to
    /// use https. Failures are counted and logged at debug level, rate-limited;
    /// `None` means the connection is done.
    pub(crate) async fn accept_tls(
        self: &Arc<Self>,
        tcp: TcpStream,
        peer: SocketAddr,
    ) -> Option<TlsStream<TcpStream>> {
        let acceptor = self.refresh().await.acceptor.clone()?;
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake(acceptor, tcp)).await {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(reason)) => {
                self.handshakes.note(peer, &reason);
                None
            }
            Err(_) => {
                self.handshakes.note(peer, "handshake timed out");
                None
            }
        }
    }
}

/// The handshake, after a look at the first byte: 0x16 starts a TLS
/// handshake record, an ASCII capital an HTTP method. Errors are the reason
/// (for the debug log).
async fn handshake(acceptor: TlsAcceptor, tcp: TcpStream) -> Result<TlsStream<TcpStream>, String> {
    let mut first = [0u8; 1];
    match tcp.peek(&mut first).await {
        Ok(1) if first[0].is_ascii_uppercase() => {
            answer_plain_http(tcp).await;
            return Err("plain HTTP request on the TLS port".to_string());
        }
        Ok(0) => return Err("connection closed before the handshake".to_string()),
        Err(e) => return Err(e.to_string()),
        Ok(_) => {}
    }
    acceptor.accept(tcp).await.map_err(|e| e.to_string())
}

/// Answers a plain HTTP request with a 400 naming https, then closes.
async fn answer_plain_http(mut tcp: TcpStream) {
    // Best effort: the client may already be gone, and the connection is
    // counted as a failed handshake either way.
    let _ = tcp.write_all(PLAIN_HTTP_ANSWER).await;
    let _ = tcp.shutdown().await;
    // Drain the unread request (bounded): closing a socket with
    // unread bytes sends a reset, which can hide the answer.
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        match tokio::time::timeout(Duration::from_millis(500), tcp.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => continue,
            _ => break,
        }
    }
}
