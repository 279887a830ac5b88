//! The introspection settings (`AUTH_INTROSPECTION*`), read into the library's
//! [`Introspection`]. With `--dev`, api-guard introspects as the development client unless
//! told otherwise.

use std::time::Duration;

use api_guard::{Introspection, IntrospectionMode};

use super::fields::{check_url, duration, non_empty};
use super::{Cli, ConfigError, DevClient, error};

const MODE: &str = "AUTH_INTROSPECTION (--introspection)";
const URL: &str = "AUTH_INTROSPECTION_URL (--introspection-url)";
const CLIENT_ID: &str = "AUTH_INTROSPECTION_CLIENT_ID (--introspection-client-id)";
const CLIENT_SECRET: &str = "AUTH_INTROSPECTION_CLIENT_SECRET (--introspection-client-secret)";
const CACHE: &str = "AUTH_INTROSPECTION_CACHE_SECS (--introspection-cache-secs)";
const TIMEOUT: &str = "AUTH_INTROSPECTION_TIMEOUT_MS (--introspection-timeout-ms)";

/// `None` when introspection is off.
pub(super) fn introspection(
    cli: &Cli,
    dev: Option<&DevClient>,
) -> Result<Option<Introspection>, ConfigError> {
    let mode: IntrospectionMode = cli
        .introspection
        .parse()
        .map_err(|problem: String| error(MODE, problem))?;
    if mode == IntrospectionMode::Off {
        return Ok(None);
    }
    let needed = |setting, value: &Option<String>, dev_value: Option<&str>| {
        non_empty(value)
            .or(dev_value)
            .map(str::to_owned)
            .ok_or_else(|| {
                error(
                    setting,
                    format!(
                        "is required with AUTH_INTROSPECTION={}: the credentials of api-guard's own client at the issuer (Okta: an API Services app)",
                        mode.name()
                    ),
                )
            })
    };
    let client_id = needed(
        CLIENT_ID,
        &cli.introspection_client_id,
        dev.map(|d| d.client_id.as_str()),
    )?;
    let client_secret = needed(
        CLIENT_SECRET,
        &cli.introspection_client_secret,
        dev.map(|d| d.client_secret.expose()),
    )?;
    let timeout_ms: u64 = cli.introspection_timeout_ms.trim().parse().map_err(|_| {
        error(
            TIMEOUT,
            format!(
                "`{}` is not a whole number of milliseconds",
                cli.introspection_timeout_ms
            ),
        )
    })?;
    if !(1..=60_000).contains(&timeout_ms) {
        return Err(error(
            TIMEOUT,
            format!("`{timeout_ms}` is outside 1 to 60000 milliseconds"),
        ));
    }
    let mut introspection = Introspection::new(mode, client_id, client_secret)
        .with_cache_ttl(duration(CACHE, &cli.introspection_cache_secs, 0..=86_400)?)
        .with_timeout(Duration::from_millis(timeout_ms));
    // With --dev the development issuer's own endpoint is discovered.
    if let Some(url) = non_empty(&cli.introspection_url).filter(|_| dev.is_none()) {
        check_url(
            URL,
            url,
            "https://dev-123456.okta.com/oauth2/default/v1/introspect",
        )?;
        introspection = introspection.with_endpoint(url);
    }
    Ok(Some(introspection))
}

/// The variable behind one of the library's introspection setting names.
pub(super) fn setting_name(setting: &str) -> Option<&'static str> {
    Some(match setting {
        "introspection_client_id" => CLIENT_ID,
        "introspection_client_secret" => CLIENT_SECRET,
        "introspection_endpoint" => URL,
        "introspection_timeout" => TIMEOUT,
        "introspection_cache_ttl" => CACHE,
        _ => return None,
    })
}
