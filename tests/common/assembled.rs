//! The gateway as `tollgate serve` assembles it, in-process: the test
//! config's providers (plus what a test adds: `[auth]`, `[prices]`,
//! `[[budgets]]`), the store's keys and budgets, and a real ledger on a
//! temporary SQLite store, behind `server::assemble`.

use std::sync::Arc;

use axum::Router;
use serde_json::Value;
use tollgate::budget::Budgets;
use tollgate::config::{AuthMode, Config};
use tollgate::server::{Control, Layers};
use tollgate::store::{GroupBy, KeyStore, LedgerStore, ReportQuery, ReportRow, SqliteStore};
use tollgate::usage::{Ledger, Metering, Nanos};

use super::{config_text, Stack};

/// A running gateway with its store: what it recorded can be read back.
pub struct Assembled {
    pub stack: Stack,
    pub config: Config,
    pub store: SqliteStore,
    pub ledger: Ledger,
    pub budgets: Budgets,
    _dir: tempfile::TempDir,
}

impl Assembled {
    /// `server::assemble` on `extra` (TOML added to the test config),
    /// as the binary does it.
    pub async fn start(extra: &str) -> Assembled {
        Self::start_with(extra, |config, auth, control| {
            tollgate::server::assemble(config, Layers::Default, auth, control)
                .expect("the gateway assembles")
        })
        .await
    }

    /// The same setup (config, store, ledger, budgets, authenticator),
    /// with the router built by `build` from it.
    pub async fn start_with(
        extra: &str,
        build: impl FnOnce(&Config, Option<tollgate::auth::Authenticator>, Control) -> Router,
    ) -> Assembled {
        let mock = tollgate::mock::spawn().await.expect("mock starts");
        let text = config_text(&mock.base_url(), extra);
        let config = Config::parse(&text, &|_| None).expect("test config parses");
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("tollgate.db")).unwrap();
        let ledger = Ledger::open(Arc::new(store.clone())).unwrap();
        let budgets = Budgets::new(config.budget_specs()).with_store(Arc::new(store.clone()));
        budgets.refresh().await.unwrap();
        let keys = (config.auth.mode != AuthMode::None)
            .then(|| Arc::new(store.clone()) as Arc<dyn KeyStore>);
        let auth = tollgate::server::authenticator(&config, keys).unwrap();
        if let Some(auth) = &auth {
            auth.refresh().await.unwrap();
        }
        let control = Control {
            metering: Metering {
                ledger: Some(ledger.clone()),
                ..Metering::from_config(&config)
            },
            budgets: budgets.clone(),
        };
        let app = build(&config, auth, control);
        Assembled {
            stack: Stack::serve(mock, app).await,
            config,
            store,
            ledger,
            budgets,
            _dir: dir,
        }
    }

    /// POSTs `body` to `path` with `key` as its format's client sends it;
    /// the status, the headers and the body as JSON.
    pub async fn post(
        &self,
        path: &str,
        key: &str,
        body: &Value,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let resp = self
            .stack
            .post_with_key(path, key, body.to_string().into_bytes())
            .await;
        let headers = resp.headers().clone();
        let (status, v) = super::json(resp).await;
        (status, headers, v)
    }

    /// GETs `path` with `key` as a bearer token; the status and the JSON.
    pub async fn get(&self, path: &str, key: &str) -> (u16, Value) {
        let resp = self
            .stack
            .client
            .get(self.stack.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("gateway answers");
        super::json(resp).await
    }

    /// Every row the ledger holds (all keys), grouped by `group_by`, as
    /// the store sums them: what `/v1/report` answers.
    pub async fn report(&self, group_by: GroupBy) -> Vec<ReportRow> {
        self.ledger.flush().await;
        self.store
            .report(ReportQuery {
                start_ms: 0,
                end_ms: i64::MAX,
                group_by,
                key_id: None,
                key_method: None,
            })
            .await
            .unwrap()
    }

    /// The ledger's rows of team `team`: their total cost and how many.
    pub async fn spent_by_team(&self, team: &str) -> (Nanos, u64) {
        self.report(GroupBy::Team)
            .await
            .into_iter()
            .find(|r| r.group.as_deref() == Some(team))
            .map_or((Nanos::ZERO, 0), |r| (r.total_cost, r.request_count))
    }
}
