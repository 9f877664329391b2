//! The `tollgate` binary: the gateway server, a config checker, gateway
//! keys, and the mock upstream.

mod cli;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// glibc's allocator showed up at ~12% of the gateway's CPU under load
/// (docs/BENCHMARKS.md); mimalloc's thread-local free lists cost less.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::sync::Arc;

use tollgate::config::{AuthMode, Config};
use tollgate::server::Layers;
use tollgate::store::{KeyStore, SqliteStore};

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
        /// full stack) or `none` (the edge straight onto the providers, to
        /// measure what the layers cost).
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
                let auth = match config.auth.mode {
                    AuthMode::None => None,
                    _ => {
                        let store = open_store(&config)?;
                        let auth = tollgate::server::authenticator(&config, Some(store))
                            .map_err(|e| e.message().to_string())?
                            .expect("mode is not none");
                        auth.refresh().await.map_err(|e| e.message().to_string())?;
                        Some(auth)
                    }
                };
                tollgate::server::check_exposure(&config, auth.as_ref())?;
                let app =
                    tollgate::server::assemble(&config, layers, auth).map_err(|e| e.to_string())?;
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
                tollgate::server::serve_with(
                    app,
                    listener,
                    tollgate::server::shutdown_signal(),
                    serve_config,
                )
                .await
                .map_err(|e| e.to_string())
            })
        }
        Command::Keys(args) => run(cli::keys::run(args)),
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

/// The embedded store of `[store]`, for the gateway keys.
fn open_store(config: &Config) -> Result<Arc<dyn KeyStore>, String> {
    let path = config
        .store
        .resolved_path()
        .ok_or("no data directory on this platform: set `[store] path`")?;
    let store = SqliteStore::open(&path)
        .map_err(|e| format!("cannot open the store at {}: {e}", path.display()))?;
    Ok(Arc::new(store))
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
