//! `GET /v1/credits`: the caller's remaining budget, in the shape of the
//! Vercel AI Gateway's endpoint (`{"balance": "95.5", "total_used": "4.5"}`,
//! decimal dollar strings).
//!
//! The figures are those of the tightest budget of the caller's own that
//! applies to it: the hard budget with the least left (a soft one only
//! when no hard one applies). `balance` is its amount less what was spent this
//! period (negative past a soft budget's amount; requests in flight are
//! not subtracted), `total_used` what was spent this period. A `budget`
//! object says which budget that is (scope, period, amount, soft, and
//! `resets_at`, RFC 3339, or null).
//!
//! # Whose figures a caller sees
//!
//! A budget's figures are shown to the callers whose spend it is:
//!
//! - its key's budget, and its user's: its own;
//! - its team's: every member's spend counts against it and any member
//!   may be refused by it, so a member sees the team's balance;
//! - never a tag's: a tag (`ci`, `batch`) groups keys of any user or
//!   team, and its figures would tell one tenant what others spend;
//! - the gateway's global budget only to the operator: the anonymous
//!   principal of a gateway that requires no authentication (or a
//!   request with no principal at all, without an `Auth` layer).
//!
//! A caller with none of those gets `{"balance": null, "total_used":
//! null, "budget": null}`. Budgets it cannot see still apply: one that
//! refuses a request names itself (scope and period) in the 402.

use axum::extract::Request;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use http::StatusCode;
use serde_json::{json, Value};

use super::spec::{rfc3339, Scope};
use super::state::{BudgetStatus, Budgets};
use crate::auth::{AuthMethod, Principal};

/// The route `GET /v1/credits` over `budgets`, to merge into the
/// gateway's router (inside the `Auth` layer, which says who asks).
pub fn credits_router(budgets: Budgets) -> Router {
    Router::new().route(
        "/v1/credits",
        get(move |req: Request| {
            let budgets = budgets.clone();
            async move { credits(&budgets, req.extensions().get::<Principal>()) }
        }),
    )
}

fn credits(budgets: &Budgets, principal: Option<&Principal>) -> Response {
    let body = credits_body(&budgets.status(principal), principal);
    crate::edge::json_response(StatusCode::OK, body.to_string().into_bytes())
}

/// Whether `principal` may see the figures of a budget of `scope` that
/// applies to it (see the [module docs](self)).
fn shown(scope: &Scope, principal: Option<&Principal>) -> bool {
    match scope {
        Scope::Key(_) | Scope::User(_) | Scope::Team(_) => true,
        Scope::Tag(_) => false,
        Scope::Global => principal.is_none_or(|p| p.method == AuthMethod::None),
    }
}

/// The answer for `principal`, to whom `statuses` apply.
pub(crate) fn credits_body(statuses: &[BudgetStatus], principal: Option<&Principal>) -> Value {
    let balance = |s: &BudgetStatus| i128::from(s.spec.amount.0) - i128::from(s.spent.0);
    let statuses = || statuses.iter().filter(|s| shown(&s.spec.scope, principal));
    let any_hard = statuses().any(|s| !s.spec.soft);
    let tightest = statuses()
        .filter(|s| !any_hard || !s.spec.soft)
        .min_by_key(|s| balance(s));
    let Some(s) = tightest else {
        return json!({ "balance": null, "total_used": null, "budget": null });
    };
    json!({
        "balance": dollars(balance(s)),
        "total_used": s.spent.to_string(),
        "budget": {
            "scope": s.spec.scope.to_string(),
            "period": s.spec.period.as_str(),
            "amount": s.spec.amount.to_string(),
            "soft": s.spec.soft,
            "resets_at": s.resets_at.map(rfc3339),
        },
    })
}

/// Signed nano-dollars as a decimal dollar string.
fn dollars(nanos: i128) -> String {
    let abs = crate::usage::Nanos(u64::try_from(nanos.unsigned_abs()).unwrap_or(u64::MAX));
    if nanos < 0 {
        format!("-{abs}")
    } else {
        abs.to_string()
    }
}
