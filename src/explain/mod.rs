//! `api-guard explain TOKEN`: why a token is accepted or refused, check by check.
//!
//! It reads the service's own settings (environment, `.env`, flags), starts the same
//! [`Guard`] (discovery and key fetch included) and asks it to
//! [`explain`](api_guard::Guard::explain) the token: the verdicts come from the guard's own
//! validator, key store, introspection and scope check, not from a copy. This module only
//! reads the token and prints the report ([`report`]).
//!
//! Exit codes: 0 valid, 1 refused, 2 a configuration or usage error, or a token that could
//! not be checked (keys or introspection unavailable: the service would answer 503).

mod report;

use std::io::Read;
use std::process::ExitCode;

use api_guard::{AuthError, Guard};

use crate::config::{Cli, Config, ExplainArgs};
use crate::startup::StartupError;

/// The longest token read from stdin; the validator refuses anything past 8 KiB anyway.
const MAX_STDIN_BYTES: u64 = 64 * 1024;

/// Runs the subcommand and returns its exit code.
pub async fn run(cli: Cli, args: ExplainArgs) -> ExitCode {
    let token = match token_of(&args.token) {
        Ok(token) => token,
        Err(problem) => return usage(&problem),
    };
    let config = match Config::from_cli(cli) {
        Ok(config) => config,
        Err(error) => return usage(&error),
    };
    // Warnings only (an introspection endpoint that fails says why); no request log.
    crate::telemetry::init_logger(config.log_format, "warn");
    let guard = match Guard::start(config.auth.clone()) {
        Ok(guard) => guard,
        Err(error) => return usage(&StartupError::from(error)),
    };
    guard.first_load().await;
    let explanation = guard.explain(&token).await;
    // The warnings (why introspection failed) before the report they explain.
    log::logger().flush();
    let report = report::Report::new(&guard, &explanation);
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    match &explanation.result {
        Ok(_) => ExitCode::SUCCESS,
        Err(AuthError::KeysUnavailable { .. } | AuthError::IntrospectionUnavailable { .. }) => {
            ExitCode::from(2)
        }
        Err(_) => ExitCode::FAILURE,
    }
}

/// The token from the argument, or from stdin for `-`; a `Bearer ` prefix is dropped.
fn token_of(argument: &str) -> Result<String, String> {
    let text = if argument == "-" {
        let mut text = String::new();
        std::io::stdin()
            .take(MAX_STDIN_BYTES)
            .read_to_string(&mut text)
            .map_err(|e| format!("TOKEN: cannot read the token from stdin ({e})"))?;
        text
    } else {
        argument.to_owned()
    };
    let trimmed = text.trim();
    let token = match trimmed.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ if trimmed.eq_ignore_ascii_case("bearer") => "",
        _ => trimmed,
    };
    if token.is_empty() {
        let source = if argument == "-" { "stdin" } else { "TOKEN" };
        return Err(format!(
            "TOKEN: no token in {source}; pass the access token, or `-` and the token on stdin"
        ));
    }
    Ok(token.to_owned())
}

fn usage(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_prefix_and_whitespace_are_dropped_and_an_empty_token_refused() {
        assert_eq!(token_of(" Bearer abc.def.ghi \n"), Ok("abc.def.ghi".into()));
        assert_eq!(token_of("bearer  x"), Ok("x".into()));
        assert_eq!(token_of("x"), Ok("x".into()));
        for empty in ["", "  ", "Bearer "] {
            assert!(
                token_of(empty).is_err_and(|e| e.starts_with("TOKEN: no token")),
                "{empty:?}"
            );
        }
    }
}
