//! For the usage module's tests: a ledger store that keeps its rows in
//! memory and can be told to fail, and requests and answers to meter.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::{Ledger, LedgerRow, Nanos, Price, PriceTable};
use crate::edge::RequestId;
use crate::format::WireFormat;
use crate::json::RawObject;
use crate::request::{GatewayRequest, Operation};
use crate::response::{GatewayResponse, ResponseBody};
use crate::routing::CredentialKind;
use crate::store::{
    LedgerStore, LedgerWriter, ReportQuery, ReportRow, SpendScope, StoreError, StoreFuture,
};

/// The rows written, and a switch that makes every write fail.
#[derive(Clone, Default)]
pub(crate) struct MemStore {
    pub rows: Arc<Mutex<Vec<LedgerRow>>>,
    pub failing: Arc<AtomicBool>,
    /// Writes tried, failed ones included.
    pub tries: Arc<AtomicUsize>,
}

impl MemStore {
    pub fn rows(&self) -> Vec<LedgerRow> {
        self.rows.lock().unwrap().clone()
    }

    pub fn ledger(&self) -> Ledger {
        Ledger::open(Arc::new(self.clone())).unwrap()
    }
}

impl LedgerWriter for MemStore {
    fn append(&mut self, rows: &[LedgerRow]) -> Result<(), StoreError> {
        self.tries.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError("disk full".into()));
        }
        self.rows.lock().unwrap().extend_from_slice(rows);
        Ok(())
    }
}

impl LedgerStore for MemStore {
    fn writer(&self) -> Result<Box<dyn LedgerWriter>, StoreError> {
        Ok(Box::new(self.clone()))
    }
    fn generation<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<LedgerRow>> {
        let row = self.rows().into_iter().find(|r| &*r.id == id);
        Box::pin(std::future::ready(Ok(row)))
    }
    fn report(&self, _: ReportQuery) -> StoreFuture<'_, Vec<ReportRow>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }
    fn spend(&self, _: SpendScope, _: i64) -> StoreFuture<'_, Nanos> {
        Box::pin(std::future::ready(Ok(Nanos::ZERO)))
    }
}

/// $1 input and $2 output per million tokens: a token costs 1,000 or
/// 2,000 nano-dollars.
pub(crate) fn price() -> Price {
    Price::new(Nanos(1_000_000_000), Nanos(2_000_000_000))
}

/// A table that prices `model` on provider `p` at [`price`].
pub(crate) fn prices(model: &str) -> Arc<PriceTable> {
    Arc::new(PriceTable::default().with_price(Some("p"), model, price()))
}

/// A request in `format` with body `body`, whose id is `id`.
pub(crate) fn request(
    format: WireFormat,
    operation: Operation,
    body: &str,
    id: &str,
) -> GatewayRequest {
    let raw = RawObject::parse(body.as_bytes()).unwrap();
    let mut req = GatewayRequest::new(format, operation, raw).unwrap();
    req.extensions.insert(RequestId(id.into()));
    req
}

/// An answer `body` served by provider `p`, model `model`, with the
/// gateway's credential.
pub(crate) fn served(body: ResponseBody, model: &str) -> GatewayResponse {
    let mut resp = GatewayResponse::new(body);
    resp.meta.provider = Some("p".into());
    resp.meta.model = Some(model.into());
    resp.meta.credential = Some(CredentialKind::Gateway);
    resp
}
