//! The ledger over HTTP, in the Vercel AI Gateway's shapes:
//!
//! - `GET /v1/generation?id=<request id>`: one request, as
//!   `{"data": {id, total_cost, usage, model, provider_name, streamed,
//!   finish_reason, latency, generation_time, native_tokens_prompt,
//!   native_tokens_completion, native_tokens_reasoning, native_tokens_cached,
//!   native_tokens_cache_creation, created_at, is_byok}}`. The id is the
//!   `x-tollgate-request-id` of the answer. `usage` is the cost again (as
//!   Vercel and OpenRouter send it); `latency` is the time to the first
//!   token and `generation_time` the whole request, in milliseconds.
//! - `GET /v1/report?start_date=YYYY-MM-DD&end_date=YYYY-MM-DD&group_by=…`:
//!   spend and tokens grouped by `day` (the default), `model`, `provider`,
//!   `user`, `team`, `tag` or `credential_type`, for the UTC days from
//!   `start_date` to `end_date` inclusive, as `{"results": [{<group_by>,
//!   total_cost, market_cost, input_tokens, output_tokens,
//!   cached_input_tokens, cache_creation_input_tokens, reasoning_tokens,
//!   request_count}]}`. `market_cost` is the list price of the tokens,
//!   whoever paid (a BYOK request costs the gateway nothing).
//!
//! Money is printed exactly from integer nano-dollars, as a JSON number of
//! dollars (`0.000123`), never through a float.
//!
//! **Who sees what.** A caller sees only the rows of its own principal
//! (`Principal::id` and `Principal::method`: its key, or its JWT
//! subject, never both at once); a request of another key answers 404, as
//! an unknown id does, so that ids cannot be probed. The anonymous
//! principal of an open gateway (`[auth]` that lets requests in without a
//! key, or no `Auth` layer at all) sees every row. Errors are in the
//! OpenAI format.
//!
//! Mount it under the `Auth` layer, next to the edge:
//!
//! ```no_run
//! # fn demo(edge: axum::Router, ledger: tollgate::usage::Ledger) -> axum::Router {
//! edge.merge(tollgate::usage::api::router(ledger.store().clone()))
//! # }
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use http::StatusCode;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;

use crate::auth::{AuthMethod, Principal};
use crate::edge::error_response;
use crate::error::{ErrorKind, GatewayError};
use crate::format::WireFormat;
use crate::store::{GroupBy, LedgerStore, ReportQuery, ReportRow};

use super::{LedgerRow, Nanos};

const DAY_MS: i64 = 86_400_000;

/// The longest range a report covers, in days: a leap year. A longer
/// one would make the store read years of rows in one request.
const MAX_REPORT_DAYS: i64 = 366;

/// The routes `/v1/generation` and `/v1/report` over `store` (see the
/// [module docs](self)).
pub fn router(store: Arc<dyn LedgerStore>) -> Router {
    Router::new()
        .route("/v1/generation", get(generation))
        .route("/v1/report", get(report))
        .method_not_allowed_fallback(|req: Request| async move {
            error(
                &GatewayError::invalid_request(format!(
                    "method {} is not allowed on {}: use GET",
                    req.method(),
                    req.uri().path()
                ))
                .with_status(StatusCode::METHOD_NOT_ALLOWED),
            )
        })
        .with_state(store)
}

async fn generation(State(store): State<Arc<dyn LedgerStore>>, req: Request) -> Response {
    let params = match params(&req) {
        Ok(p) => p,
        Err(e) => return error(&e),
    };
    let Some(id) = params.get("id").filter(|id| !id.is_empty()) else {
        return error(&GatewayError::invalid_param(
            "id",
            "`id` is required: the x-tollgate-request-id of the answer to look up",
        ));
    };
    let not_found = || error(&GatewayError::not_found(format!("no generation `{id}`")));
    let row = match store.generation(id).await {
        Ok(Some(row)) => row,
        Ok(None) => return not_found(),
        Err(e) => return store_down(&e),
    };
    match viewer(&req) {
        Some((method, key))
            if row.key_id.as_deref() != Some(key) || row.key_method != Some(method) =>
        {
            not_found()
        }
        _ => json(StatusCode::OK, &Generation { data: &row }),
    }
}

/// The body `/v1/report` answers for `rows` grouped by `group_by`
/// (`tollgate usage --json` prints the same).
pub fn report_body(group_by: GroupBy, rows: &[ReportRow]) -> Vec<u8> {
    serde_json::to_vec(&Report { group_by, rows }).expect("a report serializes")
}

