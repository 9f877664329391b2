//! `GET /v1/models`: every model a client may ask for (see [`ModelList`]).

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::json_response;
use crate::config::Config;
use crate::provider::{HttpClient, ModelLister};

/// How long an upstream's model list is waited for before it is left out.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after a failed upstream list it is asked for again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);

type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// What `GET /v1/models` lists, in this order:
///
/// 1. the configured models and aliases (`[models]`, prefix aliases like
///    `"claude-*"` left out), each owned by its first target's provider;
/// 2. each provider's `models` list, as `provider/model`;
/// 3. for every provider without a `models` list, the models its upstream
///    lists (OpenAI and OpenAI-compatible `GET {base_url}/models`, Anthropic
///    `GET /v1/models`, Gemini `GET /v1beta/models`), as `provider/model`.
///
/// An upstream's list is asked for on the first listing and kept for
/// [`ttl`](ModelList::ttl). One that fails, or does not answer within 10
/// seconds, is logged (the provider and why, never its key), left out (or
/// its last good list kept), and asked again a minute later: a listing
/// never fails because of a provider.
///
/// The answer is in OpenAI's list shape, or Anthropic's when the request
/// carries `anthropic-version`.
#[derive(Clone)]
pub struct ModelList {
    configured: Vec<(String, String)>,
    upstreams: Arc<[UpstreamModels]>,
    ttl: Duration,
    now: Clock,
}

/// One provider's upstream list and its cache.
struct UpstreamModels {
    provider: String,
    lister: ModelLister,
    cache: tokio::sync::Mutex<Option<Cached>>,
}

struct Cached {
    at: Instant,
    models: Arc<[String]>,
    failed: bool,
}

impl Default for ModelList {
    fn default() -> Self {
        ModelList::new(Vec::new())
    }
}

impl fmt::Debug for ModelList {
    // By hand: the listers hold provider keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelList")
            .field("configured", &self.configured)
            .field(
                "upstreams",
                &self
                    .upstreams
                    .iter()
                    .map(|u| &u.provider)
                    .collect::<Vec<_>>(),
            )
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl ModelList {
    /// A fixed list of `(id, owner)`, asking no upstream.
    pub fn new(models: Vec<(String, String)>) -> Self {
        ModelList {
            configured: models,
            upstreams: Arc::from(Vec::new()),
            ttl: Duration::from_secs(600),
            now: Arc::new(Instant::now),
        }
    }

    /// The models of a gateway config: its models and aliases, its
    /// providers' `models` lists, and the upstream lists of the providers
    /// without one.
    pub fn from_config(config: &Config) -> Self {
        let mut configured = Vec::new();
        for (name, m) in &config.models {
            if name.ends_with('*') {
                continue;
            }
            let owner = m.targets()[0].split('/').next().unwrap_or_default();
            configured.push((name.clone(), owner.to_string()));
        }
        let mut upstreams = Vec::new();
        let mut http = None;
        for (pname, p) in &config.providers {
            for m in &p.models {
                configured.push((format!("{pname}/{m}"), pname.clone()));
            }
            if !p.models.is_empty() {
                continue;
            }
            let http = http.get_or_insert_with(HttpClient::new);
            match ModelLister::new(pname, p, http) {
                Ok(lister) => upstreams.push(UpstreamModels {
                    provider: pname.clone(),
                    lister,
                    cache: tokio::sync::Mutex::new(None),
                }),
                Err(e) => {
                    tracing::warn!(provider = %pname, error = %e, "cannot list the provider's models")
                }
            }
        }
        ModelList {
            upstreams: upstreams.into(),
            ..ModelList::new(configured)
        }
    }

    /// How long an upstream's list is kept before it is asked again.
    /// Default 10 minutes.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    #[cfg(test)]
    fn clock(mut self, now: impl Fn() -> Instant + Send + Sync + 'static) -> Self {
        self.now = Arc::new(now);
        self
    }

    /// Every model, `(id, owner)`, each once, in the order above.
    pub async fn models(&self) -> Vec<(String, String)> {
        let lists = futures_util::future::join_all(
            self.upstreams
                .iter()
                .map(|u| u.models(self.ttl, self.now.as_ref())),
        )
        .await;
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let upstream = self.upstreams.iter().zip(&lists).flat_map(|(u, models)| {
            models
                .iter()
                .map(|m| (format!("{}/{m}", u.provider), u.provider.clone()))
        });
        for (id, owner) in self.configured.iter().cloned().chain(upstream) {
            if seen.insert(id.clone()) {
                out.push((id, owner));
            }
        }
        out
    }
}

impl UpstreamModels {
    /// The cached list, asked for again when it is older than `ttl` (or
    /// than [`RETRY_AFTER_FAILURE`] after a failure). The lock is held
    /// while asking, so that concurrent listings ask once.
    async fn models(
        &self,
        ttl: Duration,
        now: &(dyn Fn() -> Instant + Send + Sync),
    ) -> Arc<[String]> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref() {
            let keep = if c.failed { RETRY_AFTER_FAILURE } else { ttl };
            if now().saturating_duration_since(c.at) < keep {
                return c.models.clone();
            }
        }
        // Through a failure, the last list read is kept.
        let last = || {
            cache
                .as_ref()
                .map_or_else(|| Arc::from(Vec::new()), |c| c.models.clone())
        };
        let fetched = tokio::time::timeout(FETCH_TIMEOUT, self.lister.list()).await;
        let (models, failed) = match fetched {
            Ok(Ok(models)) => (Arc::from(models), false),
            Ok(Err(e)) => {
                tracing::warn!(provider = %self.provider, error = %e, "cannot list the provider's models: left out of /v1/models");
                (last(), true)
            }
            Err(_) => {
                tracing::warn!(provider = %self.provider, timeout_secs = FETCH_TIMEOUT.as_secs(), "the provider's model list timed out: left out of /v1/models");
                (last(), true)
            }
        };
        *cache = Some(Cached {
            at: now(),
            models: models.clone(),
            failed,
        });
        models
    }
}

