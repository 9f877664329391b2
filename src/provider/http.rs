//! The one pooled HTTP client every provider shares.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::error::{ErrorKind, GatewayError};

/// Largest upstream error or JSON body read, in bytes.
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;

/// A pooled hyper client: rustls TLS, keep-alive, HTTP/2 where the server
/// offers it through ALPN. Cloning shares the pool.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient {
    /// A client with the default pool settings.
    pub fn new() -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        http.set_keepalive(Some(Duration::from_secs(60)));
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
        .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .build(https);
        HttpClient { inner }
    }

    /// Sends `req`; a failure to connect or a broken connection is a
    /// retryable [`ErrorKind::Connect`] whose message names the host and
    /// port (never the whole URL, which may carry credentials) and the cause.
    pub async fn send(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, GatewayError> {
        // A `Uri` clone shares its bytes; the `host:port` text is only
        // made when there is an error to name it in.
        let uri = req.uri().clone();
        self.inner.request(req).await.map_err(|e| {
            let peer = peer(&uri);
            let msg = if e.is_connect() {
                format!("could not connect to {peer}: {}", root_cause(&e))
            } else {
                format!("the connection to {peer} failed: {}", root_cause(&e))
            };
            GatewayError::new(ErrorKind::Connect, msg).with_source(e)
        })
    }
}

/// `host:port` of `uri`, the port defaulted from the scheme.
fn peer(uri: &http::Uri) -> String {
    let host = uri.host().unwrap_or("(no host)");
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("http") => 80,
        _ => 443,
    });
    format!("{host}:{port}")
}

/// The innermost error of a chain: the operator's clue (`Connection
/// refused`, a DNS failure), where the outer ones only say "client error".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Reads a whole upstream body (bounded).
pub async fn read_body(body: Incoming) -> Result<Bytes, GatewayError> {
    Limited::new(body, MAX_UPSTREAM_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| {
            GatewayError::new(ErrorKind::Connect, "the provider's answer was cut off")
                .with_source(std::io::Error::other(e.to_string()))
        })
}