async fn report(State(store): State<Arc<dyn LedgerStore>>, req: Request) -> Response {
    let query = match params(&req).and_then(|p| report_query(&p, viewer(&req))) {
        Ok(q) => q,
        Err(e) => return error(&e),
    };
    let group_by = query.group_by;
    match store.report(query).await {
        Ok(rows) => crate::edge::json_response(StatusCode::OK, report_body(group_by, &rows)),
        Err(e) => store_down(&e),
    }
}

/// Whose rows the caller may see, by how it authenticated and its id:
/// `None` for every row.
fn viewer(req: &Request) -> Option<(&'static str, &str)> {
    match req.extensions().get::<Principal>() {
        Some(p) if p.method != AuthMethod::None => Some((p.method.as_str(), &p.id)),
        _ => None,
    }
}

fn params(req: &Request) -> Result<HashMap<String, String>, GatewayError> {
    Query::<HashMap<String, String>>::try_from_uri(req.uri())
        .map(|q| q.0)
        .map_err(|_| GatewayError::invalid_request("the query string is not valid"))
}

fn report_query(
    params: &HashMap<String, String>,
    viewer: Option<(&'static str, &str)>,
) -> Result<ReportQuery, GatewayError> {
    let date = |name: &str| -> Result<i64, GatewayError> {
        let text = params.get(name).map(String::as_str).unwrap_or("");
        if text.is_empty() {
            return Err(GatewayError::invalid_param(
                name,
                format!("`{name}` is required (a UTC day, YYYY-MM-DD)"),
            ));
        }
        day_start_ms(text).ok_or_else(|| {
            GatewayError::invalid_param(
                name,
                format!("`{name}` must be a date as YYYY-MM-DD, not `{text}`"),
            )
        })
    };
    let start_ms = date("start_date")?;
    let end_ms = date("end_date")? + DAY_MS;
    if end_ms <= start_ms {
        return Err(GatewayError::invalid_param(
            "end_date",
            "`end_date` is before `start_date`",
        ));
    }
    if end_ms - start_ms > MAX_REPORT_DAYS * DAY_MS {
        return Err(GatewayError::invalid_param(
            "end_date",
            format!(
                "the range from `start_date` to `end_date` is more than {MAX_REPORT_DAYS} days: ask for a shorter one"
            ),
        ));
    }
    let group_by = match params.get("group_by").map(String::as_str) {
        None | Some("") => GroupBy::Day,
        Some(g) => g
            .parse()
            .map_err(|e: String| GatewayError::invalid_param("group_by", e))?,
    };
    Ok(ReportQuery {
        start_ms,
        end_ms,
        group_by,
        key_id: viewer.map(|(_, id)| id.to_owned()),
        key_method: viewer.map(|(method, _)| method.to_owned()),
    })
}

/// The start of UTC day `YYYY-MM-DD`, in Unix milliseconds; `None` for
/// anything else (a date that does not exist, another format).
pub fn day_start_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = text.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = i32::try_from(digits(0..4)?).ok()?;
    let month = time::Month::try_from(u8::try_from(digits(5..7)?).ok()?).ok()?;
    let day = u8::try_from(digits(8..10)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp() * 1000)
}

/// `2025-06-01T14:03:07.123Z`.
fn iso_time(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        ms.rem_euclid(1000)
    )
}

/// `n` as a JSON number of dollars, exactly.
fn dollars(n: Nanos) -> Box<RawValue> {
    RawValue::from_string(n.to_string()).expect("a decimal number is JSON")
}

struct Generation<'a> {
    data: &'a LedgerRow,
}

impl Serialize for Generation<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.data;
        let cost = r.cost.map(dollars);
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(
            "data",
            &GenerationData {
                row: r,
                cost: cost.as_deref(),
            },
        )?;
        m.end()
    }
}

struct GenerationData<'a> {
    row: &'a LedgerRow,
    cost: Option<&'a RawValue>,
}

