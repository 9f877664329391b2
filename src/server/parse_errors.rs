//! A JSON body for the answers hyper writes on its own.
//!
//! When HTTP/1 parsing fails (a malformed request line or header, a URI or
//! a header section over hyper's limits), hyper answers 400, 414 or 431
//! itself, with an empty body, before any service sees a request; it offers
//! no hook to change that answer. These heads are recognisable: the
//! gateway's own 4xx always carry a JSON body, so a 400/414/431 head
//! with `content-length: 0` is hyper's. [`ParseErrorBodies`] wraps the
//! connection's I/O and writes such a head with a JSON error body instead.
//! The body is readable by both OpenAI and Anthropic SDKs, since nothing
//! tells which one sent bytes that are not HTTP.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pin_project! {
    /// `io`, with hyper's empty 400/414/431 answers given a JSON body.
    pub(super) struct ParseErrorBodies<T> {
        #[pin]
        io: T,
        // The replacement being written, how much of it is out, and how
        // many of hyper's bytes it stands for.
        replacing: Option<(Bytes, usize, usize)>,
    }
}

impl<T> ParseErrorBodies<T> {
    pub(super) fn new(io: T) -> Self {
        ParseErrorBodies {
            io,
            replacing: None,
        }
    }
}

/// The answer to write instead of `head`, if `head` is hyper's own.
fn replacement(head: &[u8]) -> Option<Bytes> {
    let (status, message) = if head.starts_with(b"HTTP/1.1 400 ") {
        ("400 Bad Request", "the request is not valid HTTP")
    } else if head.starts_with(b"HTTP/1.1 414 ") {
        ("414 URI Too Long", "the request URI is too long")
    } else if head.starts_with(b"HTTP/1.1 431 ") {
        (
            "431 Request Header Fields Too Large",
            "the request headers are too large",
        )
    } else {
        return None;
    };
    // Exactly one head, with no body: a response with a body, or bytes
    // that only start like a head, are left alone.
    let end = memchr::memmem::find(head, b"\r\n\r\n")?;
    if end + 4 != head.len()
        || memchr::memmem::find(&head[..end], b"\r\ncontent-length: 0\r\n").is_none()
    {
        return None;
    }
    let body = serde_json::json!({
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": message,
            "code": null,
            "param": null,
        },
    })
    .to_string();
    Some(Bytes::from(format!(
        "HTTP/1.1 {status}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )))
}

impl<T: AsyncWrite> ParseErrorBodies<T> {
    /// Writes the replacement out; ready with the length of the bytes it
    /// replaced, which hyper then counts as written.
    fn poll_replace(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut this = self.project();
        let Some((bytes, written, replaced)) = this.replacing.as_mut() else {
            unreachable!("only called while replacing")
        };
        while *written < bytes.len() {
            let n = ready!(this.io.as_mut().poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        let replaced = *replaced;
        *this.replacing = None;
        Poll::Ready(Ok(replaced))
    }
}

impl<T: AsyncRead> AsyncRead for ParseErrorBodies<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl<T: AsyncWrite> AsyncWrite for ParseErrorBodies<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.replacing.is_none() {
            match replacement(buf) {
                Some(bytes) => *self.as_mut().project().replacing = Some((bytes, 0, buf.len())),
                None => return self.project().io.poll_write(cx, buf),
            }
        }
        self.poll_replace(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.replacing.is_none() {
            let mut nonempty = bufs.iter().filter(|b| !b.is_empty());
            let only = match (nonempty.next(), nonempty.next()) {
                (Some(first), None) => replacement(first).map(|r| (r, first.len())),
                _ => None,
            };
            match only {
                Some((bytes, len)) => *self.as_mut().project().replacing = Some((bytes, 0, len)),
                None => return self.project().io.poll_write_vectored(cx, bufs),
            }
        }
        self.poll_replace(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_empty_heads_are_replaced() {
        let hyper_400 = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: Thu, 03 Dec 2026 12:00:00 GMT\r\n\r\n";
        let out = replacement(hyper_400).expect("replaced");
        let text = std::str::from_utf8(&out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "invalid_request_error");

        // The gateway's own 400, with its body, and a 400 head followed by
        // anything, pass untouched.
        let own = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 20\r\n\r\n";
        assert!(replacement(own).is_none());
        let mut with_more = hyper_400.to_vec();
        with_more.extend_from_slice(b"x");
        assert!(replacement(&with_more).is_none());
        assert!(replacement(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").is_none());
    }
}
