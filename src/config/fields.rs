//! Parsers for single settings: each turns raw text into a checked value, or one
//! [`ConfigError`] naming the variable and the fix.

use std::net::SocketAddr;
use std::time::Duration;

use api_guard::{Algorithm, AlgorithmError, is_https_or_loopback};
use url::Url;

use super::{Cli, ConfigError, DEFAULT_ALGORITHMS, DEFAULT_AUDIENCE, Issuer, error};
use crate::telemetry::{LogFormat, TrustedProxies};

pub(super) fn issuer(cli: &Cli) -> Result<Issuer, ConfigError> {
    if cli.dev {
        return Ok(Issuer::Development);
    }
    let issuers = issuer_list(
        ("AUTH_ISSUER (--issuer)", &cli.issuer),
        (
            "OKTA_OAUTH2_ISSUER (--okta-oauth2-issuer)",
            &cli.okta_oauth2_issuer,
        ),
    )?;
    let domain = non_empty(&cli.okta_domain);
    match (issuers, domain) {
        (Some(_), Some(_)) => Err(error(
            "AUTH_ISSUER (--issuer)",
            "set either AUTH_ISSUER or OKTA_DOMAIN, not both",
        )),
        (Some(urls), None) => Ok(Issuer::Urls(urls)),
        (None, Some(domain)) => {
            let servers = items(
                "OKTA_AUTH_SERVER (--okta-auth-server)",
                &cli.okta_auth_server,
            )?;
            if let Some(twice) = servers
                .iter()
                .enumerate()
                .find_map(|(i, server)| servers[..i].contains(server).then_some(server))
            {
                return Err(error(
                    "OKTA_AUTH_SERVER (--okta-auth-server)",
                    format!("`{twice}` is listed twice; list each authorization server once"),
                ));
            }
            let urls = servers
                .iter()
                .map(|server| okta_issuer(domain, server))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Issuer::Urls(urls))
        }
        (None, None) => Err(error("AUTH_ISSUER (--issuer)", missing_issuer(cli))),
    }
}

/// The issuers of `AUTH_ISSUER` or its alias (a comma-separated list each), or `None` when
/// neither is set: either name, or both when their lists are the same.
fn issuer_list(
    (name, value): (&'static str, &Option<String>),
    (alias_name, alias_value): (&'static str, &Option<String>),
) -> Result<Option<Vec<String>>, ConfigError> {
    let list = |name, value| non_empty(value).map(|v| items(name, v)).transpose();
    match (list(name, value)?, list(alias_name, alias_value)?) {
        (Some(a), Some(b)) if a != b => Err(error(
            name,
            format!(
                "differs from {alias_name}, which names the same setting; set one of the two, or both to the same value"
            ),
        )),
        (Some(a), _) => Ok(Some(a)),
        (None, b) => Ok(b),
    }
}

/// A comma-separated list in which every item counts: an empty one (`a,,b`, a trailing `,`)
/// is a mistake, named rather than skipped. A list is checked for repeats by the library,
/// which knows each item's meaning.
fn items(setting: &'static str, value: &str) -> Result<Vec<String>, ConfigError> {
    let items: Vec<String> = value.split(',').map(|i| i.trim().to_owned()).collect();
    if let Some(n) = items.iter().position(String::is_empty) {
        return Err(error(
            setting,
            format!(
                "item {} of `{value}` is empty; separate several with single commas, e.g. https://dev-123456.okta.com/oauth2/default,https://dev-123456.okta.com/oauth2/aus0second",
                n + 1
            ),
        ));
    }
    Ok(items)
}

/// Why no issuer is configured, and what to set: another tool's name for it, when one is
/// set, is named with the variable to copy it to.
fn missing_issuer(cli: &Cli) -> String {
    let foreign = [
        ("ISSUER_BASE_URL", &cli.issuer_base_url),
        ("OIDC_ISSUER", &cli.oidc_issuer),
    ];
    match foreign.iter().find(|(_, value)| non_empty(value).is_some()) {
        Some((name, _)) => format!(
            "no issuer configured: {name} is set, but api-guard does not read it; set AUTH_ISSUER (or OKTA_OAUTH2_ISSUER) to the same URL"
        ),
        None => "no issuer configured: set AUTH_ISSUER (e.g. https://dev-123456.okta.com/oauth2/default) or OKTA_DOMAIN, or run with --dev for the built-in development issuer".to_owned(),
    }
}

/// The value of a setting that has two names, `AUTH_*` and an alias: either, or both when
/// they agree; two different values stop start-up naming both.
fn alias<'a>(
    (name, value): (&'static str, &'a Option<String>),
    (alias_name, alias_value): (&'static str, &'a Option<String>),
) -> Result<Option<&'a str>, ConfigError> {
    match (non_empty(value), non_empty(alias_value)) {
        (Some(a), Some(b)) if a != b => Err(error(
            name,
            format!(
                "differs from {alias_name}, which names the same setting; set one of the two, or both to the same value"
            ),
        )),
        (Some(a), _) => Ok(Some(a)),
        (None, b) => Ok(b),
    }
}

