//! `tollgate usage`: spend and tokens from the ledger in the embedded
//! store, grouped as `/v1/report` groups them, as a table or as the same
//! JSON. It reads every principal's requests: whoever can read the store
//! file can read them all anyway.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tollgate::store::{GroupBy, LedgerStore, ReportQuery, ReportRow, SqliteStore};
use tollgate::usage::api::{day_start_ms, report_body};

use super::{duration, keys, table};

const DAY_MS: i64 = 86_400_000;

/// `tollgate usage [--since WHEN] [--until WHEN] [--group-by G] [--json]`.
#[derive(Args)]
pub struct UsageArgs {
    /// The store (an SQLite file). Default: `[store] path` of --config,
    /// else tollgate.db under the data directory.
    #[arg(long, value_name = "PATH")]
    store: Option<PathBuf>,
    /// The gateway's config file, to find its `[store] path`. --store wins
    /// over it.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// From when: a time back from now (90s, 15m, 12h, 7d) or a UTC day
    /// (2025-06-01, from its start).
    #[arg(long, default_value = "7d", value_name = "WHEN", value_parser = since)]
    since: i64,
    /// Until when: a time back from now or a UTC day (to its end).
    /// Default: now.
    #[arg(long, value_name = "WHEN", value_parser = until)]
    until: Option<i64>,
    /// day, model, provider, user, team, tag or credential_type.
    #[arg(long, default_value = "day", value_name = "GROUP")]
    group_by: GroupBy,
    /// Print what `GET /v1/report` answers (costs in dollars, exactly).
    #[arg(long)]
    json: bool,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `WHEN` as Unix milliseconds: `ago` back from now, or the start of a day.
fn when(text: &str, day_end: bool) -> Result<i64, String> {
    if let Some(start) = day_start_ms(text.trim()) {
        return Ok(if day_end { start + DAY_MS } else { start });
    }
    if text.trim().starts_with(|c: char| c.is_ascii_digit()) && text.contains('-') {
        return Err(format!("`{text}` is not a date as YYYY-MM-DD"));
    }
    let ago: Duration = duration::parse(text)?;
    let ago = i64::try_from(ago.as_millis()).unwrap_or(i64::MAX);
    Ok(now_ms().saturating_sub(ago))
}

fn since(text: &str) -> Result<i64, String> {
    when(text, false)
}

fn until(text: &str) -> Result<i64, String> {
    when(text, true)
}

/// Runs `tollgate usage`; an error is one line for the user.
pub async fn run(args: UsageArgs) -> Result<(), String> {
    let path = keys::resolve_store(args.store.as_deref(), args.config.as_deref())?;
    // Rows recorded in the current millisecond count as well.
    let end_ms = args.until.unwrap_or_else(|| now_ms() + 1);
    if end_ms <= args.since {
        return Err("--until is not after --since".into());
    }
    let rows = if path.exists() {
        let store = SqliteStore::open(&path).map_err(|e| e.to_string())?;
        let query = ReportQuery {
            start_ms: args.since,
            end_ms,
            group_by: args.group_by,
            key_id: None,
            key_method: None,
        };
        store.report(query).await.map_err(|e| e.to_string())?
    } else {
        Vec::new() // no need to make a file to say it is empty
    };
    if args.json {
        println!(
            "{}",
            String::from_utf8_lossy(&report_body(args.group_by, &rows))
        );
    } else if rows.is_empty() {
        eprintln!("no requests in {} for that period", path.display());
    } else {
        print!("{}", render(args.group_by, &rows));
    }
    Ok(())
}

/// The report as a table, and a total line (except by tag: a request
/// with two tags is in two groups).
fn render(group_by: GroupBy, rows: &[ReportRow]) -> String {
    let header = [
        group_by.as_str().to_uppercase(),
        "REQUESTS".into(),
        "INPUT".into(),
        "OUTPUT".into(),
        "CACHE READ".into(),
        "CACHE WRITE".into(),
        "REASONING".into(),
        "COST (USD)".into(),
        "LIST (USD)".into(),
    ];
    let cells = |name: String, r: &ReportRow| {
        vec![
            table::printable(&name),
            r.request_count.to_string(),
            r.input_tokens.to_string(),
            r.output_tokens.to_string(),
            r.cached_input_tokens.to_string(),
            r.cache_creation_input_tokens.to_string(),
            r.reasoning_tokens.to_string(),
            r.total_cost.to_string(),
            r.market_cost.to_string(),
        ]
    };
    let mut lines: Vec<Vec<String>> = rows
        .iter()
        .map(|r| cells(r.group.clone().unwrap_or_else(|| "-".into()), r))
        .collect();
    if group_by != GroupBy::Tag && rows.len() > 1 {
        let mut total = ReportRow::default();
        for r in rows {
            total.request_count += r.request_count;
            total.input_tokens += r.input_tokens;
            total.output_tokens += r.output_tokens;
            total.cached_input_tokens += r.cached_input_tokens;
            total.cache_creation_input_tokens += r.cache_creation_input_tokens;
            total.reasoning_tokens += r.reasoning_tokens;
            total.total_cost = total.total_cost.saturating_add(r.total_cost);
            total.market_cost = total.market_cost.saturating_add(r.market_cost);
        }
        lines.push(cells("TOTAL".into(), &total));
    }
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    table::aligned(&header, &lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate::usage::Nanos;

    fn group(name: Option<&str>, requests: u64, cost: u64) -> ReportRow {
        ReportRow {
            group: name.map(str::to_owned),
            request_count: requests,
            input_tokens: 10 * requests,
            total_cost: Nanos(cost),
            market_cost: Nanos(cost),
            ..ReportRow::default()
        }
    }

    #[test]
    fn the_table_has_a_row_per_group_and_a_total() {
        let rows = [group(Some("gpt-4o"), 3, 1_500_000), group(None, 1, 1)];
        let text = render(GroupBy::Model, &rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("MODEL   REQUESTS  INPUT"), "{text}");
        assert!(lines[1].starts_with("gpt-4o  3         30"), "{text}");
        assert!(lines[1].ends_with("0.0015       0.0015"), "{text}");
        assert!(lines[2].starts_with("-       1"), "{text}");
        assert!(lines[3].starts_with("TOTAL   4         40"), "{text}");
        assert!(lines[3].ends_with("0.001500001  0.001500001"), "{text}");
        // By tag, a request may be in two groups: no total.
        let text = render(GroupBy::Tag, &rows);
        assert_eq!(text.lines().count(), 3, "{text}");
    }

    #[test]
    fn when_is_a_time_ago_or_a_utc_day() {
        let before = now_ms();
        let t = since("7d").unwrap();
        assert!(t <= before - 7 * DAY_MS && t >= before - 7 * DAY_MS - 60_000);
        assert_eq!(since("2025-06-01"), Ok(1_748_736_000_000));
        assert_eq!(until("2025-06-01"), Ok(1_748_736_000_000 + DAY_MS));
        assert!(since("2025-02-30").unwrap_err().contains("YYYY-MM-DD"));
        assert!(since("7y").unwrap_err().contains("unknown unit"));
    }
}
