//! The api-guard service: wiring only.

use std::process::ExitCode;

use api_guard_server::config::Command;
use api_guard_server::{Application, Cli, Config};
use clap::Parser;

#[actix_web::main]
async fn main() -> ExitCode {
    if let Err(error) = api_guard_server::config::load_dotenv() {
        return fail(&error);
    }
    let mut cli = Cli::parse();
    match cli.command.take() {
        // Docker reserves exit code 2: a bad BIND_ADDR is unhealthy (1) like any failure.
        Some(Command::Healthcheck) => {
            return match api_guard_server::config::bind_addr(&cli) {
                Ok(bind) => api_guard_server::healthcheck::run(bind),
                Err(error) => {
                    println!("unhealthy: {error}");
                    ExitCode::FAILURE
                }
            };
        }
        Some(Command::Explain(args)) => return api_guard_server::explain::run(cli, args).await,
        None => {}
    }
    let config = match Config::from_cli(cli) {
        Ok(config) => config,
        Err(error) => return fail(&error),
    };
    api_guard_server::telemetry::init_logger(config.log_format, &config.log_filter);
    // Off a terminal the logger writes in batches from a thread of its own: out with the
    // last lines (the `stopped: ...` one) however main ends, returning or unwinding.
    let _flush_logs = FlushLogsOnDrop;
    for warning in &config.warnings {
        log::warn!("{warning}");
    }
    // Before start-up, so that a SIGTERM during it is handled, not the default exit.
    let signals = match api_guard_server::shutdown::Signals::listen() {
        Ok(signals) => signals,
        Err(error) => return fail(&error),
    };
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(error) => return fail(&error),
    };
    api_guard_server::startup::print_banner(&app);
    match app.run_until_signalled(signals).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    // The lines logged so far first (they come before the error), and none lost at exit.
    log::logger().flush();
    eprintln!("error: {error}");
    ExitCode::from(2)
}

/// Flushes the logger when dropped (see `api_guard_server::telemetry::init_logger`).
struct FlushLogsOnDrop;

impl Drop for FlushLogsOnDrop {
    fn drop(&mut self) {
        log::logger().flush();
    }
}