/// `AUTH_AUDIENCE` or its alias `OKTA_OAUTH2_AUDIENCE`; `api://default` when neither is
/// set. Set but empty is kept, for the library to refuse.
pub(super) fn audience(cli: &Cli) -> Result<Vec<String>, ConfigError> {
    let given = alias(
        ("AUTH_AUDIENCE (--audience)", &cli.audience),
        (
            "OKTA_OAUTH2_AUDIENCE (--okta-oauth2-audience)",
            &cli.okta_oauth2_audience,
        ),
    )?;
    let set_but_empty = cli.audience.is_some() || cli.okta_oauth2_audience.is_some();
    Ok(match given {
        Some(value) => audiences(value),
        None if set_but_empty => Vec::new(),
        None => audiences(DEFAULT_AUDIENCE),
    })
}

pub(super) fn dev_warnings(cli: &Cli) -> Vec<String> {
    let external = [
        &cli.issuer,
        &cli.okta_oauth2_issuer,
        &cli.okta_domain,
        &cli.jwks_uri,
        &cli.token_url,
    ];
    if cli.dev && external.iter().any(|setting| non_empty(setting).is_some()) {
        vec!["--dev ignores AUTH_ISSUER, OKTA_DOMAIN, AUTH_JWKS_URI and AUTH_TOKEN_URL: tokens and keys come from the development issuer".to_owned()]
    } else {
        Vec::new()
    }
}

pub(super) fn log_filter(value: &str) -> Result<String, ConfigError> {
    match env_filter::Builder::new().try_parse(value) {
        Ok(_) => Ok(value.to_owned()),
        Err(_) => Err(error(
            "RUST_LOG (--log)",
            format!(
                "`{value}` is not a log filter; use e.g. `info`, `warn` or `info,api_guard=debug`"
            ),
        )),
    }
}

pub(super) fn okta_issuer(domain: &str, server: &str) -> Result<String, ConfigError> {
    let setting = "OKTA_DOMAIN (--okta-domain)";
    let host = domain
        .strip_prefix("https://")
        .unwrap_or(domain)
        .trim_end_matches('/');
    if host.is_empty()
        || host.contains(['/', ' ', ':', '?', '#', '@'])
        || domain.starts_with("http://")
    {
        return Err(error(
            setting,
            format!(
                "`{domain}` is not a host name; write it as in the Admin Console, e.g. dev-123456.okta.com"
            ),
        ));
    }
    let server = server.trim();
    if server.is_empty() || server.contains(['/', ' ', '?', '#']) {
        return Err(error(
            "OKTA_AUTH_SERVER (--okta-auth-server)",
            format!(
                "`{server}` is not an authorization server id; use `default` or the id from Security > API"
            ),
        ));
    }
    let issuer = format!("https://{host}/oauth2/{server}");
    check_url(setting, &issuer, "dev-123456.okta.com")?;
    Ok(issuer)
}