impl Serialize for GenerationData<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.row;
        let u = &r.usage;
        let mut m = s.serialize_map(Some(16))?;
        m.serialize_entry("id", &*r.id)?;
        // Unknown price: `null`, never a zero that looks like a free request.
        m.serialize_entry("total_cost", &self.cost)?;
        m.serialize_entry("usage", &self.cost)?;
        m.serialize_entry(
            "model",
            r.model.as_deref().unwrap_or(r.requested_model.as_str()),
        )?;
        m.serialize_entry("provider_name", &r.provider.as_deref())?;
        m.serialize_entry("streamed", &r.streamed)?;
        m.serialize_entry("finish_reason", &r.finish_reason)?;
        m.serialize_entry("latency", &r.ttft_ms)?;
        m.serialize_entry("generation_time", &r.duration_ms)?;
        m.serialize_entry("native_tokens_prompt", &u.input_tokens)?;
        m.serialize_entry("native_tokens_completion", &u.output_tokens)?;
        m.serialize_entry("native_tokens_reasoning", &u.reasoning_tokens)?;
        m.serialize_entry("native_tokens_cached", &u.cache_read_tokens)?;
        m.serialize_entry("native_tokens_cache_creation", &u.cache_write_tokens)?;
        m.serialize_entry("created_at", &iso_time(r.created_at_ms))?;
        // A client's own key or subscription paid, not the gateway's.
        let byok = r.credential.is_some_and(|c| c != "gateway");
        m.serialize_entry("is_byok", &byok)?;
        m.end()
    }
}

struct Report<'a> {
    group_by: GroupBy,
    rows: &'a [ReportRow],
}

impl Serialize for Report<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let results: Vec<ReportEntry<'_>> = self
            .rows
            .iter()
            .map(|row| ReportEntry {
                group_by: self.group_by,
                row,
            })
            .collect();
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("results", &results)?;
        m.end()
    }
}

struct ReportEntry<'a> {
    group_by: GroupBy,
    row: &'a ReportRow,
}

impl Serialize for ReportEntry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.row;
        let mut m = s.serialize_map(Some(9))?;
        m.serialize_entry(self.group_by.as_str(), &r.group)?;
        m.serialize_entry("total_cost", &dollars(r.total_cost))?;
        m.serialize_entry("market_cost", &dollars(r.market_cost))?;
        m.serialize_entry("input_tokens", &r.input_tokens)?;
        m.serialize_entry("output_tokens", &r.output_tokens)?;
        m.serialize_entry("cached_input_tokens", &r.cached_input_tokens)?;
        m.serialize_entry(
            "cache_creation_input_tokens",
            &r.cache_creation_input_tokens,
        )?;
        m.serialize_entry("reasoning_tokens", &r.reasoning_tokens)?;
        m.serialize_entry("request_count", &r.request_count)?;
        m.end()
    }
}

fn json(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => crate::edge::json_response(status, bytes),
        Err(e) => error(&GatewayError::internal(format!(
            "cannot encode the answer: {e}"
        ))),
    }
}

fn error(err: &GatewayError) -> Response {
    error_response(WireFormat::OpenAiChat, err, &crate::edge::new_request_id())
}

fn store_down(e: &crate::store::StoreError) -> Response {
    tracing::error!(error = %e, "cannot read the ledger");
    error(
        &GatewayError::new(
            ErrorKind::Internal,
            "the usage ledger cannot be read right now",
        )
        .with_status(StatusCode::SERVICE_UNAVAILABLE),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_midnights_and_bad_dates_are_refused() {
        assert_eq!(day_start_ms("1970-01-01"), Some(0));
        assert_eq!(day_start_ms("2025-06-01"), Some(1_748_736_000_000));
        assert_eq!(day_start_ms("2024-02-29"), Some(1_709_164_800_000));
        for bad in [
            "",
            "2025-6-01",
            "2025-02-30",
            "2025-13-01",
            "2025/06/01",
            "+025-06-01",
            "2025-06-01T00",
            "２０２５-06-01",
            "2025-00-10",
        ] {
            assert_eq!(day_start_ms(bad), None, "{bad}");
        }
        assert_eq!(iso_time(1_748_736_000_123), "2025-06-01T00:00:00.123Z");
    }

    #[test]
    fn a_report_covers_at_most_366_days() {
        let q = |start: &str, end: &str| {
            let p = HashMap::from([
                ("start_date".to_owned(), start.to_owned()),
                ("end_date".to_owned(), end.to_owned()),
            ]);
            report_query(&p, None)
        };
        // 2024 is a leap year: 366 days, both ends included.
        assert!(q("2024-01-01", "2024-12-31").is_ok());
        let err = q("2024-01-01", "2025-01-01").unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert_eq!(err.param(), Some("end_date"));
        assert!(err.message().contains("`start_date`"), "{}", err.message());
        assert!(q("0001-01-01", "9999-12-31").is_err());
    }

    #[test]
    fn costs_are_printed_exactly() {
        assert_eq!(dollars(Nanos(1)).get(), "0.000000001");
        assert_eq!(dollars(Nanos(123_450_000)).get(), "0.12345");
        assert_eq!(dollars(Nanos(0)).get(), "0");
    }
}
