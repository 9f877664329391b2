//! The fallback layer on its own, around a plain function: no server, no
//! gateway types.
//!
//! ```sh
//! cargo run --example fallback_alone
//! ```
//!
//! A made-up "model service" answers some models and fails others. The
//! `FallbackLayer` asks a small `Policy` after each attempt whether to try
//! again, and with which request: here, the next model of a list, but only
//! after a failure that another model may not have (an outage, not a bad
//! request). The program prints every attempt, checks the outcome, and
//! exits non-zero if it is not what the comments say (`--self-test` is
//! accepted for symmetry with the other examples; it changes nothing).

use tollgate::routing::{FallbackLayer, Policy};
use tower::{service_fn, ServiceBuilder, ServiceExt};

/// What the caller asks for.
#[derive(Debug, Clone)]
struct Ask {
    model: &'static str,
    prompt: &'static str,
}

fn ask(model: &'static str, prompt: &'static str) -> Ask {
    Ask { model, prompt }
}

/// How a model can fail.
#[derive(Debug, PartialEq)]
enum Failure {
    /// Down for now: another model may answer.
    Overloaded,
    /// The request itself is wrong: every model would refuse it.
    BadRequest,
}

/// The policy: on an outage, the next model of `chain` (each tried once);
/// on anything else, stop. A fresh clone serves each request, so `next`
/// may remember how far down the chain it is.
#[derive(Clone)]
struct NextModel {
    chain: &'static [&'static str],
}

impl Policy<Ask, String, Failure> for NextModel {
    fn next(&mut self, req: &Ask, result: &Result<String, Failure>) -> Option<Ask> {
        if result.as_ref().err() != Some(&Failure::Overloaded) {
            return None;
        }
        let (&model, rest) = self.chain.split_first()?;
        self.chain = rest;
        println!("  policy: {} failed, trying {model}", req.model);
        Some(ask(model, req.prompt))
    }

    fn clone_request(&mut self, req: &Ask) -> Option<Ask> {
        Some(req.clone())
    }
}

/// The inner service: "primary" and "secondary" are down, "backup" answers;
/// an empty prompt is a bad request everywhere.
async fn model(ask: Ask) -> Result<String, Failure> {
    let result = match (ask.model, ask.prompt) {
        (_, "") => Err(Failure::BadRequest),
        ("primary" | "secondary", _) => Err(Failure::Overloaded),
        (m, p) => Ok(format!("{m} says: you asked `{p}`")),
    };
    println!("  {} -> {result:?}", ask.model);
    result
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let chain = NextModel {
        chain: &["secondary", "backup"],
    };
    let service = ServiceBuilder::new()
        .layer(FallbackLayer::new(chain))
        .service(service_fn(model));

    println!("1. primary is down: the policy walks the chain until backup answers");
    let answer = service.clone().oneshot(ask("primary", "hello")).await;
    println!("=> {answer:?}\n");
    let mut ok = answer.as_deref() == Ok("backup says: you asked `hello`");

    println!("2. a bad request is not tried elsewhere");
    let answer = service.clone().oneshot(ask("primary", "")).await;
    println!("=> {answer:?}\n");
    ok &= answer == Err(Failure::BadRequest);

    // The closure form, for a one-off rule: after any error, "backup".
    let policy = |req: &Ask, res: &Result<String, Failure>| {
        (res.is_err() && req.model != "backup").then(|| ask("backup", req.prompt))
    };
    let simple = ServiceBuilder::new()
        .layer(FallbackLayer::new(policy))
        .service(service_fn(model));
    println!("3. the same with a closure policy");
    let answer = simple.oneshot(ask("secondary", "hi")).await;
    println!("=> {answer:?}\n");
    ok &= answer.as_deref() == Ok("backup says: you asked `hi`");

    if !ok {
        eprintln!("FAILED: unexpected answers");
        std::process::exit(1);
    }
    println!("ok: the backup answered for the failing primary");
}
