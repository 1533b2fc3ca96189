//! Start-up: logging, failing with one line, binding, and the ready line.

use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

/// Why an example could not start. Its `Display` is the one line printed to stderr; it never
/// contains a password or a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartError(String);

impl StartError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, whatever the underlying error printed.
        for (i, line) in self.0.lines().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(line.trim())?;
        }
        Ok(())
    }
}

impl std::error::Error for StartError {}

/// Installs the log subscriber: `filter` is an `EnvFilter` directive (`RUST_LOG`), lines go
/// to stdout without colours.
///
/// Records of the `log` crate (which actix-web and Rocket use) are deliberately not
/// forwarded: Rocket logs request lines with their query string, which can hold a token.
pub fn init_logging(filter: &str) -> Result<(), StartError> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|e| StartError::new(format!("RUST_LOG is not a valid log filter: {e}")))?;
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::io::stdout)
        .finish();
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|e| StartError::new(format!("cannot install the logger: {e}")))
}

/// What every example does first: read the environment, install logging, build the app
/// (connecting to Redis and opening the database).
pub async fn prepare() -> Result<(crate::Config, std::sync::Arc<crate::App>), StartError> {
    let config = crate::Config::from_env()?;
    init_logging(&config.log_filter)?;
    // Boxed: building the app is a deep future; inlined into each framework's main future
    // it overflows the compiler's layout query depth.
    let app = Box::pin(crate::App::build(&config, install_metrics())).await?;
    Ok((config, app))
}

/// Installs the process's metrics recorder (Prometheus text, rendered by `GET /metrics`):
/// keygate records through the `metrics` facade into it.
fn install_metrics() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    match metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder() {
        Ok(handle) => Some(handle),
        Err(error) => {
            tracing::warn!(%error, "no metrics recorder: GET /metrics answers 503");
            None
        }
    }
}

/// Binds a non-blocking listener on `addr` (what axum, actix-web and poem take).
pub fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    let listener = TcpListener::bind(addr)
        .map_err(|e| StartError::new(format!("cannot listen on {addr}: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| StartError::new(format!("cannot listen on {addr}: {e}")))?;
    Ok(listener)
}

/// Logs the one line that says the example serves requests now, with its backend and
/// whether the session near cache is on.
pub fn announce_ready(
    framework: &str,
    addr: SocketAddr,
    backend: &str,
    near_cache: crate::NearCacheState,
) {
    tracing::info!(
        "keygate example ({framework}) ready on http://{addr} (backend: {backend}) \
         (session near cache: {near_cache})"
    );
}

/// Completes when the process is asked to stop: Ctrl-C (`SIGINT`), or `SIGTERM` on Unix.
/// Every example shuts down gracefully on it, and open event streams close on it.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Prints `error` as one line to stderr and returns the failure exit code.
pub fn fail(framework: &str, error: &StartError) -> ExitCode {
    eprintln!("keygate example ({framework}): {error}");
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_errors_are_one_line() {
        let e = StartError::new("first\n  second\r\nthird");
        assert_eq!(e.to_string(), "first second third");
    }
}
