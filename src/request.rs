//! The gateway request: what the edge decoded, shared cheaply by every
//! layer and every attempt.

use std::sync::{Arc, OnceLock};

use http::{Extensions, HeaderMap};

use crate::canonical::ChatRequest;
use crate::error::GatewayError;
use crate::format::{anthropic, openai_chat, responses, WireFormat};
use crate::json::RawObject;
use crate::routing::RoutingOptions;
use crate::usage::Estimate;

/// What the client asked the gateway to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Generate a reply (chat completions, responses, messages).
    Generate,
    /// Count the input tokens of a request (Anthropic `count_tokens`).
    CountTokens,
}

/// Where a request goes: one provider and the model name it knows.
///
/// Routing layers put a `Target` in the request's extensions; the provider
/// service reads it, and resolves the requested model itself when none is set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The configured provider's name.
    pub provider: Arc<str>,
    /// The model name as the provider knows it.
    pub model: Arc<str>,
}

/// Body fields that steer the gateway and are never sent upstream: the
/// Vercel AI Gateway's `providerOptions` and OpenRouter's `models` and
/// `provider` (see [`RoutingOptions`]).
pub const GATEWAY_FIELDS: &[&str] = &["providerOptions", "models", "provider"];

/// A request as the layers see it.
///
/// Cloning is cheap: the body is behind an `Arc`, and its canonical form is
/// decoded at most once, the first time a cross-format provider needs it.
#[derive(Debug, Clone)]
pub struct GatewayRequest {
    /// The wire format the client speaks (and will be answered in).
    pub format: WireFormat,
    /// What the client asked for.
    pub operation: Operation,
    /// The model the client asked for, as sent.
    pub model: String,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// The client's body, parsed once.
    pub body: Arc<RequestBody>,
    /// How the client asked to be routed (from the body).
    pub routing: Arc<RoutingOptions>,
    /// The client's request headers (shared: every attempt reads the same).
    pub headers: Arc<HeaderMap>,
    /// The client's query string, if any (providers pass on only the
    /// parameters their API defines).
    pub query: Option<String>,
    /// Typed values that layers hand to each other.
    pub extensions: Extensions,
}

/// The client's body: the top-level object with raw values, and its
/// canonical decoding and token estimate, each made on first use. Its
/// `Debug` names the fields, never their values (a body may carry BYOK
/// keys).
pub struct RequestBody {
    raw: RawObject,
    canonical: OnceLock<Result<ChatRequest, GatewayError>>,
    estimate: OnceLock<Estimate>,
}

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBody")
            .field("fields", &self.raw.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl RequestBody {
    /// Wraps a parsed body.
    pub fn new(raw: RawObject) -> Self {
        RequestBody {
            raw,
            canonical: OnceLock::new(),
            estimate: OnceLock::new(),
        }
    }

    /// The body's top-level fields.
    pub fn raw(&self) -> &RawObject {
        &self.raw
    }

    /// What the request will use, from its top-level fields: computed
    /// by the first layer that asks (budget, rate limit, cost sort,
    /// meter) and shared by the others and by every attempt.
    pub fn estimate(&self) -> Estimate {
        *self.estimate.get_or_init(|| Estimate::of(&self.raw))
    }
}

/// The options of a request that sets none, shared.
fn default_routing() -> Arc<RoutingOptions> {
    static DEFAULT: OnceLock<Arc<RoutingOptions>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| Arc::new(RoutingOptions::default()))
        .clone()
}

impl GatewayRequest {
    /// A request for `body` in `format`, reading `model` and `stream` from it.
    ///
    /// Validates what every path needs: a JSON object with a string `model`,
    /// a boolean `stream` when present, and the format's conversation field.
    pub fn new(
        format: WireFormat,
        operation: Operation,
        body: RawObject,
    ) -> Result<Self, GatewayError> {
        let model = match body.get_as::<serde_json::Value>("model")? {
            Some(serde_json::Value::String(m)) if !m.is_empty() => m,
            Some(serde_json::Value::String(_)) => {
                return Err(GatewayError::invalid_param(
                    "model",
                    "`model` must not be empty",
                ))
            }
            Some(_) => {
                return Err(GatewayError::invalid_param(
                    "model",
                    "`model` must be a string",
                ))
            }
            // OpenRouter lets `models` alone name the models, first first.
            None => match body
                .get_as::<Vec<serde_json::Value>>("models")
                .ok()
                .flatten()
            {
                Some(models) if models.first().is_some_and(|m| m.is_string()) => {
                    models[0].as_str().unwrap_or_default().to_string()
                }
                _ => {
                    return Err(GatewayError::invalid_param(
                        "model",
                        "missing required field `model`",
                    ))
                }
            },
        };
        let stream = match body.get_as::<serde_json::Value>("stream")? {
            None => false,
            Some(serde_json::Value::Bool(b)) => b,
            Some(_) => {
                return Err(GatewayError::invalid_param(
                    "stream",
                    "`stream` must be a boolean",
                ))
            }
        };
        let conversation = match format {
            WireFormat::OpenAiChat | WireFormat::Anthropic => "messages",
            WireFormat::OpenAiResponses => "input",
            WireFormat::Gemini => "contents",
        };
        match body.get(conversation).map(crate::json::kind_of) {
            None => {
                return Err(GatewayError::invalid_param(
                    conversation,
                    format!("missing required field `{conversation}`"),
                ))
            }
            Some(crate::json::JsonKind::Array) => {}
            Some(crate::json::JsonKind::String) if format == WireFormat::OpenAiResponses => {}
            Some(_) => {
                return Err(GatewayError::invalid_param(
                    conversation,
                    format!("`{conversation}` must be an array"),
                ))
            }
        }
        let stream = stream && operation == Operation::Generate;
        let routing = if GATEWAY_FIELDS.iter().any(|f| body.get(f).is_some()) {
            Arc::new(RoutingOptions::from_body(&body)?)
        } else {
            default_routing()
        };
        Ok(GatewayRequest {
            format,
            operation,
            model,
            stream,
            routing,
            body: Arc::new(RequestBody::new(body)),
            headers: Arc::default(),
            query: None,
            extensions: Extensions::new(),
        })
    }

    /// The request in canonical form, decoded on first use and shared by
    /// every later attempt.
    pub fn canonical(&self) -> Result<&ChatRequest, GatewayError> {
        self.body
            .canonical
            .get_or_init(|| {
                let raw = &self.body.raw;
                match self.format {
                    WireFormat::OpenAiChat => openai_chat::decode_request(raw),
                    WireFormat::OpenAiResponses => responses::decode_request(raw),
                    WireFormat::Anthropic => anthropic::decode_request(raw),
                    WireFormat::Gemini => Err(GatewayError::invalid_request(
                        "Gemini is not a client format",
                    )),
                }
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The body re-encoded for a provider that speaks the client's own
    /// format: every field as sent, `model` replaced, gateway-only fields
    /// left out, and `extra` fields set (raw JSON text).
    pub fn passthrough_body(&self, model: &str, extra: &[(&str, &str)]) -> Vec<u8> {
        let quoted = crate::json::quote(model);
        let mut replace: Vec<(&str, &str)> = Vec::with_capacity(extra.len() + 1);
        replace.push(("model", &quoted));
        replace.extend_from_slice(extra);
        self.body.raw.write_with(&replace, GATEWAY_FIELDS)
    }
}
