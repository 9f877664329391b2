//! The identity provider the tests run: a JWKS and a discovery document
//! served on 127.0.0.1, with keys generated here, and hit counters.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};
use tollgate::auth::oidc::MIN_REFETCH_INTERVAL;
use tollgate::auth::{OidcError, OidcVerifier, Principal};
use tollgate::config::OidcConfig;
use tollgate::provider::HttpClient;

pub const ISSUER: &str = "https://login.example.test/realms/acme";
pub const AUDIENCE: &str = "tollgate";

/// A key the identity provider signs with, and its public JWK.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Value,
}

impl SigningKey {
    pub fn es256(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        // An uncompressed point: 0x04, then x and y.
        let point = pair.public_key().as_ref();
        SigningKey {
            kid: kid.into(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({
                "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                "x": b64(&point[1..33]), "y": b64(&point[33..65]),
            }),
        }
    }

    /// RSA key `which` (0 or 1) of the two this test binary generates once.
    pub fn rs256(kid: &str, which: usize) -> Self {
        static KEYS: OnceLock<Vec<rsa::RsaPrivateKey>> = OnceLock::new();
        let keys = KEYS.get_or_init(|| {
            (0..2)
                .map(|_| rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap())
                .collect()
        });
        let key = &keys[which];
        SigningKey {
            kid: kid.into(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_der(key.to_pkcs1_der().unwrap().as_bytes()),
            jwk: json!({
                "kty": "RSA", "use": "sig", "kid": kid,
                "n": b64(&key.n().to_bytes_be()), "e": b64(&key.e().to_bytes_be()),
            }),
        }
    }

    /// The same key under another `kid`.
    pub fn with_kid(&self, kid: &str) -> Self {
        let mut key = self.clone();
        key.kid = kid.into();
        key.jwk["kid"] = kid.into();
        key
    }

    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }

    pub fn sign_without_kid(&self, claims: &Value) -> String {
        jsonwebtoken::encode(&Header::new(self.alg), claims, &self.encoding).unwrap()
    }
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Valid claims for the test issuer and audience, with `extra` merged in
/// (a `null` removes a claim).
pub fn claims(extra: Value) -> Value {
    let mut c = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "user-1",
        "iat": now(), "exp": now() + 600,
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

/// The identity provider: a JWKS, a discovery document, and counters.
pub struct Idp {
    pub addr: SocketAddr,
    pub jwks: Mutex<Vec<Value>>,
    pub up: AtomicBool,
    pub jwks_hits: AtomicUsize,
    pub discovery_hits: AtomicUsize,
}

impl Idp {
    pub async fn start(keys: &[&SigningKey]) -> Arc<Idp> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let idp = Arc::new(Idp {
            addr: listener.local_addr().unwrap(),
            jwks: Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect()),
            up: AtomicBool::new(true),
            jwks_hits: AtomicUsize::new(0),
            discovery_hits: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/jwks", get(jwks))
            .route("/.well-known/openid-configuration", get(discovery))
            .with_state(idp.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        idp
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn publish(&self, keys: &[&SigningKey]) {
        *self.jwks.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    pub fn hits(&self) -> usize {
        self.jwks_hits.load(Ordering::SeqCst)
    }

    /// `[auth.oidc]` with an explicit `jwks_url`.
    pub fn config(&self) -> OidcConfig {
        oidc_config(Some(format!("{}/jwks", self.base())))
    }

    pub fn verifier(&self) -> OidcVerifier {
        OidcVerifier::new(&self.config(), HttpClient::new()).unwrap()
    }
}

async fn jwks(State(idp): State<Arc<Idp>>) -> Response {
    idp.jwks_hits.fetch_add(1, Ordering::SeqCst);
    if !idp.up.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let keys = idp.jwks.lock().unwrap().clone();
    json_response(json!({ "keys": keys }))
}

async fn discovery(State(idp): State<Arc<Idp>>) -> Response {
    idp.discovery_hits.fetch_add(1, Ordering::SeqCst);
    json_response(json!({
        "issuer": idp.base(),
        "jwks_uri": format!("{}/jwks", idp.base()),
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
    }))
}

fn json_response(body: Value) -> Response {
    let content_type = [(axum::http::header::CONTENT_TYPE, "application/json")];
    (content_type, body.to_string()).into_response()
}

/// Moves tokio's clock past the refetch interval without sleeping.
pub async fn after_refetch_interval() {
    advance(MIN_REFETCH_INTERVAL + Duration::from_secs(1)).await;
}

/// Moves tokio's clock (which the key cache reads) by `by`. The clock is
/// paused only for the jump: paused while a fetch waits on the socket, it
/// would jump to the fetch's timeout instead.
pub async fn advance(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

/// Verifies `token`, and checks that a refusal is a 401 whose message does
/// not repeat the token.
pub async fn verify(v: &OidcVerifier, token: &str) -> Result<Principal, OidcError> {
    let result = v.verify(token).await;
    if let Err(e) = &result {
        assert!(token.is_empty() || !e.to_string().contains(token), "{e}");
        if *e != OidcError::KeysUnavailable {
            assert_eq!(e.status(), StatusCode::UNAUTHORIZED, "{e}");
        }
    }
    result
}

/// `[auth.oidc]` for the test issuer and audience, claims left at their
/// defaults.
pub fn oidc_config(jwks_url: Option<String>) -> OidcConfig {
    OidcConfig {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        jwks_url,
        leeway_secs: 60,
        user_claim: "sub".into(),
        team_claim: None,
        tags_claim: None,
        models_claim: None,
    }
}
