//! Settings: every one is a flag and an environment variable (a `.env` file is loaded
//! first), parsed once into a validated [`Config`]. The token-validation settings become
//! the library's [`AuthSettings`]; the rest are the service's own.
//!
//! A missing or malformed setting becomes one [`ConfigError`] line naming the variable and
//! the fix; the binary exits with code 2.

mod cli;
mod fields;
mod introspection;
mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use api_guard::{AuthSettings, DpopMode, SettingsError};

pub use cli::{Cli, Command, DEFAULT_ALGORITHMS, DEFAULT_AUDIENCE, ExplainArgs};

use crate::gateway::UpstreamSettings;
use crate::gateway::policy::Policy;
use crate::telemetry::{LogFormat, TrustedProxies};
use fields::{
    algorithms, audience, bind, boolean, check_url, dev_warnings, duration, issuer, log_filter,
    log_format, metrics_addr, non_empty, non_empty_setting, origins, public_url, scopes, seconds,
    token_cache_bytes, trusted_proxies, workers,
};

/// Where tokens come from, before the listener is bound.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Issuer {
    /// The built-in development issuer (`--dev`); its URL is known once the port is bound.
    Development,
    /// External authorization servers, each exactly as its tokens carry it in `iss`: one,
    /// or several (`AUTH_ISSUER` is a comma-separated list).
    Urls(Vec<String>),
}

/// What happens between SIGTERM (or SIGINT) and exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shutdown {
    /// From the signal to exit, all included (`SHUTDOWN_TIMEOUT_SECS`).
    pub timeout: Duration,
    /// How long the service keeps serving, unready, before it stops accepting
    /// (`SHUTDOWN_DRAIN_SECS`); less than `timeout`.
    pub drain: Duration,
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

/// The development issuer's client, with `--dev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevClient {
    /// Its client id (`DEV_CLIENT_ID`).
    pub client_id: String,
    /// Its client secret (`DEV_CLIENT_SECRET`).
    pub client_secret: ClientSecret,
}

/// The validated settings of the service.
#[derive(Debug, Clone)]
pub struct Config {
    /// What a token must satisfy, and the key store's timing: the library's settings. With
    /// `--dev`, the issuer is the development issuer at `bind`, set again to the bound port.
    pub auth: AuthSettings,
    /// `Some` with `--dev`: run the development issuer on the service's own port.
    pub dev: Option<DevClient>,
    /// The issuer's token endpoint as configured (`AUTH_TOKEN_URL`), or `None` to name the
    /// discovered one (`/openapi.json` names it).
    pub token_url: Option<String>,
    /// The URL clients use to reach the service (`PUBLIC_URL`, no trailing `/`), or `None`
    /// to derive it per request from the `Host` header.
    pub public_url: Option<String>,
    /// Listen address.
    pub bind: SocketAddr,
    /// Worker threads.
    pub workers: usize,
    /// CORS origins; empty means CORS off, `*` any origin.
    pub cors_allowed_origins: Vec<String>,
    /// env_logger filter.
    pub log_filter: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Graceful shutdown timing.
    pub shutdown: Shutdown,
    /// How long an idle keep-alive connection stays open.
    pub keep_alive: Duration,
    /// Proxies whose forwarding headers name the client in logs.
    pub trusted_proxies: TrustedProxies,
    /// A separate listen address for `/metrics`, or `None` to serve it on `bind`.
    pub metrics_addr: Option<SocketAddr>,
    /// `DPOP_REPLAY_STORE`: a Redis `host:port` shared by the replicas, or `None` for the
    /// in-process store.
    pub dpop_replay_store: Option<String>,
    /// Start-up notices for the log, once the logger runs.
    pub warnings: Vec<String>,
    /// Gateway mode (`UPSTREAM_URL`): where and how requests are proxied; `None` to serve
    /// the sample API instead.
    pub upstream: Option<UpstreamSettings>,
    /// The gateway's route policy (`AUTH_POLICY_FILE`), read and checked with the rest of
    /// the settings; `None` when unset (the gateway then needs a token everywhere).
    pub policy: Option<Arc<Policy>>,
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
    /// `issuer`: the starting point for tests. The defaults are the command line's, so
    /// there is one place that states them.
    pub fn for_issuer(issuer: &str) -> Result<Config, ConfigError> {
        let cli = Cli::from_args_only(["api-guard".to_owned(), format!("--issuer={issuer}")])
            .map_err(|e| error("AUTH_ISSUER (--issuer)", e.kind().to_string()))?;
        Config::from_cli(cli)
    }

