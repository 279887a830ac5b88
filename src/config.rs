//! Settings: every one is a flag and an environment variable (a `.env` file is loaded
//! first), parsed once into a validated [`Config`] (DESIGN.md, "Configuration contract").
//!
//! A missing or malformed setting becomes one [`ConfigError`] line naming the variable and
//! the fix; the binary exits with code 2.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Parser;
use jsonwebtoken::Algorithm;
use url::{Host, Url};

use crate::auth::jwks::RefreshPolicy;

/// The algorithms allowed when `AUTH_ALGORITHMS` is not set: every asymmetric one we verify.
pub const DEFAULT_ALGORITHMS: &str = "RS256,RS384,RS512,PS256,PS384,PS512,ES256,ES384,EdDSA";
/// The audience expected when `AUTH_AUDIENCE` is not set: Okta's default authorization server's.
pub const DEFAULT_AUDIENCE: &str = "api://default";

/// The raw settings as given on the command line or in the environment. Not `Debug`: it
/// holds the development client secret.
#[derive(Parser)]
#[command(
    name = "api-guard",
    version,
    about = "Protects HTTP APIs with OAuth 2.0 access tokens from Okta or any OpenID Connect issuer",
    after_help = "Every setting can also be given in the environment or a .env file in the working directory."
)]
pub struct Cli {
    /// Run the built-in development authorization server on the same port and trust only it.
    /// For trying the service without an Okta org; never for production.
    #[arg(long)]
    pub dev: bool,

    /// Issuer URL of the authorization server, e.g. https://dev-123456.okta.com/oauth2/default.
    /// https is required except for loopback hosts.
    #[arg(long, env = "AUTH_ISSUER", value_name = "URL")]
    pub issuer: Option<String>,

    /// Okta domain, e.g. dev-123456.okta.com: shorthand for the issuer
    /// https://{OKTA_DOMAIN}/oauth2/{OKTA_AUTH_SERVER}.
    #[arg(long, env = "OKTA_DOMAIN", value_name = "HOST")]
    pub okta_domain: Option<String>,

    /// Okta authorization server id, used with OKTA_DOMAIN.
    #[arg(
        long,
        env = "OKTA_AUTH_SERVER",
        value_name = "ID",
        default_value = "default"
    )]
    pub okta_auth_server: String,

    /// Expected audience (`aud`) of access tokens; comma-separated for several.
    #[arg(long, env = "AUTH_AUDIENCE", value_name = "AUD", default_value = DEFAULT_AUDIENCE)]
    pub audience: String,

    /// The issuer's JWKS URL, to skip discovery. Default: discovered from the issuer's metadata.
    #[arg(long, env = "AUTH_JWKS_URI", value_name = "URL")]
    pub jwks_uri: Option<String>,

    /// Allowed signing algorithms, comma-separated; asymmetric only.
    #[arg(long, env = "AUTH_ALGORITHMS", value_name = "ALGS", default_value = DEFAULT_ALGORITHMS)]
    pub algorithms: String,

    /// Clock-skew allowance for `exp`, `nbf` and `iat`, in seconds (at most 300).
    #[arg(
        long,
        env = "AUTH_LEEWAY_SECS",
        value_name = "SECS",
        default_value = "60"
    )]
    pub leeway_secs: String,

    /// Scopes every protected route requires, comma- or space-separated.
    #[arg(
        long,
        env = "AUTH_REQUIRED_SCOPES",
        value_name = "SCOPES",
        default_value = ""
    )]
    pub required_scopes: String,

    /// Least time between two key-set refreshes, whatever the issuer's Cache-Control says.
    #[arg(
        long,
        env = "AUTH_JWKS_MIN_REFRESH_SECS",
        value_name = "SECS",
        default_value = "300"
    )]
    pub jwks_min_refresh_secs: String,

    /// Longest time between two key-set refreshes, whatever the issuer's Cache-Control says.
    #[arg(
        long,
        env = "AUTH_JWKS_MAX_REFRESH_SECS",
        value_name = "SECS",
        default_value = "86400"
    )]
    pub jwks_max_refresh_secs: String,

    /// Least time between two key-set fetches caused by tokens with an unknown `kid`.
    #[arg(
        long,
        env = "AUTH_JWKS_COOLDOWN_SECS",
        value_name = "SECS",
        default_value = "30"
    )]
    pub jwks_cooldown_secs: String,

    /// How long past its lifetime the last good key set stays in use while the issuer is
    /// unreachable; then protected routes answer 503.
    #[arg(
        long,
        env = "AUTH_JWKS_MAX_STALE_SECS",
        value_name = "SECS",
        default_value = "86400"
    )]
    pub jwks_max_stale_secs: String,

    /// Listen address.
    #[arg(
        long,
        env = "BIND_ADDR",
        value_name = "ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub bind: String,

    /// Worker threads. Default: the number of cores.
    #[arg(long, env = "WORKERS", value_name = "N")]
    pub workers: Option<String>,

    /// Origins allowed to call from a browser, comma-separated (`*` for any). Default: none
    /// (CORS off).
    #[arg(
        long,
        env = "CORS_ALLOWED_ORIGINS",
        value_name = "ORIGINS",
        default_value = ""
    )]
    pub cors_allowed_origins: String,

    /// Log filter, env_logger syntax (e.g. `info`, `api_guard=debug`).
    #[arg(
        long = "log",
        env = "RUST_LOG",
        value_name = "FILTER",
        default_value = "info"
    )]
    pub log_filter: String,

    /// With --dev: the development issuer's client id.
    #[arg(
        long,
        env = "DEV_CLIENT_ID",
        value_name = "ID",
        default_value = "api-guard-dev"
    )]
    pub dev_client_id: String,

    /// With --dev: the development issuer's client secret.
    #[arg(
        long,
        env = "DEV_CLIENT_SECRET",
        value_name = "SECRET",
        default_value = "api-guard-dev-secret",
        hide_env_values = true
    )]
    pub dev_client_secret: String,
}

