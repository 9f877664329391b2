//! `tollgate keys`: create, list, revoke and rotate the gateway keys in
//! the embedded store, while a gateway has the same store open.
//!
//! A new key is printed once, alone on the first line of stdout, so that
//! `KEY=$(tollgate keys create --name ci)` works; what it is and that it
//! will not be shown again go to stderr. `--json` prints an object with
//! the key instead. Nothing else ever prints a key: the store does not
//! have it.

use std::num::{NonZeroU32, NonZeroU64};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use tollgate::auth::{KeyLimits, KeyRecord, NewKey};
use tollgate::config::StoreConfig;
use tollgate::store::{unix_now, KeyAdmin, KeySpec, SqliteStore};

use super::{duration, table};

/// `tollgate keys [--store PATH | --config FILE] <command>`.
#[derive(Args)]
pub struct KeysArgs {
    /// The store (an SQLite file). Default: `[store] path` of --config,
    /// else tollgate.db under the data directory
    /// (~/.local/share/tollgate/tollgate.db).
    #[arg(long, global = true, value_name = "PATH")]
    store: Option<PathBuf>,
    /// The gateway's config file, to find its `[store] path`. --store wins
    /// over it.
    #[arg(long, short, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a key and print it, this once.
    ///
    /// The key is printed alone on the first line of stdout
    /// (`KEY=$(tollgate keys create --name ci)`); its id and the reminder
    /// that it will not be shown again go to stderr. The store keeps only
    /// its hash.
    Create(CreateArgs),
    /// List the keys: id, name, the key's first characters, owner, tags,
    /// models, times and status. Never the keys themselves.
    List {
        /// One JSON array for scripts (times in Unix seconds).
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key: it stops working at once (a running gateway notices
    /// within seconds).
    Revoke {
        /// The key's id (`key_…`, from `tollgate keys list`).
        id: String,
    },
    /// Replace a key with a new one (same name, owner, tags, models, rate
    /// limits and expiry) and print the new key, this once, like `create`.
    ///
    /// The old key keeps working for the grace period, so that whatever
    /// uses it can be switched over. Use `--grace 0` for a key that leaked.
    Rotate {
        /// The key's id (`key_…`).
        id: String,
        /// How long the old key keeps working: 0, 90s, 15m, 12h, up to 30d.
        #[arg(long, default_value = "1h", value_name = "DURATION", value_parser = duration::grace)]
        grace: Duration,
        /// Print the new key and its details as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct CreateArgs {
    /// What the key is for, shown in lists and logs (not secret).
    #[arg(long)]
    name: String,
    /// The user it belongs to.
    #[arg(long)]
    user: Option<String>,
    /// The team it belongs to.
    #[arg(long)]
    team: Option<String>,
    /// A tag for usage and budgets; repeat for more.
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// The models it may use, comma-separated; `*` matches any run of
    /// characters (`gpt-*,anthropic/*`). Default: every model.
    #[arg(long, value_name = "PATTERN,...", value_delimiter = ',')]
    models: Vec<String>,
    /// How long until it stops working: 90s, 15m, 12h, 30d (at most
    /// 3650d). Default: it does not expire.
    #[arg(long, value_name = "DURATION", value_parser = duration::expiry)]
    expires: Option<Duration>,
    /// Requests per minute it may make (at least 1). Default: no limit of
    /// its own (`[[rate_limits]]` in the config may still set one).
    #[arg(long, value_name = "N")]
    rpm: Option<NonZeroU32>,
    /// Tokens per minute it may use, input and output together (at least
    /// 1). Default: no limit of its own.
    #[arg(long, value_name = "N")]
    tpm: Option<NonZeroU64>,
    /// Print the key and its details as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs `tollgate keys ...`; an error is one line for the user.
pub async fn run(args: KeysArgs) -> Result<(), String> {
    let path = resolve_store(args.store.as_deref(), args.config.as_deref())?;
    match args.command {
        KeysCommand::Create(create) => {
            let spec = create.spec()?;
            let store = SqliteStore::open(&path).map_err(|e| e.to_string())?;
            let (record, key) = store.create(spec).await.map_err(|e| e.to_string())?;
            let expiry = record.expires_at.map_or(String::new(), |t| {
                format!(", expires {} UTC", table::date_time(t))
            });
            show_key(&record, &key, create.json);
            eprintln!(
                "created {} ({}){expiry}: this is the only time the key is shown; store it now",
                record.id, record.name
            );
            Ok(())
        }
        KeysCommand::List { json } => {
            let keys = if path.exists() {
                let store = SqliteStore::open(&path).map_err(|e| e.to_string())?;
                store.list().await.map_err(|e| e.to_string())?
            } else {
                Vec::new() // no need to make a file to say it is empty
            };
            let now = unix_now();
            if json {
                let list: Vec<_> = keys.iter().map(|r| table::json(r, now)).collect();
                println!("{}", serde_json::Value::Array(list));
            } else if keys.is_empty() {
                eprintln!("no keys in {}", path.display());
            } else {
                print!("{}", table::render(&keys, now));
            }
            Ok(())
        }
        KeysCommand::Revoke { id } => {
            let store = open_existing(&path)?;
            if !store.revoke(&id).await.map_err(|e| e.to_string())? {
                return Err(format!("no key `{id}` in {}", path.display()));
            }
            eprintln!("revoked {id}");
            Ok(())
        }
        KeysCommand::Rotate { id, grace, json } => {
            let store = open_existing(&path)?;
            let Some((record, key)) = store.rotate(&id, grace).await.map_err(|e| e.to_string())?
            else {
                return Err(why_not_rotated(&store, &id, &path).await);
            };
            show_key(&record, &key, json);
            // The store ends the old key when the grace period does, or at
            // its own expiry if sooner, which the new key inherited.
            let grace_secs = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
            let grace_end = record.created_at.saturating_add(grace_secs);
            let old_end = match record.expires_at.map_or(grace_end, |t| t.min(grace_end)) {
                end if end > unix_now() => {
                    format!("keeps working until {} UTC", table::date_time(end))
                }
                _ => "has stopped working".to_string(),
            };
            eprintln!(
                "rotated {id} into {}; {id} {old_end}. This is the only time the new key is shown; store it now",
                record.id
            );
            Ok(())
        }
    }
}

impl CreateArgs {
    /// Checks the options: a name, and no empty or unprintable values
    /// (an empty `--models ""` would otherwise allow every model).
    fn spec(&self) -> Result<KeySpec, String> {
        let one = |flag: &str, value: &str| -> Result<String, String> {
            let value = value.trim();
            if value.is_empty() {
                return Err(format!("{flag} must not be empty"));
            }
            if value.chars().any(char::is_control) {
                return Err(format!("{flag} must not contain control characters"));
            }
            if value.chars().count() > 200 {
                return Err(format!("{flag} is longer than 200 characters"));
            }
            Ok(value.to_string())
        };
        let many = |flag: &str, values: &[String]| -> Result<Vec<String>, String> {
            values.iter().map(|v| one(flag, v)).collect()
        };
        Ok(KeySpec {
            name: one("--name", &self.name)?,
            user: self.user.as_deref().map(|u| one("--user", u)).transpose()?,
            team: self.team.as_deref().map(|t| one("--team", t)).transpose()?,
            tags: many("--tag", &self.tags)?,
            models: many("--models (each pattern)", &self.models)?,
            expires_in: self.expires,
            limits: KeyLimits {
                rpm: self.rpm,
                tpm: self.tpm,
            },
        })
    }
}

/// `--store`, else `--config`'s `[store] path`, else the default.
pub(super) fn resolve_store(
    store: Option<&Path>,
    config: Option<&Path>,
) -> Result<PathBuf, String> {
    if let Some(path) = store {
        return Ok(path.to_path_buf());
    }
    let store = match config {
        // Only `[store]`: the providers' `${VAR}`s need not be set here.
        Some(file) => StoreConfig::load(file).map_err(|e| e.to_string())?,
        None => StoreConfig::default(),
    };
    store.resolved_path().ok_or_else(|| {
        "this platform has no data directory: give --store PATH, or `[store] path` in --config"
            .to_string()
    })
}

/// The store at `path`, which must exist: revoking in a new, empty file
/// would only hide a wrong path.
fn open_existing(path: &Path) -> Result<SqliteStore, String> {
    if !path.exists() {
        return Err(format!(
            "no store at {} (`tollgate keys create` makes one; is the path right?)",
            path.display()
        ));
    }
    SqliteStore::open(path).map_err(|e| e.to_string())
}

async fn why_not_rotated(store: &SqliteStore, id: &str, path: &Path) -> String {
    let keys = match store.list().await {
        Ok(keys) => keys,
        Err(e) => return e.to_string(),
    };
    let Some(key) = keys.iter().find(|r| r.id == id) else {
        return format!("no key `{id}` in {}", path.display());
    };
    if let Some(why) = key.unusable_at(unix_now()) {
        return format!("cannot rotate {id}: {why}");
    }
    match keys.iter().find(|r| r.rotated_from.as_deref() == Some(id)) {
        Some(next) => format!(
            "cannot rotate {id}: it was already rotated into {}; rotate that one, or revoke {id} to stop it now",
            next.id
        ),
        None => format!("cannot rotate {id}"),
    }
}

/// Prints a new key once: alone on a line, or in a JSON object (what
/// `keys list --json` shows of it, and the key).
fn show_key(record: &KeyRecord, key: &NewKey, json: bool) {
    if json {
        let mut out = table::json(record, unix_now());
        out["key"] = key.expose().into();
        println!("{out}");
    } else {
        println!("{}", key.expose());
    }
}
