//! The plumbing shared by the layers that admit a request before it is
//! sent and settle with its answer (budgets, rate limits): a policy
//! ([`Admit`]) decides, before the inner service is called, whether the
//! request goes and what it holds meanwhile (a [`Ticket`]: a reservation);
//! the ticket then sees the answer (to register on its
//! [`Settlement`](super::Settlement)) or the error (dropping it releases
//! what it holds).
//!
//! ```
//! use tollgate::usage::{Admit, Gate, Ticket};
//! use tollgate::{GatewayError, GatewayRequest, GatewayResponse, ResponseBody};
//! use tollgate::{Operation, WireFormat};
//! use tower::{service_fn, ServiceExt};
//!
//! /// Refuses streams; marks every other answer.
//! #[derive(Clone)]
//! struct NoStreams;
//! struct Mark;
//!
//! impl Admit for NoStreams {
//!     type Ticket = Mark;
//!     fn admit(&self, req: &GatewayRequest) -> Result<Option<Mark>, GatewayError> {
//!         match req.stream {
//!             true => Err(GatewayError::invalid_request("no streams here")),
//!             false => Ok(Some(Mark)),
//!         }
//!     }
//! }
//!
//! impl Ticket for Mark {
//!     fn on_response(self, resp: &mut GatewayResponse) {
//!         resp.meta.headers.insert("x-marked", http::HeaderValue::from_static("1"));
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let svc = Gate::new(
//!     service_fn(|_req: GatewayRequest| async {
//!         Ok::<_, GatewayError>(GatewayResponse::new(ResponseBody::TokenCount(1)))
//!     }),
//!     NoStreams,
//! );
//! let body = tollgate::json::RawObject::parse(br#"{"model":"m","messages":[]}"#).unwrap();
//! let req = GatewayRequest::new(WireFormat::OpenAiChat, Operation::Generate, body).unwrap();
//! let resp = svc.oneshot(req).await.unwrap();
//! assert_eq!(resp.meta.headers["x-marked"], "1");
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tower::Service;

use crate::error::GatewayError;
use crate::request::GatewayRequest;
use crate::response::GatewayResponse;

/// Decides, before a request is sent, whether it may go, and what it
/// holds until its answer: the policy of a [`Gate`].
pub trait Admit {
    /// What an admitted request carries to its answer.
    type Ticket: Ticket;

    /// Admits `req`, with a ticket or with nothing to settle (no limit
    /// applies), or refuses it with the error the client gets.
    fn admit(&self, req: &GatewayRequest) -> Result<Option<Self::Ticket>, GatewayError>;
}

/// What an admitted request holds until its answer: see [`Admit`].
/// Dropped unused (the caller went away first), it should release what
/// it holds.
pub trait Ticket {
    /// The inner service answered: mark the answer, and settle what the
    /// ticket holds now or on the answer's settlement.
    fn on_response(self, resp: &mut GatewayResponse);

    /// The inner service failed. Default: the error as it is, the ticket
    /// dropped (which releases what it holds).
    fn on_error(self, err: GatewayError) -> GatewayError
    where
        Self: Sized,
    {
        err
    }
}

impl<T: Ticket> Ticket for Box<T> {
    fn on_response(self, resp: &mut GatewayResponse) {
        (*self).on_response(resp);
    }

    fn on_error(self, err: GatewayError) -> GatewayError {
        (*self).on_error(err)
    }
}

/// Asks its policy `A` before calling the inner service `S`, and hands
/// the answer or the error to the ticket it gave; see the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct Gate<S, A> {
    inner: S,
    admit: A,
}

impl<S, A> Gate<S, A> {
    /// `inner`, behind `admit`.
    pub fn new(inner: S, admit: A) -> Self {
        Gate { inner, admit }
    }
}

impl<S, A> Service<GatewayRequest> for Gate<S, A>
where
    S: Service<GatewayRequest, Response = GatewayResponse, Error = GatewayError>,
    A: Admit,
{
    type Response = GatewayResponse;
    type Error = GatewayError;
    type Future = ResponseFuture<S::Future, A::Ticket>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), GatewayError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: GatewayRequest) -> Self::Future {
        let state = match self.admit.admit(&req) {
            Ok(ticket) => State::Admitted {
                fut: self.inner.call(req),
                ticket,
            },
            Err(err) => State::Refused { err: Some(err) },
        };
        ResponseFuture { state }
    }
}

pin_project! {
    /// The future of a [`Gate`]: the refusal, or the inner call and then
    /// the ticket's turn.
    pub struct ResponseFuture<F, T> {
        #[pin]
        state: State<F, T>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, T> {
        Admitted {
            #[pin]
            fut: F,
            ticket: Option<T>,
        },
        Refused {
            err: Option<GatewayError>,
        },
    }
}

impl<F, T> Future for ResponseFuture<F, T>
where
    F: Future<Output = Result<GatewayResponse, GatewayError>>,
    T: Ticket,
{
    type Output = Result<GatewayResponse, GatewayError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Refused { err } => {
                Poll::Ready(Err(err.take().expect("polled after completion")))
            }
            StateProj::Admitted { fut, ticket } => {
                let result = ready!(fut.poll(cx));
                let Some(ticket) = ticket.take() else {
                    return Poll::Ready(result);
                };
                Poll::Ready(match result {
                    Ok(mut resp) => {
                        ticket.on_response(&mut resp);
                        Ok(resp)
                    }
                    Err(err) => Err(ticket.on_error(err)),
                })
            }
        }
    }
}
