//! The `tollgate` binary: the gateway server, a config checker, gateway
//! keys, and the mock upstream.

mod cli;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

/// glibc's allocator showed up at ~12% of the gateway's CPU under load
/// (docs/BENCHMARKS.md); mimalloc's thread-local free lists cost less.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use tollgate::budget::Budgets;
use tollgate::config::{AuthMode, Config};
use tollgate::server::Layers;
use tollgate::store::{KeyStore, SqliteStore};
use tollgate::usage::Ledger;

#[derive(Parser)]
#[command(
    name = "tollgate",
    version,
    about = "An LLM gateway built from tower layers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// The TOML config file. Without one, providers come from
        /// OPENAI_API_KEY, ANTHROPIC_API_KEY and GEMINI_API_KEY.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Address to listen on (overrides `[server] listen`).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Which layers to assemble around the providers: `default` (the
        /// full stack), `routing` (fallback, provider order, retries and
        /// timeouts, without rate limits, budgets or the ledger) or `none`
        /// (the edge straight onto the providers), to measure what the
        /// layers cost.
        #[arg(long, value_enum, default_value_t = Layers::Default)]
        layers: Layers,
    },
    /// Check a config file and report the field at fault.
    CheckConfig {
        /// The TOML config file.
        file: PathBuf,
    },
    /// Manage gateway keys: create, list, revoke, rotate. Works while the
    /// gateway runs on the same store.
    Keys(cli::keys::KeysArgs),
    /// Spend and tokens from the ledger, grouped by day, model, provider,
    /// user, team, tag or credential type (what `GET /v1/report` answers).
    Usage(cli::usage::UsageArgs),
    /// Manage budgets: set, list, delete. A running gateway on the same
    /// store applies a change within a second.
    Budgets(cli::budgets::BudgetsArgs),
    /// Run the mock upstream (OpenAI, Anthropic and Gemini formats) for
    /// tests, benchmarks and the offline quickstart.
    MockUpstream {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9100")]
        listen: SocketAddr,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes are noise in a log file or a pipe to a collector.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => match Config::load(&file) {
            Ok(c) => {
                for w in c.warnings() {
                    eprintln!("warning: {w}");
                }
                println!(
                    "{}: ok ({} providers, {} models)",
                    file.display(),
                    c.providers.len(),
                    c.models.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Serve {
            config,
            listen,
            layers,
        } => {
            let mut config = match config {
                Some(path) => match Config::load(&path) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::FAILURE;
                    }
                },
                None => Config::from_env(&|k| std::env::var(k).ok()),
            };
            if let Some(addr) = listen {
                config.server.listen = addr;
            }
            for w in config.warnings() {
                tracing::warn!("{w}");
            }
            if config.providers.is_empty() {
                tracing::warn!("no providers configured: every request will answer 404");
            }
            run(async move {
                let store = open_store(&config, config.store.resolved_path())?;
                // Mode `none` reads no keys; the spend ledger is kept in
                // every mode.
                let keys = store
                    .clone()
                    .filter(|_| config.auth.mode != AuthMode::None)
                    .map(|s| Arc::new(s) as Arc<dyn KeyStore>);
                let ledger = store
                    .clone()
                    .map(|s| Ledger::open(Arc::new(s)))
                    .transpose()
                    .map_err(|e| e.to_string())?;
                let auth = tollgate::server::authenticator(&config, keys)
                    .map_err(|e| e.message().to_string())?;
                let mut budgets = Budgets::new(config.budget_specs());
                if let Some(store) = store {
                    budgets = budgets.with_store(Arc::new(store));
                    budgets.refresh().await.map_err(|e| e.to_string())?;
                }
                if let Some(auth) = &auth {
                    auth.refresh().await.map_err(|e| e.message().to_string())?;
                }
                tollgate::server::check_exposure(&config, auth.as_ref())?;
                let app = tollgate::server::assemble(
                    &config,
                    layers,
                    auth,
                    tollgate::server::Control {
                        metering: tollgate::usage::Metering {
                            ledger: ledger.clone(),
                            ..tollgate::usage::Metering::from_config(&config)
                        },
                        budgets,
                    },
                )
                .map_err(|e| e.to_string())?;
                let mut serve_config = tollgate::server::ServeConfig::from_config(&config.server);
                serve_config.max_connections =
                    tollgate::server::fit_to_open_file_limit(serve_config.max_connections);
                let listener = tokio::net::TcpListener::bind(config.server.listen)
                    .await
                    .map_err(|e| format!("cannot listen on {}: {e}", config.server.listen))?;
                tracing::info!(
                    addr = %listener.local_addr().map_err(|e| e.to_string())?,
                    providers = config.providers.len(),
                    "tollgate listening"
                );
                let served = tollgate::server::serve_with(
                    app,
                    listener,
                    tollgate::server::shutdown_signal(),
                    serve_config,
                )
                .await
                .map_err(|e| e.to_string());
                if let Some(ledger) = ledger {
                    flush_ledger(&ledger).await;
                }
                served
            })
        }
        Command::Keys(args) => run(cli::keys::run(args)),
        Command::Usage(args) => run(cli::usage::run(args)),
        Command::Budgets(args) => run(cli::budgets::run(args)),
        Command::MockUpstream { listen } => run(async move {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            tracing::info!(addr = %listen, "mock upstream listening");
            tollgate::mock::serve(listener, tollgate::server::shutdown_signal())
                .await
                .map_err(|e| e.to_string())
        }),
    }
}

