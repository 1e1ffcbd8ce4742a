//! proxy-wasm glue: the only code that talks to the host. Thin on purpose.
//!
//! `abi` is what the host calls, `host` what we call; `http` turns a finished request into
//! metric updates, `root` holds a configuration and runs the samplers; `body` (the module built
//! with the `bodies` feature only) copies the JSON bodies body rules read.

/// Logs a request-time problem (`message` makes the line) within the budget of its call site
/// (`crate::logbudget`): a broken host call on every request must not flood Envoy's log, nor
/// hide another problem's first lines.
macro_rules! warn_limited {
    ($message:expr) => {{
        static BUDGET: $crate::logbudget::LogBudget = $crate::logbudget::LogBudget::new();
        if let Some(n) = BUDGET.admit() {
            log::warn!("{} (problem #{n})", ($message)());
        }
    }};
}

mod abi;
#[cfg(feature = "bodies")]
mod body;
mod host;
mod http;
mod root;
mod vm;

use host::Level;

/// `log` records go to Envoy's log; a panic is logged at critical level before the VM dies.
fn install_logging() {
    struct HostLogger;
    impl log::Log for HostLogger {
        fn enabled(&self, metadata: &log::Metadata) -> bool {
            metadata.level() <= log::max_level()
        }
        fn log(&self, record: &log::Record) {
            let level = match record.level() {
                log::Level::Error => Level::Error,
                log::Level::Warn => Level::Warn,
                log::Level::Info => Level::Info,
                _ => Level::Debug,
            };
            host::log(level, &format!("app_metrics: {}", record.args()));
        }
        fn flush(&self) {}
    }
    static LOGGER: HostLogger = HostLogger;
    // Fails only if a logger is already set, which then keeps working.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
    std::panic::set_hook(Box::new(|info| {
        host::log(Level::Critical, &format!("app_metrics: panic: {info}"));
    }));
}