    /// Validates raw settings.
    pub fn from_cli(cli: Cli) -> Result<Config, ConfigError> {
        let warnings = dev_warnings(&cli);
        let upstream = upstream::upstream(&cli)?;
        let bind = bind(&cli.bind)?;
        let audiences = audience(&cli)?;
        let (issuers, dev) = match issuer(&cli)? {
            Issuer::Urls(urls) => (urls, None),
            Issuer::Development => {
                let dev = DevClient {
                    client_id: non_empty_setting(
                        "DEV_CLIENT_ID (--dev-client-id)",
                        cli.dev_client_id.clone(),
                    )?,
                    client_secret: ClientSecret(non_empty_setting(
                        "DEV_CLIENT_SECRET (--dev-client-secret)",
                        cli.dev_client_secret.clone(),
                    )?),
                };
                // Its URL until the port is bound; a non-loopback BIND_ADDR is refused then.
                let loopback = SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, bind.port()));
                (vec![dev_issuer_url(loopback)], Some(dev))
            }
        };
        let Some((first, additional)) = issuers.split_first() else {
            return Err(error("AUTH_ISSUER (--issuer)", "names no issuer"));
        };
        let mut auth = AuthSettings::new(first)
            .with_additional_issuers(additional)
            .with_audiences(audiences)
            .with_algorithms(algorithms(&cli.algorithms)?)
            .with_leeway(Duration::from_secs(seconds(
                "AUTH_LEEWAY_SECS (--leeway-secs)",
                &cli.leeway_secs,
            )?))
            .with_required_scopes(scopes(&cli.required_scopes))
            .with_require_at_jwt(boolean(
                "AUTH_REQUIRE_AT_JWT (--require-at-jwt)",
                &cli.require_at_jwt,
            )?)
            .with_token_cache_bytes(token_cache_bytes(&cli.token_cache_bytes)?);
        if let Some(uri) = non_empty(&cli.jwks_uri).filter(|_| dev.is_none()) {
            auth = auth.with_jwks_uri(uri);
        }
        const WEEK: u64 = 7 * 86_400;
        auth = auth
            .with_jwks_refresh_bounds(
                duration(
                    "AUTH_JWKS_MIN_REFRESH_SECS (--jwks-min-refresh-secs)",
                    &cli.jwks_min_refresh_secs,
                    1..=WEEK,
                )?,
                duration(
                    "AUTH_JWKS_MAX_REFRESH_SECS (--jwks-max-refresh-secs)",
                    &cli.jwks_max_refresh_secs,
                    1..=WEEK,
                )?,
            )
            .with_jwks_cooldown(duration(
                "AUTH_JWKS_COOLDOWN_SECS (--jwks-cooldown-secs)",
                &cli.jwks_cooldown_secs,
                1..=3600,
            )?)
            .with_jwks_max_stale(duration(
                "AUTH_JWKS_MAX_STALE_SECS (--jwks-max-stale-secs)",
                &cli.jwks_max_stale_secs,
                0..=WEEK,
            )?);
        if let Some(path) = &cli.ca_file {
            auth = auth.with_extra_root_certificates(fields::ca_file(path)?);
        }
        // curl's order: the lower-case names first.
        let https_proxy = cli
            .https_proxy_lowercase
            .as_ref()
            .or(cli.https_proxy.as_ref());
        if let Some(proxy) = https_proxy.filter(|p| !p.trim().is_empty()) {
            let no_proxy = cli.no_proxy_lowercase.as_ref().or(cli.no_proxy.as_ref());
            auth = auth.with_https_proxy(proxy, no_proxy.map_or("", String::as_str));
        }
        if let Some(settings) = introspection::introspection(&cli, dev.as_ref())? {
            auth = auth.with_introspection(settings);
        }
        auth.validate().map_err(auth_setting_error)?;
        let token_url = match non_empty(&cli.token_url).filter(|_| dev.is_none()) {
            None => None,
            Some(url) => {
                check_url(
                    "AUTH_TOKEN_URL (--token-url)",
                    url,
                    "https://dev-123456.okta.com/oauth2/default/v1/token",
                )?;
                Some(url.to_owned())
            }
        };
        let shutdown = Shutdown {
            timeout: duration(
                "SHUTDOWN_TIMEOUT_SECS (--shutdown-timeout-secs)",
                &cli.shutdown_timeout_secs,
                1..=3600,
            )?,
            drain: duration(
                "SHUTDOWN_DRAIN_SECS (--shutdown-drain-secs)",
                &cli.shutdown_drain_secs,
                0..=3600,
            )?,
        };
        if shutdown.drain >= shutdown.timeout {
            return Err(error(
                "SHUTDOWN_DRAIN_SECS (--shutdown-drain-secs)",
                format!(
                    "`{}` must be less than SHUTDOWN_TIMEOUT_SECS ({}), to leave time for the requests in flight",
                    shutdown.drain.as_secs(),
                    shutdown.timeout.as_secs()
                ),
            ));
        }
        let public_url = public_url(&cli.public_url)?;
        let auth = dpop_settings(
            auth,
            &cli.dpop,
            &cli.dpop_window_secs,
            public_url.as_deref(),
        )?;
        let auth = dpop_nonces(auth, &cli.dpop_nonces, cli.dpop_nonce_secret.as_deref())?;
        let metrics_addr = metrics_addr(cli.metrics_addr.as_deref())?;
        let mut warnings = warnings;
        // (--dev refuses a non-loopback bind at start-up instead.)
        if dev.is_none() {
            warnings.extend(exposure_warnings(bind, public_url.as_deref(), metrics_addr));
        }
        Ok(Config {
            auth,
            dev,
            token_url,
            public_url,
            bind,
            workers: workers(cli.workers.as_deref())?,
            cors_allowed_origins: origins(&cli.cors_allowed_origins)?,
            log_filter: log_filter(&cli.log_filter)?,
            log_format: log_format(&cli.log_format)?,
            shutdown,
            keep_alive: duration(
                "KEEP_ALIVE_SECS (--keep-alive-secs)",
                &cli.keep_alive_secs,
                1..=3600,
            )?,
            trusted_proxies: trusted_proxies(&cli.trusted_proxies)?,
            metrics_addr,
            dpop_replay_store: fields::redis_address(&cli.dpop_replay_store)?,
            warnings,
            upstream,
            policy: policy_file(non_empty(&cli.policy_file))?,
        })
    }
}

