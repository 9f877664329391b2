//! A provider's own list of models, for the edge's `GET /v1/models`.
//!
//! Each kind asks its API's list endpoint with its own credentials:
//! OpenAI and OpenAI-compatible `GET {base_url}/models`, Anthropic
//! `GET /v1/models` (with `anthropic-version`), Gemini `GET /v1beta/models`
//! (only the models that `generateContent`).

use ::http::header::HeaderValue;
use ::http::{HeaderMap, Method, Request, StatusCode};
use bytes::Bytes;
use http_body_util::Full;
use serde_json::Value;

use super::gemini::path_segment;
use super::{HttpClient, KeyHeader, Upstream};
use crate::config::{ProviderConfig, ProviderKind};
use crate::error::GatewayError;

/// Pages followed at most (Anthropic and Gemini page their lists; a page
/// holds up to 1,000 models).
const MAX_PAGES: usize = 10;

/// Why a provider's model list could not be read. It carries no upstream
/// text, since an upstream may echo the credentials it was sent.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ListError {
    /// The upstream answered with a non-2xx status.
    #[error("the provider answered {0}")]
    Status(StatusCode),
    /// No connection, or it broke.
    #[error("{0}")]
    Unreachable(GatewayError),
    /// The configured key is not a valid header value.
    #[error("its key is not a valid header value")]
    BadKey,
    /// A 2xx body that is not the kind's list shape.
    #[error("the provider's answer is not a model list")]
    NotAList,
}

/// Reads one provider's model list, from the first of its deployments
/// that answers.
pub(crate) struct ModelLister {
    kind: ProviderKind,
    deployments: Vec<Upstream>,
}

impl ModelLister {
    /// The lister of provider `name`, one upstream per deployment.
    pub(crate) fn new(
        name: &str,
        config: &ProviderConfig,
        http: &HttpClient,
    ) -> Result<Self, GatewayError> {
        let deployments = config
            .deployment_configs()
            .iter()
            .map(|(d, _)| Upstream::new(name, d, http.clone()))
            .collect::<Result<_, _>>()?;
        Ok(ModelLister {
            kind: config.kind,
            deployments,
        })
    }

    /// The provider's model names, as its API spells them.
    pub(crate) async fn list(&self) -> Result<Vec<String>, ListError> {
        let mut last = ListError::NotAList;
        for up in &self.deployments {
            match list_one(up, self.kind).await {
                Ok(models) => return Ok(models),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

async fn list_one(up: &Upstream, kind: ProviderKind) -> Result<Vec<String>, ListError> {
    let mut headers = HeaderMap::new();
    let key = match kind {
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => KeyHeader::Bearer,
        ProviderKind::Anthropic => KeyHeader::Named("x-api-key"),
        ProviderKind::Gemini => KeyHeader::Named("x-goog-api-key"),
    };
    up.sign(&mut headers, None, key)
        .map_err(|_| ListError::BadKey)?;
    if kind == ProviderKind::Anthropic {
        headers.insert(
            "anthropic-version",
            HeaderValue::from_static(super::anthropic::DEFAULT_VERSION),
        );
    }
    let mut models = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let after = cursor.as_deref().map(path_segment);
        let url = match kind {
            ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => up.url("/models"),
            ProviderKind::Anthropic => match after {
                Some(a) => format!("{}?limit=1000&after_id={a}", up.url("/v1/models")),
                None => format!("{}?limit=1000", up.url("/v1/models")),
            },
            ProviderKind::Gemini => match after {
                Some(a) => format!("{}?pageSize=1000&pageToken={a}", up.url("/v1beta/models")),
                None => format!("{}?pageSize=1000", up.url("/v1beta/models")),
            },
        };
        let page = get_json(up, &url, headers.clone()).await?;
        cursor = read_page(kind, &page, &mut models)?;
        if cursor.is_none() {
            break;
        }
    }
    Ok(models)
}

/// Adds one page's model names to `models`; returns the next page's cursor.
fn read_page(
    kind: ProviderKind,
    page: &Value,
    models: &mut Vec<String>,
) -> Result<Option<String>, ListError> {
    let str_at = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    match kind {
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible | ProviderKind::Anthropic => {
            let data = page
                .get("data")
                .and_then(Value::as_array)
                .ok_or(ListError::NotAList)?;
            models.extend(data.iter().filter_map(|m| str_at(m, "id")));
            let more = kind == ProviderKind::Anthropic
                && page.get("has_more").and_then(Value::as_bool) == Some(true);
            Ok(more.then(|| str_at(page, "last_id")).flatten())
        }
        ProviderKind::Gemini => {
            let list = page
                .get("models")
                .and_then(Value::as_array)
                .ok_or(ListError::NotAList)?;
            for m in list {
                // Embedding and other models are listed too; only the ones
                // that generate can be called through the gateway.
                let generates = m
                    .get("supportedGenerationMethods")
                    .and_then(Value::as_array)
                    .is_none_or(|ms| ms.iter().any(|x| x == "generateContent"));
                if let (true, Some(name)) = (generates, str_at(m, "name")) {
                    let name = name.strip_prefix("models/").unwrap_or(&name);
                    models.push(name.to_string());
                }
            }
            Ok(str_at(page, "nextPageToken").filter(|t| !t.is_empty()))
        }
    }
}

/// GETs `url` with `headers` and the provider's own, and reads a 2xx JSON
/// answer.
async fn get_json(up: &Upstream, url: &str, headers: HeaderMap) -> Result<Value, ListError> {
    let mut builder = Request::builder().method(Method::GET).uri(url);
    let h = builder.headers_mut().expect("a fresh builder has headers");
    h.extend(headers);
    // As in `Upstream::post` (the configured credential headers are in
    // `headers`, from `Upstream::sign`).
    for (k, v) in &up.inner.headers {
        h.insert(k.clone(), v.clone());
    }
    let req = builder
        .body(Full::new(Bytes::new()))
        .map_err(|_| ListError::NotAList)?;
    let resp = up
        .inner
        .http
        .send(req)
        .await
        .map_err(ListError::Unreachable)?;
    if !resp.status().is_success() {
        return Err(ListError::Status(resp.status()));
    }
    let bytes = super::http::read_body(resp.into_body())
        .await
        .map_err(ListError::Unreachable)?;
    serde_json::from_slice(&bytes).map_err(|_| ListError::NotAList)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pages_are_read_in_each_kinds_shape() {
        let mut m = Vec::new();
        let next = read_page(
            ProviderKind::Anthropic,
            &json!({"data": [{"id": "a"}, {"id": "b"}], "has_more": true, "last_id": "b"}),
            &mut m,
        )
        .unwrap();
        assert_eq!(next.as_deref(), Some("b"));
        let next = read_page(
            ProviderKind::OpenAi,
            &json!({"object": "list", "data": [{"id": "c"}], "has_more": true, "last_id": "c"}),
            &mut m,
        )
        .unwrap();
        assert_eq!(next, None, "OpenAI's list has no pages");
        let next = read_page(
            ProviderKind::Gemini,
            &json!({"models": [
                {"name": "models/g", "supportedGenerationMethods": ["generateContent"]},
                {"name": "models/embed", "supportedGenerationMethods": ["embedContent"]},
                {"name": "models/h"},
            ], "nextPageToken": "t+1"}),
            &mut m,
        )
        .unwrap();
        assert_eq!(next.as_deref(), Some("t+1"));
        assert_eq!(m, ["a", "b", "c", "g", "h"]);
        assert!(matches!(
            read_page(ProviderKind::Gemini, &json!({"data": []}), &mut m),
            Err(ListError::NotAList)
        ));
    }
}
