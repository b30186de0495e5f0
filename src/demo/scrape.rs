//! The demo reads the agent the way Prometheus does: `GET /metrics` over
//! HTTP, parsed from the text exposition format. Nothing here looks inside
//! the agent's process, so the demo checks what a user would actually see.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::header::{HeaderValue, ACCEPT, ACCEPT_ENCODING};
use hyper::{Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Deadline of one scrape (connect, head and body).
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest `/metrics` body the demo reads (a few pods' series are ~50 KiB).
const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Why a scrape gave no samples.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScrapeError {
    #[error("GET {url} failed: {reason}")]
    Http { url: String, reason: String },
    #[error("GET {url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("/metrics line {line}: {what}")]
    Parse { line: usize, what: &'static str },
}

/// One sample of the exposition: `name{labels} value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of label `key`, if the sample has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A parsed `/metrics` page.
#[derive(Clone, Debug, Default)]
pub(crate) struct Exposition {
    pub samples: Vec<Sample>,
}

impl Exposition {
    /// Parses the Prometheus text format (version 0.0.4): comments and blank
    /// lines skipped, label values unescaped, an optional timestamp ignored.
    pub fn parse(text: &str) -> Result<Exposition, ScrapeError> {
        let mut samples = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |what| ScrapeError::Parse { line: i + 1, what };
            samples.push(parse_sample(line).map_err(err)?);
        }
        Ok(Exposition { samples })
    }

    /// Samples of metric `name` whose labels include every pair of `with`.
    pub fn select<'a>(
        &'a self,
        name: &'a str,
        with: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples
            .iter()
            .filter(move |s| s.name == name && with.iter().all(|(k, v)| s.label(k) == Some(*v)))
    }

    /// The value of the one sample of `name` matching `with` (`None`: absent).
    pub fn value(&self, name: &str, with: &[(&str, &str)]) -> Option<f64> {
        self.select(name, with).map(|s| s.value).next()
    }
}

fn parse_sample(line: &str) -> Result<Sample, &'static str> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_ascii_whitespace())
        .ok_or("no value")?;
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Err("bad metric name");
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = parse_labels(after, &mut labels)?;
    }
    let mut fields = rest.split_ascii_whitespace();
    let value = parse_value(fields.next().ok_or("no value")?)?;
    // An optional timestamp may follow; anything after it is an error.
    if let Some(ts) = fields.next() {
        ts.parse::<i64>().map_err(|_| "bad timestamp")?;
    }
    if fields.next().is_some() {
        return Err("text after the value");
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Parses `k="v",…}` and returns what follows the closing brace.
fn parse_labels<'a>(
    mut s: &'a str,
    out: &mut Vec<(String, String)>,
) -> Result<&'a str, &'static str> {
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return Ok(rest);
        }
        let eq = s.find('=').ok_or("label without '='")?;
        let key = s[..eq].trim();
        if key.is_empty() {
            return Err("empty label name");
        }
        let body = s[eq + 1..].trim_start();
        let mut chars = body.char_indices();
        if !matches!(chars.next(), Some((_, '"'))) {
            return Err("label value not quoted");
        }
        let mut value = String::new();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    end = Some(i + 1);
                    break;
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    _ => return Err("bad escape in a label value"),
                },
                c => value.push(c),
            }
        }
        let end = end.ok_or("unterminated label value")?;
        out.push((key.to_string(), value));
        s = body[end..].trim_start();
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else if !s.starts_with('}') {
            return Err("expected ',' or '}' after a label");
        }
    }
}

fn parse_value(s: &str) -> Result<f64, &'static str> {
    match s {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse::<f64>().map_err(|_| "bad value"),
    }
}

/// Where to reach an agent listening on `listen` (an unspecified address is
/// reached over loopback).
pub fn reachable(listen: SocketAddr) -> SocketAddr {
    if listen.ip().is_unspecified() {
        let ip = match listen.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        };
        SocketAddr::new(ip, listen.port())
    } else {
        listen
    }
}

