//! [`AuthLayer`]: checks every request's credential before its body is
//! read, and puts the [`Principal`] in its extensions.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use axum::body::Body;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::authenticator::{AuthFuture, Authenticator, Check};
use super::Principal;
use crate::error::GatewayError;

/// Paths answered without a credential: health checks.
const PUBLIC_PATHS: &[&str] = &["/health", "/"];

/// Builds [`Auth`] services; see the [module docs](super).
#[derive(Clone)]
pub struct AuthLayer {
    auth: Authenticator,
    public: Arc<[Arc<str>]>,
}

impl AuthLayer {
    /// Checks requests with `auth`; `/health` and `/` stay open.
    pub fn new(auth: Authenticator) -> Self {
        AuthLayer {
            auth,
            public: PUBLIC_PATHS.iter().map(|p| Arc::from(*p)).collect(),
        }
    }

    /// Paths answered without a credential (exact matches). Default
    /// `/health` and `/`.
    pub fn public_paths<I, S>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.public = paths.into_iter().map(|p| Arc::from(p.as_ref())).collect();
        self
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            auth: self.auth.clone(),
            public: self.public.clone(),
        }
    }
}

/// Checks each request's credential, then calls the inner service with
/// a [`Principal`] in the request's extensions; a request that fails is
/// answered with a 401 (or 503 when the key store is down) in the wire
/// format of its path. A request that already carries a [`Principal`]
/// (from an `Auth` layer further out) passes as it is.
#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    auth: Authenticator,
    public: Arc<[Arc<str>]>,
}

impl<S, B> Service<Request<B>> for Auth<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> ResponseFuture<S, B> {
        // A layer further out already decided who this is (only code sets
        // extensions, never a client): a second check would put an
        // anonymous principal over it, or refuse a request it let in.
        if self.public.iter().any(|p| **p == *req.uri().path())
            || req.extensions().get::<Principal>().is_some()
        {
            return ResponseFuture::inner(self.inner.call(req));
        }
        match self.auth.check(req.headers_mut()) {
            Check::Done(Ok(principal)) => {
                req.extensions_mut().insert(principal);
                ResponseFuture::inner(self.inner.call(req))
            }
            Check::Done(Err(e)) => ResponseFuture::reject(&req, &e),
            Check::Pending(check) => {
                // Clone-and-swap: the ready service goes with the request.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture {
                    state: State::Checking {
                        check,
                        rest: Some((inner, req)),
                    },
                }
            }
        }
    }
}

pin_project! {
    /// The future of [`Auth`].
    pub struct ResponseFuture<S: Service<Request<B>>, B> {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S: Service<Request<B>>, B> {
        Checking {
            check: AuthFuture<'static>,
            rest: Option<(S, Request<B>)>,
        },
        Inner {
            #[pin]
            fut: S::Future,
        },
        Rejected {
            resp: Option<Response<Body>>,
        },
    }
}

impl<S: Service<Request<B>>, B> ResponseFuture<S, B> {
    fn inner(fut: S::Future) -> Self {
        ResponseFuture {
            state: State::Inner { fut },
        }
    }

    fn reject(req: &Request<B>, err: &GatewayError) -> Self {
        ResponseFuture {
            state: State::Rejected {
                resp: Some(rejection(req, err)),
            },
        }
    }
}

/// The answer to a request that did not authenticate, in the format of
/// the API its path belongs to.
fn rejection<B>(req: &Request<B>, err: &GatewayError) -> Response<Body> {
    // The reason is the client's message, which never quotes a credential.
    tracing::info!(
        path = %req.uri().path(),
        status = err.status().as_u16(),
        reason = %err.message(),
        "refused"
    );
    let format = crate::edge::format_of(req.uri().path(), req.headers());
    crate::edge::error_response(format, err, &crate::edge::new_request_id())
}

impl<S, B> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Output = Result<Response<Body>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Inner { fut } => return fut.poll(cx),
                StateProj::Rejected { resp } => {
                    return Poll::Ready(Ok(resp.take().expect("polled after completion")))
                }
                StateProj::Checking { check, rest } => {
                    let result: Result<Principal, GatewayError> = ready!(check.as_mut().poll(cx));
                    let (mut inner, mut req) = rest.take().expect("polled after completion");
                    let next = match result {
                        Ok(principal) => {
                            req.extensions_mut().insert(principal);
                            State::Inner {
                                fut: inner.call(req),
                            }
                        }
                        Err(e) => State::Rejected {
                            resp: Some(rejection(&req, &e)),
                        },
                    };
                    this.state.set(next);
                }
            }
        }
    }
}