/// The `GET /v1/models` answer, in Anthropic's shape when the request
/// carries `anthropic-version`, else OpenAI's.
pub(super) async fn list(
    list: &ModelList,
    headers: &HeaderMap,
    principal: Option<&crate::auth::Principal>,
) -> Response {
    let mut models = list.models().await;
    // A key limited to some models sees only those.
    if let Some(p) = principal.filter(|p| !p.models.is_any()) {
        models.retain(|(id, _)| p.models.allows(id));
    }
    let body = if headers.contains_key("anthropic-version") {
        let data: Vec<_> = models
            .iter()
            .map(|(id, _)| {
                serde_json::json!({"type": "model", "id": id, "display_name": id, "created_at": "1970-01-01T00:00:00Z"})
            })
            .collect();
        serde_json::json!({
            "data": data,
            "has_more": false,
            "first_id": models.first().map(|m| &m.0),
            "last_id": models.last().map(|m| &m.0),
        })
    } else {
        let data: Vec<_> = models
            .iter()
            .map(|(id, owner)| serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": owner}))
            .collect();
        serde_json::json!({"object": "list", "data": data})
    };
    json_response(StatusCode::OK, body.to_string().into_bytes())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    use axum::body::Body;
    use tower::ServiceExt;

    use super::*;

    /// The mock upstream, counting the model-list requests it gets.
    async fn counting_mock() -> (String, Arc<AtomicUsize>) {
        let lists = Arc::new(AtomicUsize::new(0));
        let counter = lists.clone();
        let app = crate::mock::router().layer(tower::util::MapRequestLayer::new(
            move |req: axum::extract::Request| {
                if req.uri().path().ends_with("/models") {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                req
            },
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, lists)
    }

    fn config(base: &str) -> Config {
        Config::parse(
            &format!(
                r#"
[providers.oa]
kind = "openai"
base_url = "{base}/v1"
api_key = "sk-oa"
[providers.an]
kind = "anthropic"
base_url = "{base}"
api_key = "sk-an"
[providers.ge]
kind = "gemini"
base_url = "{base}"
api_key = "ge-key"
[providers.co]
kind = "openai-compatible"
base_url = "{base}/v1"
models = ["only-this"]
[providers.broken]
kind = "openai"
base_url = "{base}/nowhere/v1"
api_key = "sk-broken"
[providers.down]
kind = "openai"
base_url = "http://127.0.0.1:1/v1"
api_key = "sk-down"
[models]
fast = "oa/gpt-4o-mini"
"claude-*" = "an/*"
"#
            ),
            &|_| None,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn lists_configured_and_upstream_models_and_caches_them() {
        let (base, lists) = counting_mock().await;
        let start = Instant::now();
        let secs = Arc::new(AtomicU64::new(0));
        let clock = secs.clone();
        let list = ModelList::from_config(&config(&base))
            .clock(move || start + Duration::from_secs(clock.load(Ordering::SeqCst)));

        let models = list.models().await;
        let ids: Vec<&str> = models.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "fast",
                "co/only-this",
                "an/claude-sonnet-4-5",
                "an/claude-haiku-4-5",
                "ge/gemini-2.5-flash",
                "ge/gemini-2.5-pro",
                "oa/gpt-4o",
                "oa/gpt-4o-mini",
                "oa/gpt-4.1",
                "oa/o3-mini",
            ],
            "the broken and unreachable providers are left out"
        );
        assert!(models.contains(&("fast".into(), "oa".into())));
        assert!(models.contains(&("ge/gemini-2.5-pro".into(), "ge".into())));
        // an, broken, ge and oa were asked; co has its own list.
        assert_eq!(lists.load(Ordering::SeqCst), 4);

        secs.store(59, Ordering::SeqCst);
        assert_eq!(list.models().await, models);
        assert_eq!(lists.load(Ordering::SeqCst), 4, "served from the cache");

        secs.store(61, Ordering::SeqCst);
        assert_eq!(list.models().await, models);
        assert_eq!(
            lists.load(Ordering::SeqCst),
            5,
            "only the failure is asked again"
        );

        secs.store(601, Ordering::SeqCst);
        assert_eq!(list.models().await, models);
        assert_eq!(
            lists.load(Ordering::SeqCst),
            9,
            "every list is asked again after the TTL"
        );
    }

    #[tokio::test]
    async fn the_gateway_answers_in_the_clients_list_shape() {
        let (base, _) = counting_mock().await;
        let app = crate::server::gateway(&config(&base)).unwrap();
        let get = |anthropic: bool| {
            let mut req = axum::http::Request::get("/v1/models");
            if anthropic {
                req = req.header("anthropic-version", "2023-06-01");
            }
            app.clone().oneshot(req.body(Body::empty()).unwrap())
        };
        let read = |resp: Response| async move {
            assert_eq!(resp.status(), StatusCode::OK);
            let bytes = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .unwrap()
                .to_bytes();
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
        };
        let openai = read(get(false).await.unwrap()).await;
        assert_eq!(openai["object"], "list");
        assert_eq!(openai["data"][2]["id"], "an/claude-sonnet-4-5");
        assert_eq!(openai["data"][2]["owned_by"], "an");
        assert_eq!(openai["data"][2]["object"], "model");
        let anthropic = read(get(true).await.unwrap()).await;
        assert_eq!(anthropic["data"][4]["id"], "ge/gemini-2.5-flash");
        assert_eq!(anthropic["data"][4]["type"], "model");
        assert_eq!(anthropic["has_more"], false);
        assert_eq!(anthropic["first_id"], "fast");
        assert_eq!(anthropic["last_id"], "oa/o3-mini");
        let text = format!("{openai}{anthropic}");
        for key in ["sk-oa", "sk-an", "ge-key", "sk-broken", "sk-down"] {
            assert!(!text.contains(key), "{key} in {text}");
        }
    }
}