/// Where tokens come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issuer {
    /// The built-in development issuer (`--dev`); its URL is known once the port is bound.
    Development,
    /// An external authorization server.
    Url(IssuerUrl),
}

/// An issuer URL, exactly as tokens carry it in `iss` (never normalised).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerUrl(String);

impl IssuerUrl {
    /// Checks `url` as `AUTH_ISSUER` would be checked.
    pub fn parse(url: &str) -> Result<IssuerUrl, ConfigError> {
        let setting = "AUTH_ISSUER (--issuer)";
        check_url(setting, url, "https://dev-123456.okta.com/oauth2/default")?;
        Ok(IssuerUrl(url.to_owned()))
    }

    /// The URL as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A client secret: never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        ClientSecret(secret.into())
    }

    /// The secret itself; do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret(***)")
    }
}

/// The validated settings of the service.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where tokens come from.
    pub issuer: Issuer,
    /// Accepted audiences; a token's `aud` must contain one.
    pub audiences: Vec<String>,
    /// A fixed JWKS URL, or `None` to discover it.
    pub jwks_uri: Option<String>,
    /// Allowed signing algorithms (asymmetric only).
    pub algorithms: Vec<Algorithm>,
    /// Clock-skew allowance in seconds.
    pub leeway_secs: u64,
    /// Scopes every protected route requires.
    pub required_scopes: Vec<String>,
    /// Key-set refresh timing.
    pub refresh: RefreshPolicy,
    /// Listen address.
    pub bind: SocketAddr,
    /// Worker threads.
    pub workers: usize,
    /// CORS origins; empty means CORS off, `*` any origin.
    pub cors_allowed_origins: Vec<String>,
    /// env_logger filter.
    pub log_filter: String,
    /// The development issuer's client id (with `--dev`).
    pub dev_client_id: String,
    /// The development issuer's client secret (with `--dev`).
    pub dev_client_secret: ClientSecret,
    /// Start-up notices for the log, once the logger runs.
    pub warnings: Vec<String>,
}

/// A setting that stops start-up: which one, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct ConfigError {
    /// The variable and flag, e.g. "AUTH_ISSUER (--issuer)".
    pub setting: &'static str,
    /// What was wrong and how to fix it.
    pub problem: String,
}