pub(super) fn check_url(
    setting: &'static str,
    value: &str,
    example: &str,
) -> Result<(), ConfigError> {
    let url = Url::parse(value).map_err(|e| {
        error(
            setting,
            format!("`{value}` is not a URL ({e}); expected e.g. {example}"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(error(
            setting,
            format!("`{value}` must be an https URL, e.g. {example}"),
        ));
    }
    if !is_https_or_loopback(value) {
        return Err(error(
            setting,
            format!(
                "`{value}` uses http; https is required except for loopback hosts (127.0.0.1, ::1, localhost)"
            ),
        ));
    }
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(error(
            setting,
            "must not have a query, fragment, user name or password",
        ));
    }
    Ok(())
}

/// `PUBLIC_URL`: an http(s) origin, https unless loopback, returned without a trailing `/`.
/// A path is refused: the routes, `/.well-known/oauth-protected-resource` included, are
/// served at the root, and RFC 9728 §3.1 places the well-known segment right after the host.
pub(super) fn public_url(value: &Option<String>) -> Result<Option<String>, ConfigError> {
    let setting = "PUBLIC_URL (--public-url)";
    let Some(value) = non_empty(value) else {
        return Ok(None);
    };
    check_url(setting, value, "https://api.example.com")?;
    let has_path = Url::parse(value).is_ok_and(|url| url.path() != "/");
    if has_path {
        return Err(error(
            setting,
            format!(
                "`{value}` has a path; give the scheme, host and optional port clients use, e.g. https://api.example.com"
            ),
        ));
    }
    Ok(Some(value.trim_end_matches('/').to_owned()))
}

/// Comma-separated; the library refuses an empty list.
fn audiences(value: &str) -> Vec<String> {
    split_list(value, &[','])
}

pub(super) fn algorithms(value: &str) -> Result<Vec<Algorithm>, ConfigError> {
    let setting = "AUTH_ALGORITHMS (--algorithms)";
    let mut algorithms = Vec::new();
    for name in split_list(value, &[',']) {
        match name.parse::<Algorithm>() {
            Ok(alg) => algorithms.push(alg),
            Err(why @ (AlgorithmError::SharedSecret | AlgorithmError::Unknown)) => {
                return Err(error(
                    setting,
                    format!("`{name}` {why}; choose from {DEFAULT_ALGORITHMS}"),
                ));
            }
            Err(why) => return Err(error(setting, format!("`{name}` {why}"))),
        }
    }
    if algorithms.is_empty() {
        return Err(error(
            setting,
            format!("must name at least one algorithm, e.g. RS256 (default: {DEFAULT_ALGORITHMS})"),
        ));
    }
    Ok(algorithms)
}

/// Comma- or space-separated; the library checks each is a scope name (RFC 6749 §3.3).
pub(super) fn scopes(value: &str) -> Vec<String> {
    split_list(value, &[',', ' '])
}

pub(super) fn bind(value: &str) -> Result<SocketAddr, ConfigError> {
    value.trim().parse().map_err(|_| {
        error(
            "BIND_ADDR (--bind)",
            format!("`{value}` is not an address:port, e.g. 127.0.0.1:8080 or 0.0.0.0:8080"),
        )
    })
}

pub(super) fn workers(value: Option<&str>) -> Result<usize, ConfigError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(std::thread::available_parallelism().map_or(1, usize::from)),
        Some(value) => match value.parse::<usize>() {
            Ok(n) if (1..=1024).contains(&n) => Ok(n),
            _ => Err(error(
                "WORKERS (--workers)",
                format!("`{value}` is not a number of threads from 1 to 1024"),
            )),
        },
    }
}

pub(super) fn origins(value: &str) -> Result<Vec<String>, ConfigError> {
    let setting = "CORS_ALLOWED_ORIGINS (--cors-allowed-origins)";
    let mut origins = Vec::new();
    for origin in split_list(value, &[',', ' ']) {
        if origin != "*" {
            let parsed = Url::parse(&origin)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"));
            let canonical = parsed.map(|u| u.origin().ascii_serialization());
            if canonical.as_deref() != Some(origin.as_str()) {
                return Err(error(
                    setting,
                    format!(
                        "`{origin}` is not an origin; write scheme, host and optional port only, e.g. {}",
                        canonical.unwrap_or_else(|| "https://app.example.com".into())
                    ),
                ));
            }
        }
        origins.push(origin);
    }
    // actix-cors reads a mix by its order: a later origin cancels `*`, and `*` after an
    // origin allows every origin. Either meaning could be a surprise, so neither is taken.
    if origins.iter().any(|o| o == "*") && origins.iter().any(|o| o != "*") {
        return Err(error(
            setting,
            "mixes `*` with origins; use one or the other: `*` alone for any origin, or a list of origins",
        ));
    }
    Ok(origins)
}

