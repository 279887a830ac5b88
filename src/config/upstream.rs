//! The gateway's settings (`UPSTREAM_*`): checked here, used by [`crate::gateway`].

use url::Url;

use super::fields::{boolean, duration, non_empty};
use super::{Cli, ConfigError, error};
use crate::gateway::UpstreamSettings;

const URL_SETTING: &str = "UPSTREAM_URL (--upstream-url)";
const BODY_SETTING: &str = "UPSTREAM_MAX_BODY_BYTES (--upstream-max-body-bytes)";

/// `Some` in gateway mode (`UPSTREAM_URL` set); the other `UPSTREAM_*` settings are checked
/// either way, so a typo never waits for the day the gateway is turned on.
pub(super) fn upstream(cli: &Cli) -> Result<Option<UpstreamSettings>, ConfigError> {
    let forward_token = boolean(
        "UPSTREAM_FORWARD_TOKEN (--upstream-forward-token)",
        &cli.upstream_forward_token,
    )?;
    let preserve_host = boolean(
        "UPSTREAM_PRESERVE_HOST (--upstream-preserve-host)",
        &cli.upstream_preserve_host,
    )?;
    let connect_timeout = duration(
        "UPSTREAM_CONNECT_TIMEOUT_SECS (--upstream-connect-timeout-secs)",
        &cli.upstream_connect_timeout_secs,
        1..=300,
    )?;
    let timeout = duration(
        "UPSTREAM_TIMEOUT_SECS (--upstream-timeout-secs)",
        &cli.upstream_timeout_secs,
        1..=3600,
    )?;
    let max_body_bytes = max_body_bytes(&cli.upstream_max_body_bytes)?;
    let Some(url) = non_empty(&cli.upstream_url) else {
        return Ok(None);
    };
    Ok(Some(UpstreamSettings {
        origin: origin(url)?,
        forward_token,
        preserve_host,
        connect_timeout,
        timeout,
        max_body_bytes,
    }))
}

/// An `http` or `https` origin: scheme, host and port, nothing else (the upstream receives
/// the request's own path).
fn origin(value: &str) -> Result<String, ConfigError> {
    let example = "e.g. http://127.0.0.1:3000 or https://orders.internal";
    let url = Url::parse(value).map_err(|e| {
        error(
            URL_SETTING,
            format!("`{value}` is not a URL ({e}); {example}"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(error(
            URL_SETTING,
            format!("`{value}` is not an http:// or https:// URL with a host; {example}"),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(error(
            URL_SETTING,
            "must not carry a user name or password; remove them (the upstream gets the X-Auth-* identity headers)",
        ));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(error(
            URL_SETTING,
            format!(
                "`{value}` has a path, query or fragment; give the origin only ({example}): the upstream receives each request's own path"
            ),
        ));
    }
    Ok(url.origin().ascii_serialization())
}

/// Bytes from 1 to 1 TiB.
fn max_body_bytes(value: &str) -> Result<u64, ConfigError> {
    const MAX: u64 = 1 << 40;
    match value.trim().parse::<u64>() {
        Ok(bytes) if (1..=MAX).contains(&bytes) => Ok(bytes),
        _ => Err(error(
            BODY_SETTING,
            format!(
                "`{value}` is not a number of bytes from 1 to {MAX}; the default is 67108864 (64 MiB)"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_is_an_origin() {
        assert_eq!(
            origin("http://127.0.0.1:3000").ok().as_deref(),
            Some("http://127.0.0.1:3000")
        );
        assert_eq!(
            origin("https://Orders.Internal/").ok().as_deref(),
            Some("https://orders.internal")
        );
        assert_eq!(
            origin("http://[::1]:80").ok().as_deref(),
            Some("http://[::1]")
        );
        for (bad, needle) in [
            ("orders.internal:3000", "not an http"),
            ("ftp://a.example", "not an http"),
            ("http://a.example/api", "has a path"),
            ("http://a.example/?x=1", "has a path"),
            ("http://user:pw@a.example", "user name"),
            ("not a url", "is not a URL"),
        ] {
            let message = origin(bad)
                .map(|_| String::new())
                .unwrap_or_else(|e| e.to_string());
            assert!(
                message.starts_with(URL_SETTING) && message.contains(needle),
                "{bad}: {message}"
            );
        }
    }

    #[test]
    fn the_body_limit_is_bytes_from_one_to_a_tebibyte() {
        assert_eq!(max_body_bytes("1"), Ok(1));
        assert_eq!(max_body_bytes(" 67108864 "), Ok(64 << 20));
        for bad in ["0", "-1", "64MiB", "", "1099511627777"] {
            let message = max_body_bytes(bad).unwrap_err().to_string();
            assert!(message.starts_with(BODY_SETTING), "{bad}: {message}");
        }
    }
}