/// `GET http://<addr>/metrics`, parsed.
pub async fn scrape(addr: SocketAddr) -> Result<Exposition, ScrapeError> {
    let url = format!("http://{}/metrics", reachable(addr));
    let http = |reason: String| ScrapeError::Http {
        url: url.clone(),
        reason,
    };
    let uri: Uri = url.parse().map_err(|e| http(format!("{e}")))?;
    let mut req = Request::get(uri)
        .body(Empty::<Bytes>::new())
        .map_err(|e| http(format!("{e}")))?;
    req.headers_mut()
        .insert(ACCEPT, HeaderValue::from_static("text/plain"));
    req.headers_mut()
        .insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let exchange = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| http(format!("{e}")))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(ScrapeError::Status {
                url: url.clone(),
                status: status.as_u16(),
            });
        }
        let body = Limited::new(resp.into_body(), BODY_LIMIT)
            .collect()
            .await
            .map_err(|e| http(format!("reading the body: {e}")))?
            .to_bytes();
        String::from_utf8(body.to_vec()).map_err(|_| http("the body is not UTF-8".into()))
    };
    let text = tokio::time::timeout(SCRAPE_TIMEOUT, exchange)
        .await
        .map_err(|_| http(format!("no answer within {SCRAPE_TIMEOUT:?}")))??;
    Exposition::parse(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_samples_labels_escapes_and_skips_comments() {
        let text = "# HELP litellm_sentinel_x_total A \"help\".\n\
# TYPE litellm_sentinel_x_total counter\n\
litellm_sentinel_x_total{namespace=\"llm\",pod=\"a\\\"b\\\\c\\nd\",operation=\"budget_lookup\"} 7\n\
\n\
litellm_sentinel_gap_bucket{namespace=\"llm\",le=\"+Inf\"} 3 1700000000000\n\
litellm_sentinel_pods_tracked 2.5\n\
up{a=\"1\",} +Inf\n";
        let e = Exposition::parse(text).unwrap();
        assert_eq!(e.samples.len(), 4);
        let s = &e.samples[0];
        assert_eq!(s.label("pod"), Some("a\"b\\c\nd"));
        assert_eq!(s.value, 7.0);
        assert_eq!(
            e.value(
                "litellm_sentinel_x_total",
                &[("operation", "budget_lookup")]
            ),
            Some(7.0)
        );
        assert_eq!(
            e.value("litellm_sentinel_x_total", &[("operation", "other")]),
            None
        );
        assert_eq!(
            e.value("litellm_sentinel_gap_bucket", &[("le", "+Inf")]),
            Some(3.0)
        );
        assert_eq!(e.value("litellm_sentinel_pods_tracked", &[]), Some(2.5));
        assert_eq!(e.value("up", &[("a", "1")]), Some(f64::INFINITY));
    }

    #[test]
    fn malformed_lines_are_errors_with_their_line_number() {
        for (text, what) in [
            ("m{a=\"1\" 2\n", "expected ',' or '}' after a label"),
            ("m{a=1} 2\n", "label value not quoted"),
            ("m{a=\"1} 2\n", "unterminated label value"),
            ("m 2 x\n", "bad timestamp"),
            ("m two\n", "bad value"),
            ("m\n", "no value"),
            ("m{a=\"\\t\"} 1\n", "bad escape in a label value"),
        ] {
            match Exposition::parse(&format!("ok 1\n{text}")) {
                Err(ScrapeError::Parse { line: 2, what: w }) => assert_eq!(w, what, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_unspecified_listen_address_is_reached_over_loopback() {
        let a: SocketAddr = "0.0.0.0:9464".parse().unwrap();
        assert_eq!(reachable(a), "127.0.0.1:9464".parse().unwrap());
        let b: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(reachable(b), b);
    }
}
