//! What credential each request carried, and credentials that act like a
//! subscription at its limit or an expired token.
//!
//! Every request to an API route is recorded (`GET /mock/credentials`
//! lists them, `DELETE` forgets them), so a test can check which
//! credential reached which API; only the last [`KEPT`] are kept, so a
//! long benchmark run against the mock does not grow it. Before a request reaches its route, its
//! credential may answer for it: one ending in `~limit` gets a 429, one
//! ending in `~expired` a 401, in the API's error shape; an Anthropic
//! OAuth token (`Authorization: Bearer sk-ant-oat01-…`) needs
//! `anthropic-beta: oauth-2025-04-20`, as the real API does, and at its
//! limit answers as a subscription does (`anthropic-ratelimit-unified-*`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{json, Value};

use super::script::unix_now;
use super::stream::json_response;
use super::{bearer, Api, AppState, Ctx};

/// The prefix of an Anthropic OAuth token (a Claude subscription's).
const OAUTH_PREFIX: &str = "sk-ant-oat01-";

/// The beta an OAuth token needs.
const OAUTH_BETA: &str = "oauth-2025-04-20";

/// How long a credential at its `~limit` is told to wait.
const LIMIT_RESET_SECS: u64 = 3600;

/// How many of the latest requests' credentials are kept: far more than
/// a test sends, bounded for a benchmark.
const KEPT: usize = 1024;

/// The credentials received, in order, the last [`KEPT`] of them; clones
/// share them.
#[derive(Clone, Default)]
pub(super) struct CredentialLog(Arc<Mutex<VecDeque<Value>>>);

impl CredentialLog {
    fn push(&self, v: Value) {
        let mut log = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() == KEPT {
            log.pop_front();
        }
        log.push_back(v);
    }
}

/// `GET /mock/credentials`: `[{api, path, header, credential}, ...]`.
pub(super) async fn list(State(st): State<AppState>) -> Response {
    let all: Vec<Value> = st
        .credentials
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .cloned()
        .collect();
    json_response(StatusCode::OK, &Value::Array(all))
}

/// `DELETE /mock/credentials`: forgets what was received.
pub(super) async fn clear(State(st): State<AppState>) -> StatusCode {
    st.credentials
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
    StatusCode::NO_CONTENT
}

/// Which API a path (and headers) belong to, for the record and the error
/// shape; `None` for the mock's own routes.
fn api_of(path: &str, headers: &HeaderMap) -> Option<Api> {
    if path.starts_with("/mock/") {
        None
    } else if path.starts_with("/v1/messages")
        || (path == "/v1/models" && headers.contains_key("anthropic-version"))
    {
        Some(Api::Anthropic)
    } else if path.starts_with("/v1beta/") {
        Some(Api::Gemini)
    } else {
        Some(Api::OpenAi)
    }
}

/// The credentials a request carries: `(where, value)`; a bearer token
/// without its scheme.
fn carried(headers: &HeaderMap, query: Option<&str>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(v) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        let token = bearer(headers).unwrap_or(v);
        out.push(("authorization".to_string(), token.to_string()));
    }
    // `x-tollgate-key` is the gateway's own: recorded so that a test can
    // see one ever reach an upstream (none should).
    for name in ["x-api-key", "x-goog-api-key", "x-tollgate-key"] {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            out.push((name.to_string(), v.to_string()));
        }
    }
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        if let Some(k) = pair.strip_prefix("key=") {
            out.push(("query:key".to_string(), k.to_string()));
        }
    }
    out
}

