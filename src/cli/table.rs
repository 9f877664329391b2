//! How `tollgate keys list` shows keys: a table for people, JSON for
//! scripts. Neither has the key: the store does not have it.

use serde_json::{json, Value};
use tollgate::auth::KeyRecord;

/// One key for scripts: times in Unix seconds, `null` when unset.
pub fn json(r: &KeyRecord, now: i64) -> Value {
    json!({
        "id": r.id,
        "name": r.name,
        "prefix": r.prefix,
        "user": r.user,
        "team": r.team,
        "tags": r.tags,
        "models": r.models,
        "created_at": r.created_at,
        "last_used_at": r.last_used_at,
        "expires_at": r.expires_at,
        "revoked_at": r.revoked_at,
        "rotated_from": r.rotated_from,
        "rpm": r.limits.rpm,
        "tpm": r.limits.tpm,
        "status": r.status_at(now).as_str(),
    })
}

/// The keys as an aligned table, one per line, times in UTC.
pub fn render(keys: &[KeyRecord], now: i64) -> String {
    let header = [
        "ID",
        "NAME",
        "KEY",
        "USER",
        "TEAM",
        "TAGS",
        "MODELS",
        "CREATED (UTC)",
        "LAST USED",
        "EXPIRES",
        "STATUS",
    ];
    let or_dash = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
    let list = |l: &[String], empty: &str| {
        if l.is_empty() {
            empty.to_string()
        } else {
            l.join(",")
        }
    };
    let when = |t: Option<i64>, none: &str| t.map_or_else(|| none.to_string(), date_time);
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|r| {
            vec![
                r.id.clone(),
                r.name.clone(),
                format!("{}…", r.prefix),
                or_dash(&r.user),
                or_dash(&r.team),
                list(&r.tags, "-"),
                list(&r.models, "all"),
                date_time(r.created_at),
                when(r.last_used_at, "never"),
                when(r.expires_at, "never"),
                r.status_at(now).as_str().to_string(),
            ]
        })
        .collect();
    aligned(&header, &rows)
}

/// `header` and `rows` as columns aligned with two spaces between them,
/// control characters shown as `?`.
pub fn aligned(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|c| printable(c)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            if i + 1 < cells.len() {
                text.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header);
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&cells);
    }
    out
}

/// A control character (a newline in a name) would break the table.
pub fn printable(cell: &str) -> String {
    cell.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// `2025-06-01 14:03`, in UTC (`?` for a time out of the calendar's range).
pub fn date_time(t: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(t) {
        Ok(d) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute()
        ),
        Err(_) => "?".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, name: &str) -> KeyRecord {
        KeyRecord {
            id: id.into(),
            name: name.into(),
            prefix: "tg_AbCd".into(),
            user: None,
            team: None,
            tags: vec![],
            models: vec![],
            created_at: 1_700_000_000,
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
            rotated_from: None,
            limits: Default::default(),
        }
    }

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(date_time(0), "1970-01-01 00:00");
        assert_eq!(date_time(951_782_400), "2000-02-29 00:00");
        assert_eq!(date_time(1_700_000_000), "2023-11-14 22:13");
        assert_eq!(date_time(4_102_444_799), "2099-12-31 23:59");
        assert_eq!(date_time(-1), "1969-12-31 23:59");
    }

    #[test]
    fn the_table_lines_up_and_says_each_keys_status() {
        let active = KeyRecord {
            user: Some("ana".into()),
            team: Some("platform".into()),
            tags: vec!["a".into(), "b".into()],
            models: vec!["gpt-*".into()],
            last_used_at: Some(1_700_000_060),
            expires_at: Some(1_800_000_000),
            ..key("key_aaaaaaaaaaaa", "ci")
        };
        let revoked = KeyRecord {
            revoked_at: Some(1_700_000_100),
            ..key("key_bbbbbbbbbbbb", "a\nlong name")
        };
        let expired = KeyRecord {
            expires_at: Some(1_700_000_100),
            ..key("key_cccccccccccc", "old")
        };
        let text = render(&[active, revoked, expired], 1_700_000_200);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("ID    "), "{text}");
        assert!(
            lines[1].contains("ci")
                && lines[1].contains("tg_AbCd…")
                && lines[1].contains("ana")
                && lines[1].contains("a,b")
                && lines[1].contains("gpt-*")
                && lines[1].contains("2023-11-14 22:14")
                && lines[1].ends_with("active"),
            "{text}"
        );
        assert!(
            lines[2].contains("a?long name") && lines[2].ends_with("revoked"),
            "{text}"
        );
        assert!(
            lines[3].contains("never") && lines[3].ends_with("expired"),
            "{text}"
        );
        assert!(lines[3].contains("  all  "), "{text}");
        // Columns start at the same place on every line.
        let at = |l: &str| l.find("tg_AbCd").unwrap();
        assert_eq!(at(lines[1]), at(lines[2]));
        assert_eq!(lines[0].find("KEY").unwrap(), at(lines[1]));
    }
}