/// The embedded store at `path` (`[store] path`, or the default under
/// the data directory), for the gateway keys, the budgets and the spend
/// ledger.
///
/// Without a path (no `[store] path` and no data directory on this
/// platform) the gateway serves without a store, with a warning: keys
/// in the config and OIDC tokens still work, and in mode `auto` it
/// serves openly on loopback and `check_exposure` refuses any other
/// address, as with an empty store; no spend is recorded and only the
/// config's budgets apply. Only mode `required` with no other credential
/// needs the store, and then it is an error.
fn open_store(config: &Config, path: Option<PathBuf>) -> Result<Option<SqliteStore>, String> {
    let Some(path) = path else {
        let auth = &config.auth;
        if auth.mode == AuthMode::Required && auth.keys.is_empty() && auth.oidc.is_none() {
            return Err(
                "[auth] mode = \"required\" with no key or token in the config needs the key store, and this platform has no data directory: set `[store] path`"
                    .into(),
            );
        }
        tracing::warn!("no data directory on this platform and no `[store] path`: serving without the store (keys made with `tollgate keys` are not read, and no spend is recorded)");
        return Ok(None);
    };
    // The StoreError names the file and says what failed.
    SqliteStore::open(&path)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Waits for the ledger's last rows to be written, for a while: a store
/// that stays broken must not keep the process from exiting.
async fn flush_ledger(ledger: &Ledger) {
    const FLUSH: std::time::Duration = std::time::Duration::from_secs(10);
    if tokio::time::timeout(FLUSH, ledger.flush()).await.is_err() {
        tracing::error!("the ledger's last rows could not be written within 10 s: they are lost");
    }
}

fn run(fut: impl std::future::Future<Output = Result<(), String>>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_store_path_serve_goes_on_unless_only_the_store_has_keys() {
        let config = |text: &str| Config::parse(text, &|_| None).unwrap();
        for text in [
            "",
            "[auth]\nmode = \"required\"\nkeys = [{ name = \"ci\", key = \"0123456789abcdefX\" }]\n",
        ] {
            assert!(open_store(&config(text), None).unwrap().is_none(), "{text}");
        }
        let e = open_store(&config("[auth]\nmode = \"required\"\n"), None)
            .err()
            .unwrap();
        assert!(e.contains("set `[store] path`"), "{e}");
    }

    #[test]
    fn a_store_that_cannot_open_says_so_once() {
        let dir = tempfile::tempdir().unwrap();
        let e = open_store(&Config::default(), Some(dir.path().to_path_buf()))
            .err()
            .unwrap();
        let shown = dir.path().display().to_string();
        assert_eq!(e.matches(&shown).count(), 1, "{e}");
        assert_eq!(e.matches("store").count(), 1, "{e}");
    }
}