/// Records the request's credentials, then lets a credential that says
/// so answer for it (see the [module docs](self)).
pub(super) async fn gate(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let uri = req.uri().clone();
    let Some(api) = api_of(uri.path(), req.headers()) else {
        return next.run(req).await;
    };
    let creds = carried(req.headers(), uri.query());
    if creds.is_empty() {
        st.credentials.push(json!({
            "api": api.label(), "path": uri.path(), "header": null, "credential": null,
        }));
    }
    for (header, credential) in &creds {
        st.credentials.push(json!({
            "api": api.label(), "path": uri.path(), "header": header, "credential": credential,
        }));
    }
    let ctx = Ctx::new(api, &uri);
    let oauth =
        api == Api::Anthropic && bearer(req.headers()).is_some_and(|t| t.starts_with(OAUTH_PREFIX));
    for (_, credential) in &creds {
        if credential.ends_with("~expired") {
            let msg = if oauth {
                "OAuth token has expired. Please obtain a new token or refresh your existing token."
            } else {
                "invalid x-api-key"
            };
            return ctx.error(StatusCode::UNAUTHORIZED, msg);
        }
    }
    if oauth {
        let betas = req
            .headers()
            .get_all("anthropic-beta")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|b| b.trim() == OAUTH_BETA);
        if !betas {
            return ctx.error(
                StatusCode::UNAUTHORIZED,
                "OAuth authentication is currently not supported.",
            );
        }
    }
    if creds.iter().any(|(_, c)| c.ends_with("~limit")) {
        let mut resp = ctx.error(
            StatusCode::TOO_MANY_REQUESTS,
            "This request would exceed your account's rate limit. Please try again later.",
        );
        let h = resp.headers_mut();
        h.insert("retry-after", HeaderValue::from(LIMIT_RESET_SECS));
        if oauth {
            h.insert(
                "anthropic-ratelimit-unified-status",
                HeaderValue::from_static("rejected"),
            );
            h.insert(
                "anthropic-ratelimit-unified-reset",
                HeaderValue::from(unix_now() + LIMIT_RESET_SECS),
            );
        }
        return resp;
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::*;

    #[test]
    fn only_the_latest_credentials_are_kept() {
        let log = credentials::CredentialLog::default();
        for i in 0..credentials::KEPT + 10 {
            log.push(serde_json::json!(i));
        }
        let kept = log.0.lock().unwrap();
        assert_eq!(kept.len(), credentials::KEPT);
        assert_eq!(kept.front(), Some(&serde_json::json!(10)));
    }

    async fn messages(mock: &MockUpstream, token: &str, beta: Option<&str>) -> reqwest::Response {
        let mut req = client()
            .post(format!("{}/v1/messages", mock.base_url()))
            .bearer_auth(token)
            .header("anthropic-version", "2023-06-01");
        if let Some(b) = beta {
            req = req.header("anthropic-beta", b);
        }
        req.body(r#"{"model":"claude","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#)
            .send()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn an_oauth_token_acts_as_a_subscription() {
        let mock = spawn().await.unwrap();
        let beta = Some("interleaved-thinking-2025-05-14,oauth-2025-04-20");
        let r = messages(&mock, "sk-ant-oat01-alice", beta).await;
        assert_eq!(r.status(), 200);

        let r = messages(&mock, "sk-ant-oat01-alice", None).await;
        assert_eq!(r.status(), 401, "an OAuth token needs the oauth beta");
        let v = json_of(&r.bytes().await.unwrap());
        assert_eq!(v["error"]["type"], "authentication_error");

        let r = messages(&mock, "sk-ant-oat01-alice~limit", beta).await;
        assert_eq!(r.status(), 429);
        assert_eq!(
            r.headers()["anthropic-ratelimit-unified-status"],
            "rejected"
        );
        assert_eq!(r.headers()["retry-after"], "3600");
        let reset: u64 = r.headers()["anthropic-ratelimit-unified-reset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let now = script::unix_now();
        assert!(
            (now + 3590..=now + 3600).contains(&reset),
            "{reset} vs {now}"
        );
        let v = json_of(&r.bytes().await.unwrap());
        assert_eq!(v["error"]["type"], "rate_limit_error");

        let r = messages(&mock, "sk-ant-oat01-alice~expired", beta).await;
        assert_eq!(r.status(), 401);
        let v = json_of(&r.bytes().await.unwrap());
        assert_eq!(v["error"]["type"], "authentication_error");
    }

    #[tokio::test]
    async fn every_credential_received_is_recorded_until_cleared() {
        let mock = spawn().await.unwrap();
        let base = mock.base_url();
        messages(&mock, "sk-ant-oat01-bob", Some("oauth-2025-04-20")).await;
        client()
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth("sk-openai-key~limit")
            .body(r#"{"model":"gpt-4o","messages":[]}"#)
            .send()
            .await
            .map(|r| assert_eq!(r.status(), 429))
            .unwrap();
        client()
            .post(format!(
                "{base}/v1beta/models/g:generateContent?key=gem-key"
            ))
            .body(r#"{"contents":[]}"#)
            .send()
            .await
            .unwrap();
        let got = client()
            .get(format!("{base}/mock/credentials"))
            .send()
            .await
            .unwrap();
        let got = json_of(&got.bytes().await.unwrap());
        assert_eq!(
            got,
            serde_json::json!([
                {"api": "anthropic", "path": "/v1/messages", "header": "authorization", "credential": "sk-ant-oat01-bob"},
                {"api": "openai", "path": "/v1/chat/completions", "header": "authorization", "credential": "sk-openai-key~limit"},
                {"api": "gemini", "path": "/v1beta/models/g:generateContent", "header": "query:key", "credential": "gem-key"},
            ])
        );
        let r = client()
            .delete(format!("{base}/mock/credentials"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        let got = client()
            .get(format!("{base}/mock/credentials"))
            .send()
            .await
            .unwrap();
        assert_eq!(json_of(&got.bytes().await.unwrap()), serde_json::json!([]));
    }
}