/// Loads `.env` from the working directory into the environment, if there is one. A line
/// that does not parse stops start-up; it is named by number only, as it may hold a secret.
pub fn load_dotenv() -> Result<(), ConfigError> {
    // The working directory only: `dotenvy::dotenv` would also search parent directories.
    match dotenvy::from_path(".env") {
        Ok(_) => Ok(()),
        Err(e) if e.not_found() => Ok(()),
        Err(dotenvy::Error::LineParse(line, _)) => {
            let number = std::fs::read_to_string(".env")
                .ok()
                .and_then(|text| text.lines().position(|l| l.trim() == line.trim()))
                .map_or_else(|| "a line".to_owned(), |n| format!("line {}", n + 1));
            Err(error(
                ".env",
                format!("{number} is not KEY=VALUE; fix or remove it"),
            ))
        }
        Err(_) => Err(error(
            ".env",
            "cannot be read; check its permissions and encoding",
        )),
    }
}

fn error(setting: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        setting,
        problem: problem.into(),
    }
}

impl Config {
    /// The default of every setting (the environment is not read), with tokens from
    /// `issuer`: the starting point for a service that embeds the library, and for tests.
    pub fn for_issuer(issuer: &str) -> Result<Config, ConfigError> {
        Ok(Config {
            issuer: Issuer::Url(IssuerUrl::parse(issuer)?),
            audiences: vec![DEFAULT_AUDIENCE.to_owned()],
            jwks_uri: None,
            algorithms: algorithms(DEFAULT_ALGORITHMS)?,
            leeway_secs: 60,
            required_scopes: Vec::new(),
            refresh: RefreshPolicy::default(),
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: workers(None)?,
            cors_allowed_origins: Vec::new(),
            log_filter: "info".to_owned(),
            dev_client_id: "api-guard-dev".to_owned(),
            dev_client_secret: ClientSecret::new("api-guard-dev-secret"),
            warnings: Vec::new(),
        })
    }

    /// Validates raw settings.
    pub fn from_cli(cli: Cli) -> Result<Config, ConfigError> {
        let warnings = dev_warnings(&cli);
        let issuer = issuer(&cli)?;
        let jwks_uri = match non_empty(&cli.jwks_uri).filter(|_| !cli.dev) {
            None => None,
            Some(uri) => {
                check_url(
                    "AUTH_JWKS_URI (--jwks-uri)",
                    uri,
                    "https://dev-123456.okta.com/oauth2/default/v1/keys",
                )?;
                Some(uri.to_owned())
            }
        };
        let leeway_secs = seconds("AUTH_LEEWAY_SECS (--leeway-secs)", &cli.leeway_secs)?;
        if leeway_secs > 300 {
            return Err(error(
                "AUTH_LEEWAY_SECS (--leeway-secs)",
                format!(
                    "`{leeway_secs}` is more than 300 seconds of clock skew; fix the clocks (NTP) and use 60 or less"
                ),
            ));
        }
        const WEEK: u64 = 7 * 86_400;
        let refresh = RefreshPolicy {
            min_lifetime: duration(
                "AUTH_JWKS_MIN_REFRESH_SECS (--jwks-min-refresh-secs)",
                &cli.jwks_min_refresh_secs,
                1..=WEEK,
            )?,
            max_lifetime: duration(
                "AUTH_JWKS_MAX_REFRESH_SECS (--jwks-max-refresh-secs)",
                &cli.jwks_max_refresh_secs,
                1..=WEEK,
            )?,
            cooldown: duration(
                "AUTH_JWKS_COOLDOWN_SECS (--jwks-cooldown-secs)",
                &cli.jwks_cooldown_secs,
                1..=3600,
            )?,
            max_stale: duration(
                "AUTH_JWKS_MAX_STALE_SECS (--jwks-max-stale-secs)",
                &cli.jwks_max_stale_secs,
                0..=WEEK,
            )?,
            ..RefreshPolicy::default()
        };
        if refresh.max_lifetime < refresh.min_lifetime {
            return Err(error(
                "AUTH_JWKS_MAX_REFRESH_SECS (--jwks-max-refresh-secs)",
                "must not be less than AUTH_JWKS_MIN_REFRESH_SECS",
            ));
        }
        Ok(Config {
            issuer,
            audiences: audiences(&cli.audience)?,
            jwks_uri,
            algorithms: algorithms(&cli.algorithms)?,
            leeway_secs,
            required_scopes: scopes(&cli.required_scopes)?,
            refresh,
            bind: bind(&cli.bind)?,
            workers: workers(cli.workers.as_deref())?,
            cors_allowed_origins: origins(&cli.cors_allowed_origins)?,
            log_filter: log_filter(&cli.log_filter)?,
            dev_client_id: non_empty_setting("DEV_CLIENT_ID (--dev-client-id)", cli.dev_client_id)?,
            dev_client_secret: ClientSecret(non_empty_setting(
                "DEV_CLIENT_SECRET (--dev-client-secret)",
                cli.dev_client_secret,
            )?),
            warnings,
        })
    }
}

