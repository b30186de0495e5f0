//! The axum middleware of [`WebRuntime::protect`]: basic auth (except on
//! [`AUTH_EXEMPT_PATHS`]) and the configured response headers.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;

use super::auth::AuthOutcome;
use super::reload::WebRuntime;
use super::{AUTH_EXEMPT_PATHS, REALM};

impl WebRuntime {
    /// Adds basic auth (except on [`AUTH_EXEMPT_PATHS`]) and the configured
    /// response headers in front of `router`.
    pub(crate) fn protect(self: &Arc<Self>, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(self.clone(), guard))
    }
}

/// The middleware of [`WebRuntime::protect`].
async fn guard(State(rt): State<Arc<WebRuntime>>, req: Request, next: Next) -> Response {
    let active = rt.refresh().await;
    let exempt = AUTH_EXEMPT_PATHS.contains(&req.uri().path());
    let outcome = if exempt {
        AuthOutcome::Allowed
    } else {
        rt.auth
            .check(&active, req.headers().get(AUTHORIZATION))
            .await
    };
    let mut response = match outcome {
        AuthOutcome::Allowed => next.run(req).await,
        AuthOutcome::Denied => {
            let mut r = (StatusCode::UNAUTHORIZED, "Unauthorized\n").into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("Basic realm=\"{REALM}\"")) {
                r.headers_mut().insert(WWW_AUTHENTICATE, v);
            }
            r
        }
        AuthOutcome::Busy => (
            StatusCode::TOO_MANY_REQUESTS,
            "too many password checks in flight; retry later\n",
        )
            .into_response(),
    };
    for (name, value) in &active.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}