/// `DPOP_NONCES` and its `DPOP_NONCE_SECRET`, which must be set when nonces are on.
fn dpop_nonces(
    auth: AuthSettings,
    on: &str,
    secret: Option<&str>,
) -> Result<AuthSettings, ConfigError> {
    if !boolean("DPOP_NONCES (--dpop-nonces)", on)? {
        return Ok(auth);
    }
    let secret = secret.map(str::trim).filter(|s| !s.is_empty()).ok_or_else(|| {
        error(
            "DPOP_NONCE_SECRET (--dpop-nonce-secret)",
            "is required with DPOP_NONCES=true: the same random value on every replica, e.g. `openssl rand -base64 32`",
        )
    })?;
    let auth = auth.with_dpop_nonce_secret(secret.as_bytes());
    auth.validate().map_err(auth_setting_error)?;
    Ok(auth)
}

/// `AUTH_DPOP`, `DPOP_WINDOW_SECS`, and `PUBLIC_URL` for the proofs' `htu`.
fn dpop_settings(
    auth: AuthSettings,
    mode: &str,
    window_secs: &str,
    public_url: Option<&str>,
) -> Result<AuthSettings, ConfigError> {
    let mode: DpopMode = mode
        .trim()
        .parse()
        .map_err(|problem| error("AUTH_DPOP (--dpop)", problem))?;
    let window = duration(
        "DPOP_WINDOW_SECS (--dpop-window-secs)",
        window_secs,
        1..=3600,
    )?;
    let mut auth = auth.with_dpop(mode).with_dpop_window(window);
    if let Some(url) = public_url {
        auth = auth.with_public_url(url);
    }
    auth.validate().map_err(auth_setting_error)?;
    Ok(auth)
}