/// `true` or `false` (any case, spaces around ignored).
pub(super) fn boolean(setting: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim() {
        v if v.eq_ignore_ascii_case("true") => Ok(true),
        v if v.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(error(
            setting,
            format!("`{value}` is neither true nor false"),
        )),
    }
}

pub(super) fn trusted_proxies(value: &str) -> Result<TrustedProxies, ConfigError> {
    TrustedProxies::parse(value)
        .map_err(|problem| error("TRUSTED_PROXIES (--trusted-proxies)", problem))
}

pub(super) fn metrics_addr(value: Option<&str>) -> Result<Option<SocketAddr>, ConfigError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(value) => value.parse().map(Some).map_err(|_| {
            error(
                "METRICS_ADDR (--metrics-addr)",
                format!("`{value}` is not an address:port, e.g. 127.0.0.1:9090 or 0.0.0.0:9090"),
            )
        }),
    }
}

pub(super) fn log_format(value: &str) -> Result<LogFormat, ConfigError> {
    let name = value.trim().to_ascii_lowercase();
    LogFormat::ALL
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, format)| *format)
        .ok_or_else(|| {
            error(
                "LOG_FORMAT (--log-format)",
                format!(
                    "`{value}` is not a log format; use `text` (the default), `json`, `ecs` or `gcp`"
                ),
            )
        })
}

/// `AUTH_CA_FILE`: the file's bytes; the library checks that they are PEM certificates.
pub(super) fn ca_file(path: &std::path::Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| {
        error(
            "AUTH_CA_FILE (--ca-file)",
            format!(
                "cannot read `{}` ({e}); give a PEM file of CA certificates",
                path.display()
            ),
        )
    })
}

pub(super) fn token_cache_bytes(value: &str) -> Result<usize, ConfigError> {
    value.trim().parse::<usize>().map_err(|_| {
        error(
            "AUTH_TOKEN_CACHE_BYTES (--token-cache-bytes)",
            format!(
                "`{value}` is not a number of bytes from 0 (cache off) to 1073741824; the default is 4194304 (4 MiB)"
            ),
        )
    })
}

pub(super) fn seconds(setting: &'static str, value: &str) -> Result<u64, ConfigError> {
    value.trim().parse().map_err(|_| {
        error(
            setting,
            format!("`{value}` is not a whole number of seconds"),
        )
    })
}

pub(super) fn duration(
    setting: &'static str,
    value: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Duration, ConfigError> {
    let secs = seconds(setting, value)?;
    if !range.contains(&secs) {
        return Err(error(
            setting,
            format!(
                "`{secs}` is outside {} to {} seconds",
                range.start(),
                range.end()
            ),
        ));
    }
    Ok(Duration::from_secs(secs))
}

pub(super) fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

pub(super) fn non_empty_setting(
    setting: &'static str,
    value: String,
) -> Result<String, ConfigError> {
    if value.trim().is_empty() {
        Err(error(setting, "must not be empty"))
    } else {
        Ok(value)
    }
}

pub(super) fn split_list(value: &str, separators: &[char]) -> Vec<String> {
    value
        .split(separators)
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `DPOP_REPLAY_STORE`: empty for the in-process store, or `redis://host:port`, returned as
/// `host:port`. No user, password, database or TLS: a Redis on the private network.
pub(super) fn redis_address(value: &str) -> Result<Option<String>, ConfigError> {
    let setting = "DPOP_REPLAY_STORE (--dpop-replay-store)";
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let address = value
        .strip_prefix("redis://")
        .map(|rest| rest.trim_end_matches('/'))
        .filter(|rest| {
            rest.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty()
                    && host
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'[' | b']' | b':'))
                    && port.parse::<u16>().is_ok_and(|port| port > 0)
            })
        })
        .ok_or_else(|| {
            error(
                setting,
                format!("`{value}` is not redis://host:port, e.g. redis://127.0.0.1:6379 (no user, password or database)"),
            )
        })?;
    Ok(Some(address.to_owned()))
}
