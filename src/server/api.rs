//! `/api/v1/pods`: the query (filters, keyset pagination with an opaque
//! `continue` token), the page of pod views, and the 400 that names the bad
//! parameter.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::AppState;
use crate::model::PodRef;
use crate::timeline::SharedTracker;

/// The API's view of the timeline lives beside it; these paths stay for its users.
pub use crate::timeline::view::{pod_views, PodView, StartView};

/// Page size of `/api/v1/pods` when the request gives no `limit`.
pub const DEFAULT_PAGE_SIZE: usize = 500;
/// Largest `limit` of `/api/v1/pods`: a page stays a few MB at most.
pub const MAX_PAGE_SIZE: usize = 1000;

/// Which pod names a `pod=` filter selects.
#[derive(Clone, Debug, PartialEq)]
pub enum PodMatch {
    /// `pod=litellm-7d9f-x2k4q`: that pod.
    Exact(String),
    /// `pod=litellm-7d9f*`: every pod whose name starts with it.
    Prefix(String),
}

/// The parameters of `/api/v1/pods`:
/// `namespace=` (exact), `pod=` (exact, or a prefix ending in `*`),
/// `limit=` (1..=[`MAX_PAGE_SIZE`], default [`DEFAULT_PAGE_SIZE`]) and
/// `continue=` (the token of the previous page). Pages are keyset pages in
/// (namespace, pod) order: a pod added or removed between two requests
/// neither shifts nor repeats the others.
#[derive(Clone, Debug, PartialEq)]
pub struct PodsQuery {
    pub namespace: Option<String>,
    pub pod: Option<PodMatch>,
    pub limit: usize,
    /// The last pod of the previous page.
    pub after: Option<PodRef>,
}

impl Default for PodsQuery {
    fn default() -> Self {
        PodsQuery {
            namespace: None,
            pod: None,
            limit: DEFAULT_PAGE_SIZE,
            after: None,
        }
    }
}

impl PodsQuery {
    /// Parses the query pairs; the error says which parameter is wrong and why.
    pub fn parse(pairs: &[(String, String)]) -> Result<PodsQuery, String> {
        let mut q = PodsQuery::default();
        let mut seen = std::collections::HashSet::new();
        for (k, v) in pairs {
            if !seen.insert(k.as_str()) {
                return Err(format!("parameter `{k}` is given more than once"));
            }
            match k.as_str() {
                "namespace" => q.namespace = Some(v.clone()),
                "pod" => {
                    q.pod = Some(match v.strip_suffix('*') {
                        Some(prefix) if !prefix.contains('*') => PodMatch::Prefix(prefix.into()),
                        None if !v.is_empty() => PodMatch::Exact(v.clone()),
                        _ => {
                            return Err(
                                "`pod` must be a pod name or a name prefix ending in `*`".into()
                            )
                        }
                    })
                }
                "limit" => {
                    q.limit = v
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                        .ok_or_else(|| {
                            format!("`limit` must be an integer from 1 to {MAX_PAGE_SIZE}")
                        })?
                }
                "continue" => {
                    q.after = Some(decode_token(v).ok_or(
                        "`continue` is not a token this API returned (copy it from the previous page's `continue`)",
                    )?)
                }
                other => {
                    return Err(format!(
                        "unknown parameter `{other}` (known: namespace, pod, limit, continue)"
                    ))
                }
            }
        }
        Ok(q)
    }

    fn selects(&self, pod: &PodRef) -> bool {
        self.namespace.as_ref().is_none_or(|n| *n == pod.namespace)
            && match &self.pod {
                None => true,
                Some(PodMatch::Exact(n)) => *n == pod.pod,
                Some(PodMatch::Prefix(p)) => pod.pod.starts_with(p.as_str()),
            }
    }
}

/// The opaque `continue` token: the page's last pod, hex-encoded.
fn encode_token(pod: &PodRef) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(2 + 2 * (pod.namespace.len() + pod.pod.len() + 1));
    s.push_str("p1");
    for b in pod.namespace.bytes().chain([b'/']).chain(pod.pod.bytes()) {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn decode_token(token: &str) -> Option<PodRef> {
    let hex = token.strip_prefix("p1")?;
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    let text = String::from_utf8(bytes).ok()?;
    // A namespace never contains `/`: the first one separates.
    let (ns, pod) = text.split_once('/')?;
    Some(PodRef::new(ns, pod))
}

/// One page of the tracked pods that `q` selects, in (namespace, pod) order.
pub fn pod_page(tracker: &SharedTracker, q: &PodsQuery) -> PodsAnswer {
    let t = tracker.lock();
    let mut keys: Vec<&PodRef> = t.pods().map(|(k, _)| k).filter(|k| q.selects(k)).collect();
    keys.sort_unstable();
    let total = keys.len();
    let from = q
        .after
        .as_ref()
        .map_or(0, |a| keys.partition_point(|k| *k <= a));
    let page = &keys[from..(from + q.limit).min(total)];
    let more = from + page.len() < total;
    PodsAnswer {
        pods: page
            .iter()
            .filter_map(|k| t.pod(k).map(|p| PodView::new(k, p)))
            .collect(),
        total,
        continue_token: page.last().filter(|_| more).map(|k| encode_token(k)),
    }
}

/// The `/api/v1/pods` answer.
#[derive(Default, Serialize)]
pub struct PodsAnswer {
    pub pods: Vec<PodView>,
    /// Pods the filter selects, on every page together.
    pub total: usize,
    /// Present when more pods follow: pass it as `continue=` for the next page.
    #[serde(rename = "continue", skip_serializing_if = "Option::is_none")]
    pub continue_token: Option<String>,
}

/// `GET /api/v1/pods`: a page of pod views, or 400 with the reason.
pub(super) async fn pods(
    State(s): State<AppState>,
    query: Result<
        axum::extract::Query<Vec<(String, String)>>,
        axum::extract::rejection::QueryRejection,
    >,
) -> Response {
    let parsed = match query {
        Ok(axum::extract::Query(pairs)) => PodsQuery::parse(&pairs),
        Err(e) => Err(format!("cannot read the query string: {}", e.body_text())),
    };
    match parsed {
        Ok(q) => {
            let mut answer = pod_page(&s.tracker, &q);
            crate::timeline::view::annotate(&mut answer.pods, &s.gates);
            Json(answer).into_response()
        }
        Err(error) => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": error })),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        for pod in [
            PodRef::new("ns", "litellm-0"),
            PodRef::new("", "file-stem"),
            PodRef::new("a", "b/c"),
        ] {
            assert_eq!(decode_token(&encode_token(&pod)), Some(pod));
        }
        assert_eq!(decode_token("p1"), None);
        assert_eq!(decode_token("6e732f70"), None, "no version prefix");
    }
}
