//! The gateway's one error type.
//!
//! Layers act on [`ErrorKind`] (is it retryable, does it change the route);
//! the edge renders it once, in the client's wire format, with
//! [`GatewayError::status`]. Messages never contain credentials: provider
//! errors are built from the upstream's body, never from our request.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

/// The longest wait an error can ask for (a day): no provider means more,
/// and a larger one would overflow the clock it is added to.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// What went wrong, as the layers need to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The client's request is malformed or invalid (400).
    InvalidRequest,
    /// Missing or wrong credentials (401).
    Authentication,
    /// Credentials are fine but not allowed (403).
    PermissionDenied,
    /// Unknown model or route (404).
    NotFound,
    /// The body is over the configured cap (413).
    PayloadTooLarge,
    /// The prompt does not fit the model's context window (400 upstream).
    ContextLengthExceeded,
    /// Rate limited (429); see [`GatewayError::retry_after`].
    RateLimited,
    /// A budget does not cover the request (402): rendered with type
    /// `insufficient_funds` in every format.
    InsufficientFunds,
    /// The provider is overloaded (Anthropic 529, 503).
    Overloaded,
    /// The provider answered with another 5xx.
    UpstreamServer,
    /// The provider answered with a 4xx not covered above.
    UpstreamClient,
    /// Could not connect to the provider, or the connection broke.
    Connect,
    /// A deadline passed.
    Timeout,
    /// The provider's answer could not be understood.
    BadUpstreamResponse,
    /// A bug or an impossible state on our side.
    Internal,
}

impl ErrorKind {
    /// Whether another attempt (same target later, or another target) may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited
                | ErrorKind::Overloaded
                | ErrorKind::UpstreamServer
                | ErrorKind::Connect
                | ErrorKind::Timeout
                | ErrorKind::BadUpstreamResponse
        )
    }
}

/// A fact about an error that changes what the routing layers do beyond
/// its [`ErrorKind`]. It is set where the error is made, because the
/// layers never read an error's `code` or message: a provider's own `code`
/// may say anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Cause {
    /// The request's total deadline passed: nothing more is tried, and no
    /// provider is to blame.
    DeadlinePassed,
    /// The gateway has no route for the requested model (not the
    /// provider's 404): the next model of the chain may have one.
    UnknownModel,
    /// The client's `only` / `ignore` leave no provider of the model: the
    /// next model of the chain may have one.
    NoAllowedProvider,
    /// A provider refused (401/403) a credential the client brought (BYOK
    /// or passed through), not the gateway's own: another candidate, with
    /// another credential, may serve.
    CredentialRejected,
}

/// What a provider's rate limit covers, as far as the answer tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LimitScope {
    /// One model on one key (OpenAI's, Anthropic's and Gemini's usual
    /// per-model limits).
    Model,
    /// Every model on one key (an account's quota, a subscription's
    /// limit).
    Key,
}

/// An error the gateway answers with.
#[derive(Clone)]
pub struct GatewayError {
    kind: ErrorKind,
    status: StatusCode,
    message: String,
    param: Option<String>,
    code: Option<String>,
    retry_after: Option<Duration>,
    cause: Option<Cause>,
    limit_scope: Option<LimitScope>,
    headers: Option<Box<HeaderMap>>,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl GatewayError {
    /// An error of `kind` with its usual status.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let status = match kind {
            ErrorKind::InvalidRequest | ErrorKind::ContextLengthExceeded => StatusCode::BAD_REQUEST,
            ErrorKind::Authentication => StatusCode::UNAUTHORIZED,
            ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::InsufficientFunds => StatusCode::PAYMENT_REQUIRED,
            ErrorKind::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::UpstreamServer | ErrorKind::BadUpstreamResponse | ErrorKind::Connect => {
                StatusCode::BAD_GATEWAY
            }
            ErrorKind::UpstreamClient => StatusCode::BAD_REQUEST,
            ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        GatewayError {
            kind,
            status,
            message: message.into(),
            param: None,
            code: None,
            retry_after: None,
            cause: None,
            limit_scope: None,
            headers: None,
            source: None,
        }
    }