/// `AUTH_POLICY_FILE`, loaded now so that a bad file stops start-up naming its line.
fn policy_file(path: Option<&str>) -> Result<Option<Arc<Policy>>, ConfigError> {
    match path {
        None => Ok(None),
        Some(path) => Policy::load(std::path::Path::new(path))
            .map(|policy| Some(Arc::new(policy)))
            .map_err(|e| error("AUTH_POLICY_FILE (--policy-file)", e.to_string())),
    }
}

/// `BIND_ADDR` alone, for a subcommand that needs nothing else (`healthcheck`).
pub fn bind_addr(cli: &Cli) -> Result<SocketAddr, ConfigError> {
    bind(&cli.bind)
}

/// What a non-loopback `bind` exposes that the operator may not mean to: the `Host` header
/// reflected into the metadata and `/openapi.json` (no `PUBLIC_URL`), and `/metrics` beside
/// the API (no `METRICS_ADDR`).
fn exposure_warnings(
    bind: SocketAddr,
    public_url: Option<&str>,
    metrics_addr: Option<SocketAddr>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    if bind.ip().is_loopback() {
        return warnings;
    }
    if public_url.is_none() {
        warnings.push(format!(
            "BIND_ADDR {bind} is not loopback and PUBLIC_URL is unset: the protected-resource metadata and /openapi.json name whatever Host a client sends; set PUBLIC_URL to the URL clients use"
        ));
    }
    if metrics_addr.is_none() {
        warnings.push(format!(
            "BIND_ADDR {bind} is not loopback and METRICS_ADDR is unset: /metrics is served to every client of the API; set METRICS_ADDR (e.g. 127.0.0.1:9090, or a port only the scraper reaches)"
        ));
    }
    warnings
}

/// The development issuer's URL when the service listens on `addr`.
pub fn dev_issuer_url(addr: SocketAddr) -> String {
    format!("http://{addr}/oauth2/default")
}

