//! The embedded store: one SQLite file (WAL mode), migrations applied at
//! open. (Being written: see issue 9.)

use std::path::Path;
use std::time::Duration;

use super::{KeyAdmin, KeySpec, KeyStore, StoreError, StoreFuture};
use crate::auth::{KeyHash, KeyRecord, NewKey};

/// The embedded SQLite store; clones share one connection pool.
#[derive(Clone)]
pub struct SqliteStore {
    _private: (),
}

impl SqliteStore {
    /// Opens (creating it and its folder if needed) the database at
    /// `path`, and applies the migrations it lacks.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let _ = path;
        Err(StoreError("not built yet".into()))
    }
}

impl KeyStore for SqliteStore {
    fn lookup(&self, hash: &KeyHash) -> StoreFuture<'_, Option<KeyRecord>> {
        let _ = hash;
        Box::pin(std::future::ready(Err(StoreError("not built yet".into()))))
    }
}

impl KeyAdmin for SqliteStore {
    fn create(&self, spec: KeySpec) -> StoreFuture<'_, (KeyRecord, NewKey)> {
        let _ = spec;
        Box::pin(std::future::ready(Err(StoreError("not built yet".into()))))
    }

    fn list(&self) -> StoreFuture<'_, Vec<KeyRecord>> {
        Box::pin(std::future::ready(Err(StoreError("not built yet".into()))))
    }

    fn revoke<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool> {
        let _ = id;
        Box::pin(std::future::ready(Err(StoreError("not built yet".into()))))
    }

    fn rotate<'a>(
        &'a self,
        id: &'a str,
        grace: Duration,
    ) -> StoreFuture<'a, Option<(KeyRecord, NewKey)>> {
        let _ = (id, grace);
        Box::pin(std::future::ready(Err(StoreError("not built yet".into()))))
    }
}