    /// A 400 for a malformed or invalid request.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    /// A 400 naming the request field at fault.
    pub fn invalid_param(param: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message).with_param(param)
    }

    /// A 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// A 500 for a state that should not happen.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// A 502 for an upstream answer we cannot understand.
    pub fn bad_upstream(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadUpstreamResponse, message)
    }

    /// An error answered by a provider with `status`; the kind follows the status.
    ///
    /// A status that is not an error (a redirect, a 1xx, a 2xx read as a
    /// failure) is a bad upstream answer, a 502: passing a 3xx on would send
    /// the client a redirect with nowhere to go.
    pub fn from_upstream_status(status: StatusCode, message: impl Into<String>) -> Self {
        if !(status.is_client_error() || status.is_server_error()) {
            let message: String = message.into();
            if message.contains(status.as_str()) {
                return Self::bad_upstream(message);
            }
            return Self::bad_upstream(format!("provider answered {status}: {message}"));
        }
        let kind = match status.as_u16() {
            400 | 422 => ErrorKind::UpstreamClient,
            401 => ErrorKind::Authentication,
            403 => ErrorKind::PermissionDenied,
            404 => ErrorKind::NotFound,
            408 | 504 => ErrorKind::Timeout,
            413 => ErrorKind::PayloadTooLarge,
            429 => ErrorKind::RateLimited,
            503 | 529 => ErrorKind::Overloaded,
            s if s >= 500 => ErrorKind::UpstreamServer,
            _ => ErrorKind::UpstreamClient,
        };
        let mut err = Self::new(kind, message);
        err.status = status;
        err
    }

    /// Sets the HTTP status (the kind stays).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Replaces the message.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// Sets the kind (the status stays).
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// Names the request field at fault.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Sets a machine-readable code (OpenAI `code`).
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Sets how long to wait before retrying, at most [`MAX_RETRY_AFTER`]:
    /// routing adds it to the clock, which panics past its range, so every
    /// wait a provider names is capped here, in one place.
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after.min(MAX_RETRY_AFTER));
        self
    }

    /// Marks a fact the routing layers act on.
    pub fn with_cause(mut self, cause: Cause) -> Self {
        self.cause = Some(cause);
        self
    }

    /// Says what the rate limit that was hit covers (for a 429).
    pub fn with_limit_scope(mut self, scope: LimitScope) -> Self {
        self.limit_scope = Some(scope);
        self
    }

    /// Sets a response header the client gets with this error (the
    /// gateway's own `x-ratelimit-*`), replacing one of that name.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers
            .get_or_insert_with(Default::default)
            .insert(name, value);
        self
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The HTTP status to answer with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The request field at fault, if known.
    pub fn param(&self) -> Option<&str> {
        self.param.as_deref()
    }

    /// The machine-readable code, if any.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// How long the provider asked us to wait.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The fact the routing layers act on, if any.
    pub fn cause(&self) -> Option<Cause> {
        self.cause
    }

    /// What the rate limit that was hit covers, when the answer said.
    pub fn limit_scope(&self) -> Option<LimitScope> {
        self.limit_scope
    }

    /// The response headers set with [`GatewayError::with_header`].
    pub fn headers(&self) -> Option<&HeaderMap> {
        self.headers.as_deref()
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}

impl fmt::Debug for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayError")
            .field("kind", &self.kind)
            .field("status", &self.status.as_u16())
            .field("message", &self.message)
            .field("param", &self.param)
            .field("cause", &self.cause)
            .field("limit_scope", &self.limit_scope)
            .field("source", &self.source.as_ref().map(|s| s.to_string()))
            .finish()
    }
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for GatewayError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `upstream_error` fuzz target: an upstream's 357 (or
    /// 302) became the status of the client's error.
    #[test]
    fn an_upstream_status_that_is_no_error_is_a_502() {
        for code in [101, 204, 302, 357] {
            let status = StatusCode::from_u16(code).unwrap();
            let err = GatewayError::from_upstream_status(status, "moved");
            assert_eq!(err.status(), StatusCode::BAD_GATEWAY, "{code}");
            assert_eq!(err.kind(), ErrorKind::BadUpstreamResponse, "{code}");
            assert!(
                err.message().contains(&code.to_string()),
                "{}",
                err.message()
            );
        }
        let err = GatewayError::from_upstream_status(StatusCode::IM_A_TEAPOT, "tea");
        assert_eq!(err.status(), StatusCode::IM_A_TEAPOT);
    }
}