/// The library's complaint about a setting, named by its variable and flag.
pub(crate) fn auth_setting_error(refused: SettingsError) -> ConfigError {
    let setting = match refused.setting {
        "issuer" | "additional_issuers" => "AUTH_ISSUER (--issuer)",
        "jwks_uri" => "AUTH_JWKS_URI (--jwks-uri)",
        "audiences" => "AUTH_AUDIENCE (--audience)",
        "algorithms" => "AUTH_ALGORITHMS (--algorithms)",
        "leeway" => "AUTH_LEEWAY_SECS (--leeway-secs)",
        "required_scopes" => "AUTH_REQUIRED_SCOPES (--required-scopes)",
        "jwks_refresh_bounds" => {
            // The floor and ceiling are two variables here: name both.
            return error(
                "AUTH_JWKS_MAX_REFRESH_SECS (--jwks-max-refresh-secs)",
                "must not be less than AUTH_JWKS_MIN_REFRESH_SECS",
            );
        }
        "jwks_cooldown" => "AUTH_JWKS_COOLDOWN_SECS (--jwks-cooldown-secs)",
        "jwks_max_stale" => "AUTH_JWKS_MAX_STALE_SECS (--jwks-max-stale-secs)",
        "token_cache_bytes" => "AUTH_TOKEN_CACHE_BYTES (--token-cache-bytes)",
        "extra_root_certificates" => "AUTH_CA_FILE (--ca-file)",
        "https_proxy" => "HTTPS_PROXY (--https-proxy)",
        "dpop_window" => "DPOP_WINDOW_SECS (--dpop-window-secs)",
        "dpop_nonce_secret" => "DPOP_NONCE_SECRET (--dpop-nonce-secret)",
        "public_url" => "PUBLIC_URL (--public-url)",
        other => introspection::setting_name(other).unwrap_or("AUTH_* settings"),
    };
    error(setting, refused.problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command line alone: the environment of the test run is not read.
    fn cli(args: &[&str]) -> Cli {
        Cli::from_args_only(std::iter::once("api-guard").chain(args.iter().copied())).unwrap()
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
            config.map(|c| c.auth.issuer().to_owned()).ok().as_deref(),
            Some("https://dev-1.okta.com/oauth2/aus1")
        );
    }

    #[test]
    fn auth_issuer_is_a_comma_separated_list_of_issuers_each_checked() {
        const A: &str = "https://dev-1.okta.com/oauth2/default";
        const B: &str = "https://dev-1.okta.com/oauth2/aus0second";
        let issuers = |args: &[&str]| {
            Config::from_cli(cli(args))
                .map(|c| c.auth.issuers().map(str::to_owned).collect::<Vec<_>>())
                .map_err(|e| e.to_string())
        };
        let both = Ok(vec![A.to_owned(), B.to_owned()]);
        assert_eq!(issuers(&["--issuer", &format!("{A}, {B}")]), both);
        assert_eq!(
            issuers(&[
                "--issuer",
                &format!("{A},{B}"),
                "--okta-oauth2-issuer",
                &format!("{A} ,{B}")
            ]),
            both,
            "the alias may repeat the same list"
        );
        assert_eq!(
            issuers(&[
                "--okta-domain",
                "dev-1.okta.com",
                "--okta-auth-server",
                "default, aus0second"
            ]),
            both,
            "OKTA_AUTH_SERVER lists the org's servers"
        );
        assert_eq!(
            issuers(&["--dev", "--issuer", &format!("{A},{B}")]).map(|i| i.len()),
            Ok(1)
        );
        for (args, expected) in [
            (
                vec!["--issuer", "https://a.example/x,,https://b.example/y"],
                "AUTH_ISSUER (--issuer): item 2 of `https://a.example/x,,https://b.example/y` is empty;",
            ),
            (
                vec!["--issuer", "https://a.example/x,"],
                "AUTH_ISSUER (--issuer): item 2 of",
            ),
            (
                vec!["--issuer", &format!("{A},{B},{A}")],
                "AUTH_ISSUER (--issuer): `https://dev-1.okta.com/oauth2/default` is listed twice",
            ),
            (
                vec!["--issuer", &format!("{A},{A}/")],
                "AUTH_ISSUER (--issuer): `https://dev-1.okta.com/oauth2/default` and `https://dev-1.okta.com/oauth2/default/` differ only by a trailing `/`",
            ),
            (
                vec!["--issuer", &format!("{A},http://b.example/x")],
                "AUTH_ISSUER (--issuer): `http://b.example/x` uses http;",
            ),
            (
                vec!["--issuer", &format!("{A},{B}"), "--okta-oauth2-issuer", A],
                "AUTH_ISSUER (--issuer): differs from OKTA_OAUTH2_ISSUER",
            ),
            (
                vec![
                    "--okta-domain",
                    "dev-1.okta.com",
                    "--okta-auth-server",
                    "default,default",
                ],
                "OKTA_AUTH_SERVER (--okta-auth-server): `default` is listed twice",
            ),
            (
                vec![
                    "--okta-domain",
                    "dev-1.okta.com",
                    "--okta-auth-server",
                    "default,",
                ],
                "OKTA_AUTH_SERVER (--okta-auth-server): item 2 of `default,` is empty",
            ),
            (
                vec![
                    "--issuer",
                    &format!("{A},{B}"),
                    "--jwks-uri",
                    "https://dev-1.okta.com/oauth2/default/v1/keys",
                ],
                "AUTH_JWKS_URI (--jwks-uri): one JWKS URL cannot hold the keys of 2 issuers",
            ),
        ] {
            let message = problem(&args);
            assert!(message.starts_with(expected), "{args:?}: {message}");
        }
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
    fn the_okta_starter_names_are_aliases_that_may_repeat_but_not_contradict() {
        let issuer = "https://dev-1.okta.com/oauth2/default";
        let config = Config::from_cli(cli(&[
            "--okta-oauth2-issuer",
            issuer,
            "--okta-oauth2-audience",
            "api://b",
        ]))
        .unwrap();
        assert_eq!(config.auth.issuer(), issuer);
        assert_eq!(config.auth.audiences(), ["api://b".to_owned()]);
        let same = Config::from_cli(cli(&[
            "--issuer",
            issuer,
            "--okta-oauth2-issuer",
            issuer,
            "--audience",
            "api://b",
            "--okta-oauth2-audience",
            "api://b",
        ]));
        assert!(same.is_ok(), "{:?}", same.err());
        assert!(
            problem(&[
                "--issuer",
                issuer,
                "--okta-oauth2-issuer",
                "https://x.example/"
            ])
            .contains("differs from OKTA_OAUTH2_ISSUER")
        );
        assert_eq!(
            Config::for_issuer(issuer).unwrap().auth.audiences(),
            [DEFAULT_AUDIENCE.to_owned()]
        );
    }

    #[test]
    fn a_ca_file_of_pem_certificates_is_accepted() {
        let ca = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/api/fixtures/private-ca.pem"
        );
        let config = Config::from_cli(cli(&["--dev", "--ca-file", ca]));
        assert!(config.is_ok(), "{:?}", config.err());
    }

    #[test]
    fn help_lists_exactly_the_log_formats_the_parser_takes() {
        let names: Vec<&str> = LogFormat::ALL.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, cli::LOG_FORMATS);
        for (name, format) in LogFormat::ALL {
            assert_eq!(fields::log_format(&name.to_ascii_uppercase()), Ok(format));
        }
    }

    #[test]
    fn dev_mode_warns_that_it_ignores_external_issuer_settings() {
        let config = Config::from_cli(cli(&["--dev", "--okta-domain", "dev-1.okta.com"])).unwrap();
        assert!(config.dev.is_some());
        assert_eq!(config.auth.issuer(), "http://127.0.0.1:8080/oauth2/default");
        assert!(
            config.warnings[0].contains("--dev ignores"),
            "{:?}",
            config.warnings
        );
    }

    #[test]
    fn public_url_is_an_origin_without_a_trailing_slash() {
        let public = |value: &str| Config::from_cli(cli(&["--dev", "--public-url", value]));
        assert_eq!(
            public("https://api.example.com/")
                .map(|c| c.public_url)
                .ok(),
            Some(Some("https://api.example.com".to_owned()))
        );
        assert_eq!(
            public("http://127.0.0.1:8080").map(|c| c.public_url).ok(),
            Some(Some("http://127.0.0.1:8080".to_owned()))
        );
        for (bad, needle) in [
            ("http://api.example.com", "https is required"),
            ("https://api.example.com/api", "has a path"),
            ("https://api.example.com/?a=b", "query"),
            ("api.example.com", "not a URL"),
        ] {
            let message = public(bad)
                .map(|_| String::new())
                .unwrap_or_else(|e| e.to_string());
            assert!(
                message.starts_with("PUBLIC_URL (--public-url)") && message.contains(needle),
                "{bad}: {message}"
            );
        }
    }

    #[test]
    fn the_token_cache_size_is_bytes_from_zero_to_a_gibibyte() {
        let size = |value: &str| {
            Config::from_cli(cli(&["--dev", &format!("--token-cache-bytes={value}")]))
                .map(|c| c.auth.token_cache_bytes())
        };
        assert_eq!(size("0"), Ok(0));
        assert_eq!(size("1048576"), Ok(1 << 20));
        assert_eq!(
            Config::from_cli(cli(&["--dev"])).map(|c| c.auth.token_cache_bytes()),
            Ok(4 << 20)
        );
        for bad in ["-1", "4MiB", "", "1073741825"] {
            assert!(
                problem(&["--dev", &format!("--token-cache-bytes={bad}")])
                    .starts_with("AUTH_TOKEN_CACHE_BYTES (--token-cache-bytes): "),
                "{bad}"
            );
        }
    }

    #[test]
    fn token_url_is_checked_like_other_urls_and_ignored_with_dev() {
        assert!(
            problem(&[
                "--issuer",
                "https://a.example",
                "--token-url",
                "http://a.example/t"
            ])
            .starts_with("AUTH_TOKEN_URL (--token-url)")
        );
        let config =
            Config::from_cli(cli(&["--dev", "--token-url", "https://a.example/t"])).unwrap();
        assert_eq!(config.token_url, None);
        assert!(
            config.warnings[0].contains("AUTH_TOKEN_URL"),
            "{:?}",
            config.warnings
        );
    }

    #[test]
    fn the_policy_file_is_loaded_with_the_settings_and_absent_by_default() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/policy.example.toml");
        let config = Config::from_cli(cli(&["--dev", "--policy-file", example])).unwrap();
        let policy = config.policy.expect("the policy is loaded");
        assert_eq!(
            policy.decide(&actix_web::http::Method::GET, "/internal/x"),
            crate::gateway::policy::Access::Deny
        );
        assert!(Config::from_cli(cli(&["--dev"])).unwrap().policy.is_none());
        assert!(
            Config::from_cli(cli(&["--dev", "--policy-file="]))
                .unwrap()
                .policy
                .is_none()
        );
        let refused = problem(&["--dev", "--policy-file=/nonexistent/p.toml"]);
        assert!(
            refused.starts_with(
                "AUTH_POLICY_FILE (--policy-file): /nonexistent/p.toml: cannot be read"
            ),
            "{refused}"
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

    #[test]
    fn a_non_loopback_bind_warns_about_public_url_and_metrics() {
        let issuer = "--issuer=https://a.example/oauth2/default";
        let warnings = |args: &[&str]| {
            let mut all = vec![issuer];
            all.extend_from_slice(args);
            Config::from_cli(cli(&all)).unwrap().warnings
        };
        let exposed = warnings(&["--bind=0.0.0.0:8080"]);
        assert_eq!(exposed.len(), 2, "{exposed:?}");
        assert!(exposed[0].contains("PUBLIC_URL"), "{exposed:?}");
        assert!(exposed[1].contains("METRICS_ADDR"), "{exposed:?}");
        let metrics_only = warnings(&["--bind=[::]:8080", "--public-url=https://api.example"]);
        assert_eq!(metrics_only.len(), 1, "{metrics_only:?}");
        assert!(metrics_only[0].contains("/metrics"), "{metrics_only:?}");
        assert!(
            warnings(&[
                "--bind=0.0.0.0:8080",
                "--public-url=https://api.example",
                "--metrics-addr=127.0.0.1:9090"
            ])
            .is_empty()
        );
        assert!(warnings(&["--bind=127.0.0.1:8080"]).is_empty(), "loopback");
        assert!(warnings(&["--bind=[::1]:8080"]).is_empty(), "loopback");
    }

    #[test]
    fn cors_star_mixed_with_origins_is_refused_whatever_the_order() {
        for value in [
            "*,https://a.example",
            "https://a.example,*",
            "https://a.example * https://b.example",
        ] {
            let refused = problem(&[
                "--issuer=https://a.example/x",
                &format!("--cors-allowed-origins={value}"),
            ]);
            assert!(
                refused.contains("CORS_ALLOWED_ORIGINS") && refused.contains("one or the other"),
                "{value}: {refused}"
            );
        }
        for value in ["*", "https://a.example,https://b.example"] {
            let args = [
                "--issuer=https://a.example/x",
                &format!("--cors-allowed-origins={value}"),
            ];
            assert!(Config::from_cli(cli(&args)).is_ok(), "{value}");
        }
    }

    #[test]
    fn require_at_jwt_is_a_boolean_off_by_default() {
        let issuer = "--issuer=https://a.example/x";
        assert!(
            !Config::from_cli(cli(&[issuer]))
                .unwrap()
                .auth
                .require_at_jwt()
        );
        let on = Config::from_cli(cli(&[issuer, "--require-at-jwt=TRUE"])).unwrap();
        assert!(on.auth.require_at_jwt());
        let refused = problem(&[issuer, "--require-at-jwt=yes"]);
        assert!(refused.contains("AUTH_REQUIRE_AT_JWT"), "{refused}");
    }

    #[test]
    fn help_lists_exactly_the_introspection_modes_the_parser_takes() {
        let names: Vec<&str> = api_guard::IntrospectionMode::ALL
            .iter()
            .map(|(name, _)| *name)
            .collect();
        assert_eq!(names, cli::INTROSPECTION_MODES);
    }

    #[test]
    fn introspection_without_its_client_stops_start_up_naming_the_variable() {
        let issuer = "--issuer=https://a.example/x";
        assert!(
            Config::from_cli(cli(&[issuer]))
                .unwrap()
                .auth
                .introspection()
                .is_none()
        );
        let refused = problem(&[issuer, "--introspection=opaque"]);
        assert!(
            refused.starts_with("AUTH_INTROSPECTION_CLIENT_ID (--introspection-client-id): is required with AUTH_INTROSPECTION=opaque"),
            "{refused}"
        );
        let refused = problem(&[
            issuer,
            "--introspection=always",
            "--introspection-client-id=c",
        ]);
        assert!(
            refused.starts_with("AUTH_INTROSPECTION_CLIENT_SECRET"),
            "{refused}"
        );
        let refused = problem(&[issuer, "--introspection=sometimes"]);
        assert!(
            refused.starts_with("AUTH_INTROSPECTION (--introspection): `sometimes`"),
            "{refused}"
        );
        let secret = "s3cret-not-for-errors";
        let refused = problem(&[
            issuer,
            "--introspection=opaque",
            "--introspection-client-id=c",
            &format!("--introspection-client-secret={secret}"),
            "--introspection-url=http://example.com/introspect",
        ]);
        assert!(
            refused.starts_with("AUTH_INTROSPECTION_URL") && !refused.contains(secret),
            "{refused}"
        );
        let config = Config::from_cli(cli(&[
            issuer,
            "--introspection=opaque",
            "--introspection-client-id=c",
            &format!("--introspection-client-secret={secret}"),
            "--introspection-cache-secs=1",
        ]))
        .unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains(secret), "{printed}");
        let introspection = config.auth.introspection().unwrap();
        assert_eq!(introspection.cache_ttl(), Duration::from_secs(1));
        assert_eq!(introspection.mode(), api_guard::IntrospectionMode::Opaque);
    }

    #[test]
    fn dev_mode_introspects_as_the_development_client() {
        let config = Config::from_cli(cli(&["--dev", "--introspection=always"])).unwrap();
        assert_eq!(
            config.auth.introspection().map(|i| i.client_id()),
            Some("api-guard-dev")
        );
    }
}
