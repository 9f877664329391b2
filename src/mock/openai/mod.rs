//! The OpenAI routes: Chat Completions, Responses and the model list.

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde_json::{json, Value};

use super::script::{plan_tool_calls, Directives, ToolCall, ToolDef};
use super::stream::json_response;
use super::{bearer, parse_object, prelude, Api, AppState, Ctx};

/// An error in OpenAI's shape: `{"error": {message, type, param, code}}`.
pub(super) fn error(status: StatusCode, message: &str, param: Option<&str>) -> Response {
    let (ty, code) = match status.as_u16() {
        401 => ("invalid_request_error", json!("invalid_api_key")),
        404 => ("invalid_request_error", json!("model_not_found")),
        429 => ("requests", json!("rate_limit_exceeded")),
        s if s >= 500 => ("server_error", Value::Null),
        _ => ("invalid_request_error", Value::Null),
    };
    let body = json!({"error": {
        "message": message,
        "type": ty,
        "param": param,
        "code": code,
    }});
    json_response(status, &body)
}

/// A parsed and authorized OpenAI request, or the response to send instead.
pub(super) struct Request {
    ctx: Ctx,
    body: Value,
    model: String,
    d: Directives,
}

pub(super) async fn accept(
    st: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    raw: &[u8],
) -> Result<Request, Response> {
    let mut ctx = Ctx::new(Api::OpenAi, uri);
    if bearer(headers).is_none() {
        return Err(ctx.error(
            StatusCode::UNAUTHORIZED,
            "You didn't provide an API key. You need to provide your API key in an \
             Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        ));
    }
    let body = match parse_object(raw) {
        Ok(b) => b,
        Err(msg) => return Err(ctx.error(StatusCode::BAD_REQUEST, &msg)),
    };
    let Some(full) = body
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return Err(ctx.finish(error(
            StatusCode::BAD_REQUEST,
            "you must provide a model parameter",
            Some("model"),
        )));
    };
    ctx.model = Some(full.clone());
    let (model, d) = match Directives::from_request(&full, uri, headers) {
        Ok((m, d)) => (m.to_string(), d),
        Err(msg) => return Err(ctx.error(StatusCode::BAD_REQUEST, &msg)),
    };
    ctx.set_leak(&d, headers);
    if let Some(resp) = prelude(Api::OpenAi, &d, &st.shutdown).await {
        return Err(ctx.finish(resp));
    }
    Ok(Request {
        ctx,
        body,
        model,
        d,
    })
}

/// The planned tool calls, or a 400 naming the problem.
pub(super) fn tool_calls_or_400(
    req: &Request,
    tools: &[ToolDef],
) -> Result<Vec<ToolCall>, Box<Response>> {
    plan_tool_calls(&req.d, tools)
        .map_err(|msg| Box::new(req.ctx.error(StatusCode::BAD_REQUEST, &msg)))
}

pub(super) const SSE: &str = "text/event-stream; charset=utf-8";

mod chat;
mod responses;
pub(super) use chat::chat;
pub(super) use responses::responses;

/// `GET /v1/models`: OpenAI's list, or Anthropic's when the request carries
/// `anthropic-version`.
pub(super) async fn models(uri: Uri, headers: HeaderMap) -> Response {
    if headers.contains_key("anthropic-version") {
        return super::anthropic::models(&uri, &headers);
    }
    let ctx = Ctx::new(Api::OpenAi, &uri);
    if bearer(&headers).is_none() {
        return ctx.error(StatusCode::UNAUTHORIZED, "You didn't provide an API key.");
    }
    let data: Vec<Value> = ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "o3-mini"]
        .iter()
        .map(
            |id| json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "mock"}),
        )
        .collect();
    ctx.finish(json_response(
        StatusCode::OK,
        &json!({"object": "list", "data": data}),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{spawn, MockUpstream};
    use serde_json::{json, Value};

    async fn post(mock: &MockUpstream, path: &str, body: &Value) -> reqwest::Response {
        client()
            .post(format!("{}{path}", mock.base_url()))
            .bearer_auth("sk-test")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn auth_and_bad_json_errors() {
        let mock = spawn().await.unwrap();
        let r = client()
            .post(format!("{}/v1/chat/completions", mock.base_url()))
            .body(r#"{"model":"gpt-4o","messages":[]}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let v = json_of(&r.bytes().await.unwrap());
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "invalid_api_key");
        let r = client()
            .post(format!("{}/v1/responses", mock.base_url()))
            .bearer_auth("k")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let v = json_of(&r.bytes().await.unwrap());
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["message"].as_str().unwrap().contains("JSON"));
        let r = post(&mock, "/v1/chat/completions", &json!({"messages": []})).await;
        assert_eq!(r.status(), 400);
        assert_eq!(
            json_of(&r.bytes().await.unwrap())["error"]["param"],
            "model"
        );
    }

    #[tokio::test]
    async fn status_and_retry_after() {
        let mock = spawn().await.unwrap();
        let body = json!({"model": "gpt-4o~status=429~retry-after=2", "messages": []});
        let r = post(&mock, "/v1/chat/completions", &body).await;
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "2");
        let v = json_of(&r.bytes().await.unwrap());
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        let r = client()
            .post(format!("{}/v1/responses", mock.base_url()))
            .bearer_auth("k")
            .header("x-mock", "status=503")
            .body(r#"{"model":"gpt-4o","input":"x"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(
            json_of(&r.bytes().await.unwrap())["error"]["type"],
            "server_error"
        );
    }

    #[tokio::test]
    async fn models_list() {
        let mock = spawn().await.unwrap();
        let r = client()
            .get(format!("{}/v1/models", mock.base_url()))
            .bearer_auth("k")
            .send()
            .await
            .unwrap();
        let v = json_of(&r.bytes().await.unwrap());
        assert_eq!(v["object"], "list");
        assert_eq!(v["data"][0]["object"], "model");
        let r = client()
            .get(format!("{}/v1/models", mock.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
}