fn issuer(cli: &Cli) -> Result<Issuer, ConfigError> {
    let issuer = non_empty(&cli.issuer);
    let domain = non_empty(&cli.okta_domain);
    if cli.dev {
        return Ok(Issuer::Development);
    }
    match (issuer, domain) {
        (Some(_), Some(_)) => Err(error(
            "AUTH_ISSUER (--issuer)",
            "set either AUTH_ISSUER or OKTA_DOMAIN, not both",
        )),
        (Some(url), None) => Ok(Issuer::Url(IssuerUrl::parse(url)?)),
        (None, Some(domain)) => okta_issuer(domain, &cli.okta_auth_server).map(Issuer::Url),
        (None, None) => Err(error(
            "AUTH_ISSUER (--issuer)",
            "no issuer configured: set AUTH_ISSUER (e.g. https://dev-123456.okta.com/oauth2/default) or OKTA_DOMAIN, or run with --dev for the built-in development issuer",
        )),
    }
}

fn dev_warnings(cli: &Cli) -> Vec<String> {
    let external = [&cli.issuer, &cli.okta_domain, &cli.jwks_uri];
    if cli.dev && external.iter().any(|setting| non_empty(setting).is_some()) {
        vec!["--dev ignores AUTH_ISSUER, OKTA_DOMAIN and AUTH_JWKS_URI: tokens and keys come from the development issuer".to_owned()]
    } else {
        Vec::new()
    }
}

fn log_filter(value: &str) -> Result<String, ConfigError> {
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

fn okta_issuer(domain: &str, server: &str) -> Result<IssuerUrl, ConfigError> {
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
    Ok(IssuerUrl(issuer))
}

/// Whether `url` is https, or http to a loopback host (127.0.0.0/8, ::1, localhost).
pub fn is_https_or_loopback(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
            None => false,
        },
        _ => false,
    }
}

