//! Logs to stderr, filtered by `RUST_LOG`: one set-up for the daemon and
//! for the lab that embeds it, so both read the same variable the same way.

/// Installs the stderr subscriber; `default_filter` applies when `RUST_LOG`
/// is unset or invalid.
pub fn init_stderr_logs(default_filter: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .init();
}
