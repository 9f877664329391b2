//! `tollgate budgets`: set, list and delete the budgets in the embedded
//! store, while a gateway has the same store open (it reads a change
//! within a second). Budgets written in the config (`[[budgets]]`) apply
//! too, but are not listed or changed here.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Subcommand};
use serde_json::json;
use tollgate::budget::{BudgetAdmin, BudgetSpec, BudgetStore, Period, Scope};
use tollgate::store::{unix_now, SqliteStore};
use tollgate::usage::Nanos;

use super::{keys::resolve_store, table};

/// `tollgate budgets [--store PATH | --config FILE] <command>`.
#[derive(Args)]
pub struct BudgetsArgs {
    /// The store (an SQLite file). Default: `[store] path` of --config,
    /// else tollgate.db under the data directory.
    #[arg(long, global = true, value_name = "PATH")]
    store: Option<PathBuf>,
    /// The gateway's config file, to find its `[store] path`. --store wins.
    #[arg(long, short, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: BudgetsCommand,
}

#[derive(Subcommand)]
enum BudgetsCommand {
    /// Set the budget of a scope (replacing the one it had).
    ///
    /// A hard budget refuses a request it cannot cover with a 402; a
    /// `--soft` one serves it and marks the answer `x-tollgate-budget: over`.
    Set(SetArgs),
    /// List the budgets: scope, amount, period, what was spent this
    /// period (from the ledger), what is left and when it resets.
    List {
        /// One JSON array for scripts (amounts as decimal dollar strings,
        /// times in Unix seconds).
        #[arg(long)]
        json: bool,
    },
    /// Delete the budget of a scope.
    Delete(ScopeArgs),
}

/// Exactly one scope.
#[derive(Args)]
#[command(group(ArgGroup::new("scope").required(true).multiple(false)))]
struct ScopeArgs {
    /// A gateway key's id (`key_…`), or a static key's name.
    #[arg(long, group = "scope", value_name = "ID")]
    key: Option<String>,
    /// A user.
    #[arg(long, group = "scope")]
    user: Option<String>,
    /// A team.
    #[arg(long, group = "scope")]
    team: Option<String>,
    /// A tag.
    #[arg(long, group = "scope")]
    tag: Option<String>,
    /// Every request the gateway serves.
    #[arg(long, group = "scope")]
    global: bool,
}

#[derive(Args)]
struct SetArgs {
    #[command(flatten)]
    scope: ScopeArgs,
    /// The amount per period, in US dollars (`50`, `0.25`).
    #[arg(long, value_name = "AMOUNT", value_parser = Nanos::parse_usd)]
    usd: Nanos,
    /// When the spend starts again from zero: daily, weekly (Monday),
    /// monthly (UTC), or none.
    #[arg(long, value_parser = Period::parse)]
    period: Period,
    /// Serve past the amount (marking the answers) instead of refusing.
    #[arg(long)]
    soft: bool,
}

impl ScopeArgs {
    fn scope(&self) -> Result<Scope, String> {
        let named = [
            ("key", &self.key),
            ("user", &self.user),
            ("team", &self.team),
            ("tag", &self.tag),
        ];
        match named
            .iter()
            .find_map(|(k, v)| v.as_deref().map(|v| (*k, v)))
        {
            Some((kind, value)) => {
                Scope::from_parts(kind, value).map_err(|e| format!("--{kind}: {e}"))
            }
            None => Ok(Scope::Global),
        }
    }
}

/// Runs `tollgate budgets ...`; an error is one line for the user.
pub async fn run(args: BudgetsArgs) -> Result<(), String> {
    let path = resolve_store(args.store.as_deref(), args.config.as_deref())?;
    match args.command {
        BudgetsCommand::Set(set) => {
            let spec = BudgetSpec {
                scope: set.scope.scope()?,
                amount: set.usd,
                period: set.period,
                soft: set.soft,
            };
            let store = SqliteStore::open(&path).map_err(|e| e.to_string())?;
            store
                .set_budget(spec.clone())
                .await
                .map_err(|e| e.to_string())?;
            eprintln!(
                "set the {} budget of {}: {} USD{} ({})",
                spec.period.as_str(),
                spec.scope,
                spec.amount,
                per(spec.period),
                if spec.soft { "soft" } else { "hard" }
            );
            Ok(())
        }
        BudgetsCommand::List { json } => {
            let rows = if path.exists() {
                let store = SqliteStore::open(&path).map_err(|e| e.to_string())?;
                rows(&store).await?
            } else {
                Vec::new() // no need to make a file to say it is empty
            };
            if json {
                let list: Vec<_> = rows.iter().map(Row::json).collect();
                println!("{}", serde_json::Value::Array(list));
            } else if rows.is_empty() {
                eprintln!("no budgets in {}", path.display());
            } else {
                print!("{}", render(&rows));
            }
            Ok(())
        }
        BudgetsCommand::Delete(scope) => {
            let scope = scope.scope()?;
            if !path.exists() {
                return Err(format!(
                    "no store at {} (is the path right?)",
                    path.display()
                ));
            }
            let store = SqliteStore::open(&path).map_err(|e| e.to_string())?;
            if !store
                .delete_budget(&scope)
                .await
                .map_err(|e| e.to_string())?
            {
                return Err(format!("no budget for {scope} in {}", path.display()));
            }
            eprintln!("deleted the budget of {scope}");
            Ok(())
        }
    }
}

fn per(period: Period) -> &'static str {
    match period {
        Period::None => " in all",
        Period::Daily => " a day",
        Period::Weekly => " a week",
        Period::Monthly => " a month",
    }
}

/// A budget with what the ledger says it spent this period.
struct Row {
    spec: BudgetSpec,
    spent: Nanos,
    resets_at: Option<i64>,
}

impl Row {
    fn json(&self) -> serde_json::Value {
        json!({
            "scope": self.spec.scope.to_string(),
            "usd": self.spec.amount.to_string(),
            "period": self.spec.period.as_str(),
            "soft": self.spec.soft,
            "spent": self.spent.to_string(),
            "remaining": self.spec.amount.saturating_sub(self.spent).to_string(),
            "resets_at": self.resets_at,
        })
    }
}

async fn rows(store: &SqliteStore) -> Result<Vec<Row>, String> {
    let now = unix_now();
    let mut out = Vec::new();
    for spec in store.budgets().await.map_err(|e| e.to_string())? {
        let (start, resets_at) = spec.period.window(now);
        let spent = store
            .spent_since(&spec.scope, start.saturating_mul(1000))
            .await
            .map_err(|e| e.to_string())?;
        out.push(Row {
            spec,
            spent,
            resets_at,
        });
    }
    Ok(out)
}

fn render(rows: &[Row]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.spec.scope.to_string(),
                r.spec.amount.to_string(),
                r.spec.period.as_str().to_string(),
                if r.spec.soft { "soft" } else { "hard" }.to_string(),
                r.spent.to_string(),
                r.spec.amount.saturating_sub(r.spent).to_string(),
                r.resets_at.map_or("never".into(), table::date_time),
            ]
        })
        .collect();
    table::aligned(
        &[
            "SCOPE",
            "USD",
            "PERIOD",
            "KIND",
            "SPENT",
            "REMAINING",
            "RESETS (UTC)",
        ],
        &cells,
    )
}
