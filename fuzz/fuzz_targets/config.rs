//! `.env` lines and configuration values: the input is read as a `.env` file (dotenvy, as
//! start-up reads it); each pair naming a setting becomes that setting's flag, and the
//! service's configuration is built from them. Nothing may panic, whatever the values.
#![no_main]

use api_guard_server::{Cli, Config};
use libfuzzer_sys::fuzz_target;

/// Each variable and its flag.
const SETTINGS: [(&str, &str); 28] = [
    ("AUTH_REQUIRE_AT_JWT", "--require-at-jwt"),
    ("AUTH_ISSUER", "--issuer"),
    ("OKTA_DOMAIN", "--okta-domain"),
    ("OKTA_AUTH_SERVER", "--okta-auth-server"),
    ("AUTH_AUDIENCE", "--audience"),
    ("AUTH_JWKS_URI", "--jwks-uri"),
    ("AUTH_TOKEN_URL", "--token-url"),
    ("AUTH_ALGORITHMS", "--algorithms"),
    ("AUTH_LEEWAY_SECS", "--leeway-secs"),
    ("AUTH_REQUIRED_SCOPES", "--required-scopes"),
    ("AUTH_JWKS_MIN_REFRESH_SECS", "--jwks-min-refresh-secs"),
    ("AUTH_JWKS_MAX_REFRESH_SECS", "--jwks-max-refresh-secs"),
    ("AUTH_JWKS_COOLDOWN_SECS", "--jwks-cooldown-secs"),
    ("AUTH_JWKS_MAX_STALE_SECS", "--jwks-max-stale-secs"),
    ("AUTH_TOKEN_CACHE_BYTES", "--token-cache-bytes"),
    ("BIND_ADDR", "--bind"),
    ("PUBLIC_URL", "--public-url"),
    ("WORKERS", "--workers"),
    ("CORS_ALLOWED_ORIGINS", "--cors-allowed-origins"),
    ("SHUTDOWN_TIMEOUT_SECS", "--shutdown-timeout-secs"),
    ("SHUTDOWN_DRAIN_SECS", "--shutdown-drain-secs"),
    ("KEEP_ALIVE_SECS", "--keep-alive-secs"),
    ("TRUSTED_PROXIES", "--trusted-proxies"),
    ("METRICS_ADDR", "--metrics-addr"),
    ("LOG_FORMAT", "--log-format"),
    ("RUST_LOG", "--log"),
    ("DEV_CLIENT_ID", "--dev-client-id"),
    ("DEV_CLIENT_SECRET", "--dev-client-secret"),
];

fuzz_target!(|data: &[u8]| {
    let mut args = vec!["api-guard".to_owned()];
    for item in dotenvy::from_read_iter(data).take(64) {
        let Ok((key, value)) = item else { continue };
        if key == "DEV" {
            args.push("--dev".to_owned());
        } else if let Some((_, flag)) = SETTINGS.iter().find(|(env, _)| *env == key) {
            args.push(format!("{flag}={value}"));
        }
    }
    if let Ok(cli) = Cli::from_args_only(args) {
        let _ = Config::from_cli(cli);
    }
});