fn check_url(setting: &'static str, value: &str, example: &str) -> Result<(), ConfigError> {
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
    if !is_https_or_loopback(&url) {
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

fn audiences(value: &str) -> Result<Vec<String>, ConfigError> {
    let list = split_list(value, &[',']);
    if list.is_empty() {
        return Err(error(
            "AUTH_AUDIENCE (--audience)",
            "must name at least one audience, e.g. api://default (Okta: Security > API > your server > Audience)",
        ));
    }
    Ok(list)
}

fn algorithms(value: &str) -> Result<Vec<Algorithm>, ConfigError> {
    let setting = "AUTH_ALGORITHMS (--algorithms)";
    let mut algorithms = Vec::new();
    for name in split_list(value, &[',']) {
        let alg: Algorithm = name.parse().map_err(|_| {
            error(
                setting,
                format!("`{name}` is not a supported algorithm; choose from {DEFAULT_ALGORITHMS}"),
            )
        })?;
        if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            return Err(error(
                setting,
                format!(
                    "`{name}` is a shared-secret algorithm and is never allowed; choose from {DEFAULT_ALGORITHMS}"
                ),
            ));
        }
        if !algorithms.contains(&alg) {
            algorithms.push(alg);
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

/// RFC 6749 §3.3: a scope token is printable ASCII without space, `"` or `\\`.
fn scopes(value: &str) -> Result<Vec<String>, ConfigError> {
    let list = split_list(value, &[',', ' ']);
    match list.iter().find(|s| {
        !s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    }) {
        Some(bad) => Err(error(
            "AUTH_REQUIRED_SCOPES (--required-scopes)",
            format!("{bad:?} is not a scope name (printable ASCII without quotes or backslashes)"),
        )),
        None => Ok(list),
    }
}

fn bind(value: &str) -> Result<SocketAddr, ConfigError> {
    value.trim().parse().map_err(|_| {
        error(
            "BIND_ADDR (--bind)",
            format!("`{value}` is not an address:port, e.g. 127.0.0.1:8080 or 0.0.0.0:8080"),
        )
    })
}

fn workers(value: Option<&str>) -> Result<usize, ConfigError> {
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

fn origins(value: &str) -> Result<Vec<String>, ConfigError> {
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
    Ok(origins)
}

fn seconds(setting: &'static str, value: &str) -> Result<u64, ConfigError> {
    value.trim().parse().map_err(|_| {
        error(
            setting,
            format!("`{value}` is not a whole number of seconds"),
        )
    })
}

fn duration(
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

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn non_empty_setting(setting: &'static str, value: String) -> Result<String, ConfigError> {
    if value.trim().is_empty() {
        Err(error(setting, "must not be empty"))
    } else {
        Ok(value)
    }
}

fn split_list(value: &str, separators: &[char]) -> Vec<String> {
    value
        .split(separators)
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command line alone: the environment of the test run is not read.
    fn cli(args: &[&str]) -> Cli {
        use clap::{CommandFactory, FromArgMatches};
        let command = Cli::command().mut_args(|arg| arg.env(None::<&str>));
        let matches =
            command.get_matches_from(std::iter::once("api-guard").chain(args.iter().copied()));
        Cli::from_arg_matches(&matches).unwrap()
    }

    fn problem(args: &[&str]) -> String {
        Config::from_cli(cli(args))
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn okta_domain_and_server_make_the_issuer() {
        let config = Config::from_cli(cli(&[
            "--okta-domain",
            "https://dev-1.okta.com/",
            "--okta-auth-server",
            "aus1",
        ]));
        assert_eq!(
            config.map(|c| c.issuer).ok(),
            Some(Issuer::Url(IssuerUrl(
                "https://dev-1.okta.com/oauth2/aus1".into()
            )))
        );
    }

    #[test]
    fn http_issuers_are_refused_unless_loopback() {
        assert!(
            problem(&["--issuer", "http://example.com/oauth2/default"])
                .contains("https is required")
        );
        for ok in [
            "http://127.0.0.1:9000/x",
            "http://127.8.9.1/x",
            "http://[::1]:8/x",
            "http://localhost/x",
        ] {
            assert_eq!(problem(&["--issuer", ok]), "", "{ok}");
        }
    }

    #[test]
    fn shared_secret_and_unknown_algorithms_are_refused() {
        assert!(
            problem(&["--dev", "--algorithms", "RS256,HS256"])
                .contains("`HS256` is a shared-secret")
        );
        assert!(problem(&["--dev", "--algorithms", "none"]).contains("`none` is not a supported"));
    }

    #[test]
    fn cors_origins_must_be_bare_origins() {
        assert!(
            problem(&["--dev", "--cors-allowed-origins", "https://a.example/"])
                .contains("e.g. https://a.example")
        );
        let config = Config::from_cli(cli(&[
            "--dev",
            "--cors-allowed-origins",
            "https://a.example, http://localhost:3000",
        ]));
        assert_eq!(
            config.map(|c| c.cors_allowed_origins).ok(),
            Some(vec![
                "https://a.example".to_owned(),
                "http://localhost:3000".to_owned()
            ])
        );
    }

    #[test]
    fn a_missing_issuer_names_both_variables_and_dev() {
        let message = problem(&[]);
        assert!(
            message.starts_with("AUTH_ISSUER (--issuer): no issuer configured"),
            "{message}"
        );
        assert!(
            message.contains("OKTA_DOMAIN") && message.contains("--dev"),
            "{message}"
        );
    }

    #[test]
    fn dev_mode_warns_that_it_ignores_external_issuer_settings() {
        let config = Config::from_cli(cli(&["--dev", "--okta-domain", "dev-1.okta.com"])).unwrap();
        assert_eq!(config.issuer, Issuer::Development);
        assert!(
            config.warnings[0].contains("--dev ignores"),
            "{:?}",
            config.warnings
        );
    }

    #[test]
    fn a_malformed_log_filter_is_refused() {
        assert!(problem(&["--dev", "--log", "x==="]).starts_with("RUST_LOG (--log)"));
        assert_eq!(problem(&["--dev", "--log", "warn,api_guard=debug"]), "");
    }

    #[test]
    fn client_secrets_are_redacted_in_debug_output() {
        assert_eq!(
            format!("{:?}", ClientSecret::new("s3cret")),
            "ClientSecret(***)"
        );
    }
}
