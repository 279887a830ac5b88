//! The raw settings: one clap field per setting, each a flag and an environment variable,
//! so `--help` documents them all with their defaults.

use std::ffi::OsString;

use clap::builder::{PossibleValue, TypedValueParser};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// The algorithms allowed when `AUTH_ALGORITHMS` is not set: every asymmetric one we verify.
pub const DEFAULT_ALGORITHMS: &str = "RS256,RS384,RS512,PS256,PS384,PS512,ES256,ES384,EdDSA";
/// The audience expected when `AUTH_AUDIENCE` is not set: Okta's default authorization server's.
pub const DEFAULT_AUDIENCE: &str = "api://default";

// The `--help` headings, in the order a new user reads them. A heading without a setting
// yet is left out rather than printed empty.
const ISSUER: &str = "Issuer and tokens";
const KEYS: &str = "Key store";
const SERVER: &str = "Server";
const GATEWAY: &str = "Gateway";
const LOGS: &str = "Logging and metrics";
const SHUTDOWN: &str = "Shutdown";
const DPOP_INTROSPECTION: &str = "DPoP and introspection";
const DEV: &str = "Development";

/// The log formats `LOG_FORMAT` takes, as `--help` lists them (`LogFormat::ALL`'s names; a
/// unit test keeps the two equal).
pub const LOG_FORMATS: &[&str] = &["text", "json", "ecs", "gcp"];

/// The modes `AUTH_INTROSPECTION` takes, as `--help` lists them (`IntrospectionMode::ALL`'s
/// names; a unit test keeps the two equal).
pub const INTROSPECTION_MODES: &[&str] = &["off", "opaque", "always"];

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
    /// What to do instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Issuer URL of the authorization server, e.g. https://dev-123456.okta.com/oauth2/default,
    /// exactly as tokens carry it in `iss`; https is required except for loopback hosts.
    /// Comma-separated for several (e.g. two Okta authorization servers, or old and new
    /// during a migration): each gets its own key store, used only for tokens naming it.
    #[arg(long, env = "AUTH_ISSUER", value_name = "URLS", help_heading = ISSUER)]
    pub issuer: Option<String>,

    /// The Okta Spring Boot starter's name for AUTH_ISSUER; set one of the two.
    #[arg(
        long,
        env = "OKTA_OAUTH2_ISSUER",
        value_name = "URLS",
        help_heading = ISSUER
    )]
    pub okta_oauth2_issuer: Option<String>,

    /// Not read: another tool's name for the issuer (express-openid-connect), named in the
    /// error when no issuer is set.
    #[arg(long, env = "ISSUER_BASE_URL", hide = true)]
    pub issuer_base_url: Option<String>,

    /// Not read: another tool's name for the issuer (oauth2-proxy and others), named in the
    /// error when no issuer is set.
    #[arg(long, env = "OIDC_ISSUER", hide = true)]
    pub oidc_issuer: Option<String>,

    /// Okta domain, e.g. dev-123456.okta.com: shorthand for the issuer
    /// https://{OKTA_DOMAIN}/oauth2/{OKTA_AUTH_SERVER}.
    #[arg(long, env = "OKTA_DOMAIN", value_name = "HOST", help_heading = ISSUER)]
    pub okta_domain: Option<String>,

    /// Okta authorization server id, used with OKTA_DOMAIN; comma-separated for several
    /// issuers of one org, e.g. default,aus0second.
    #[arg(
        long,
        env = "OKTA_AUTH_SERVER",
        value_name = "IDS",
        default_value = "default",
        help_heading = ISSUER
    )]
    pub okta_auth_server: String,

    /// Expected audience (`aud`) of access tokens; comma-separated for several.
    /// Default: api://default (Okta's default authorization server's).
    #[arg(long, env = "AUTH_AUDIENCE", value_name = "AUD", help_heading = ISSUER)]
    pub audience: Option<String>,

    /// The Okta Spring Boot starter's name for AUTH_AUDIENCE; set one of the two.
    #[arg(
        long,
        env = "OKTA_OAUTH2_AUDIENCE",
        value_name = "AUD",
        help_heading = ISSUER
    )]
    pub okta_oauth2_audience: Option<String>,

    /// The issuer's JWKS URL, to skip discovery; not with several issuers (each has its own
    /// keys). Default: discovered from the issuer's metadata.
    #[arg(long, env = "AUTH_JWKS_URI", value_name = "URL", help_heading = KEYS)]
    pub jwks_uri: Option<String>,

    /// The issuer's token endpoint, named in /openapi.json so that clients (Postman's
    /// "Import > OpenAPI") know where to get a token (the first issuer's, with several).
    /// Default: the `token_endpoint` of the issuer's metadata once discovered, else
    /// {issuer}/v1/token (Okta's layout).
    #[arg(long, env = "AUTH_TOKEN_URL", value_name = "URL", help_heading = ISSUER)]
    pub token_url: Option<String>,

    /// Allowed signing algorithms, comma-separated; asymmetric only.
    #[arg(
        long,
        env = "AUTH_ALGORITHMS",
        value_name = "ALGS",
        default_value = DEFAULT_ALGORITHMS,
        help_heading = ISSUER
    )]
    pub algorithms: String,

    /// Clock-skew allowance for `exp`, `nbf` and `iat`, in seconds (at most 300).
    #[arg(
        long,
        env = "AUTH_LEEWAY_SECS",
        value_name = "SECS",
        default_value = "60",
        help_heading = ISSUER
    )]
    pub leeway_secs: String,

    /// Scopes every protected route requires, comma- or space-separated. Default: none.
    #[arg(
        long,
        env = "AUTH_REQUIRED_SCOPES",
        value_name = "SCOPES",
        default_value = "",
        hide_default_value = true,
        help_heading = ISSUER
    )]
    pub required_scopes: String,

    /// A PEM file of certificate authorities trusted for the issuer's metadata and keys, in
    /// addition to the built-in (Mozilla) roots: for an issuer behind a private CA. Default:
    /// none, the built-in roots only.
    #[arg(long, env = "AUTH_CA_FILE", value_name = "PATH", help_heading = KEYS)]
    pub ca_file: Option<std::path::PathBuf>,

    /// An HTTP proxy for the issuer's metadata and keys over https, as curl reads it:
    /// `http://[user:password@]host[:port]` (port 1080 when absent), tunnelled with CONNECT.
    /// The lower-case `https_proxy` is read too, and wins, as with curl. Default: none, direct.
    #[arg(
        long,
        env = "HTTPS_PROXY",
        value_name = "URL",
        hide_env_values = true,
        help_heading = KEYS
    )]
    pub https_proxy: Option<String>,

    /// Read as curl reads it: the lower-case name of HTTPS_PROXY.
    #[arg(long = "https-proxy-lowercase", env = "https_proxy", hide = true)]
    pub https_proxy_lowercase: Option<String>,

    /// Hosts reached without the proxy, as curl reads it: comma-separated names (each with its
    /// subdomains), IP addresses, CIDR ranges, or `*`. The lower-case `no_proxy` is read too,
    /// and wins. Plain-http (loopback) issuers are never proxied. Default: none.
    #[arg(long, env = "NO_PROXY", value_name = "HOSTS", help_heading = KEYS)]
    pub no_proxy: Option<String>,

    /// Read as curl reads it: the lower-case name of NO_PROXY.
    #[arg(long = "no-proxy-lowercase", env = "no_proxy", hide = true)]
    pub no_proxy_lowercase: Option<String>,

    /// Strict RFC 9068 typing: accept only tokens whose header says `typ: at+jwt`. Turn on
    /// when your issuer types its access tokens (Okta's carry no `typ`): `true` or `false`.
    #[arg(
        long,
        env = "AUTH_REQUIRE_AT_JWT",
        value_name = "BOOL",
        default_value = "false",
        help_heading = ISSUER
    )]
    pub require_at_jwt: String,

    /// Least time between two key-set refreshes, whatever the issuer's Cache-Control says.
    #[arg(
        long,
        env = "AUTH_JWKS_MIN_REFRESH_SECS",
        value_name = "SECS",
        default_value = "300",
        help_heading = KEYS
    )]
    pub jwks_min_refresh_secs: String,

    /// Longest time between two key-set refreshes, whatever the issuer's Cache-Control says.
    #[arg(
        long,
        env = "AUTH_JWKS_MAX_REFRESH_SECS",
        value_name = "SECS",
        default_value = "86400",
        help_heading = KEYS
    )]
    pub jwks_max_refresh_secs: String,

    /// Least time between two key-set fetches caused by tokens with an unknown `kid`.
    #[arg(
        long,
        env = "AUTH_JWKS_COOLDOWN_SECS",
        value_name = "SECS",
        default_value = "30",
        help_heading = KEYS
    )]
    pub jwks_cooldown_secs: String,

    /// How long past its lifetime the last good key set stays in use while the issuer is
    /// unreachable; then protected routes answer 503.
    #[arg(
        long,
        env = "AUTH_JWKS_MAX_STALE_SECS",
        value_name = "SECS",
        default_value = "86400",
        help_heading = KEYS
    )]
    pub jwks_max_stale_secs: String,

    /// Memory for the verified-token cache, in bytes: a token seen before is answered
    /// without a second signature check, until its `exp` or until its key leaves the key
    /// set. 0 turns the cache off.
    #[arg(
        long,
        env = "AUTH_TOKEN_CACHE_BYTES",
        value_name = "BYTES",
        default_value = "4194304",
        help_heading = ISSUER
    )]
    pub token_cache_bytes: String,

    /// Listen address.
    #[arg(
        long,
        env = "BIND_ADDR",
        value_name = "ADDR",
        default_value = "127.0.0.1:8080",
        help_heading = SERVER
    )]
    pub bind: String,

    /// The URL clients use to reach this service, e.g. https://api.example.com (an origin:
    /// no path). Named in /openapi.json, the protected-resource metadata and every Bearer
    /// challenge; set it behind a load balancer or proxy. Default: http:// and the request's
    /// own Host header (forwarded headers are not trusted for this).
    #[arg(long, env = "PUBLIC_URL", value_name = "URL", help_heading = SERVER)]
    pub public_url: Option<String>,

    /// Worker threads. Default: the number of cores.
    #[arg(long, env = "WORKERS", value_name = "N", help_heading = SERVER)]
    pub workers: Option<String>,

    /// Origins allowed to call from a browser, comma-separated (`*` for any). Default: none
    /// (CORS off).
    #[arg(
        long,
        env = "CORS_ALLOWED_ORIGINS",
        value_name = "ORIGINS",
        default_value = "",
        hide_default_value = true,
        help_heading = SERVER
    )]
    pub cors_allowed_origins: String,

    /// Seconds an idle keep-alive connection stays open. Keep it above the load balancer's
    /// idle timeout (AWS ALB and nginx: 60; Google Cloud: 600, so use 620 there).
    #[arg(
        long,
        env = "KEEP_ALIVE_SECS",
        value_name = "SECS",
        default_value = "75",
        help_heading = SERVER
    )]
    pub keep_alive_secs: String,

    /// Proxies whose Forwarded / X-Forwarded-For headers are believed, as comma-separated
    /// CIDRs or addresses (e.g. `10.0.0.0/8,127.0.0.1`). Default: none, the client is the peer.
    #[arg(
        long,
        env = "TRUSTED_PROXIES",
        value_name = "CIDRS",
        default_value = "",
        hide_default_value = true,
        help_heading = SERVER
    )]
    pub trusted_proxies: String,

    /// The route policy, a TOML file: which paths pass without a token, which need one (and
    /// which scopes), which are denied; rules tried in order, first match wins. A file that
    /// does not parse stops start-up naming its line. deploy/policy.example.toml shows the
    /// format. Default: none, every request needs a valid token.
    #[arg(long, env = "AUTH_POLICY_FILE", value_name = "PATH", help_heading = GATEWAY)]
    // A string, not a path: set but empty (`AUTH_POLICY_FILE=` in .env) means unset.
    pub policy_file: Option<String>,

    /// Gateway mode: proxy every request that is not api-guard's own (health, metrics, the
    /// protected-resource metadata, /auth/verify) to this origin, e.g. http://127.0.0.1:3000,
    /// after the policy and the token check. Default: unset, api-guard serves its sample API.
    #[arg(long, env = "UPSTREAM_URL", value_name = "URL", help_heading = GATEWAY)]
    pub upstream_url: Option<String>,

    /// Keep the `Authorization` (and `DPoP`) header on proxied requests, for an upstream that
    /// reads the token itself: `true` or `false`. Default: removed; the upstream gets the
    /// X-Auth-* identity headers instead.
    #[arg(
        long,
        env = "UPSTREAM_FORWARD_TOKEN",
        value_name = "BOOL",
        default_value = "false",
        help_heading = GATEWAY
    )]
    pub upstream_forward_token: String,

    /// Send the client's own `Host` header to the upstream instead of the upstream's host:
    /// `true` or `false`.
    #[arg(
        long,
        env = "UPSTREAM_PRESERVE_HOST",
        value_name = "BOOL",
        default_value = "false",
        help_heading = GATEWAY
    )]
    pub upstream_preserve_host: String,

    /// Seconds to open a connection to the upstream (TLS included) before answering 504.
    #[arg(
        long,
        env = "UPSTREAM_CONNECT_TIMEOUT_SECS",
        value_name = "SECS",
        default_value = "5",
        help_heading = GATEWAY
    )]
    pub upstream_connect_timeout_secs: String,

    /// Seconds the upstream has to answer (from sending the request, upload included, to
    /// its response headers), and at most between two pieces of its response body, before
    /// the answer is 504 (or the body is cut off).
    #[arg(
        long,
        env = "UPSTREAM_TIMEOUT_SECS",
        value_name = "SECS",
        default_value = "60",
        help_heading = GATEWAY
    )]
    pub upstream_timeout_secs: String,

    /// Largest request body passed to the upstream, in bytes; a larger one is answered 413,
    /// also when it is sent chunked and grows past the limit on the way. Bodies are streamed,
    /// never held in memory, so a large limit costs no memory.
    #[arg(
        long,
        env = "UPSTREAM_MAX_BODY_BYTES",
        value_name = "BYTES",
        default_value = "67108864",
        help_heading = GATEWAY
    )]
    pub upstream_max_body_bytes: String,

    /// DPoP-bound tokens (RFC 9449): `off` (the DPoP scheme is refused), `allowed` (DPoP
    /// with a valid proof, and Bearer tokens that are not bound) or `required` (DPoP only;
    /// Bearer tokens get a DPoP challenge). A bound token sent as Bearer is always refused.
    #[arg(
        long = "dpop",
        env = "AUTH_DPOP",
        value_name = "MODE",
        default_value = "allowed",
        help_heading = DPOP_INTROSPECTION
    )]
    pub dpop: String,

    /// Seconds a DPoP proof stays valid after its `iat`; proofs are remembered this long to
    /// refuse replays (1 to 3600).
    #[arg(
        long,
        env = "DPOP_WINDOW_SECS",
        value_name = "SECS",
        default_value = "180",
        help_heading = DPOP_INTROSPECTION
    )]
    pub dpop_window_secs: String,

    /// Where the `jti`s of accepted DPoP proofs are remembered: empty for this process only,
    /// or `redis://host:port` (Redis or Valkey) to share them with every replica, so a proof
    /// used at one is refused at all. Redis unreachable: DPoP requests answer 503.
    #[arg(
        long,
        env = "DPOP_REPLAY_STORE",
        value_name = "URL",
        default_value = "",
        hide_default_value = true,
        help_heading = DPOP_INTROSPECTION
    )]
    pub dpop_replay_store: String,

    /// Server-provided DPoP nonces (RFC 9449 §9): `true` makes every proof carry the current
    /// nonce, which a client learns from a 401 `use_dpop_nonce` and its `DPoP-Nonce` header.
    /// Needs DPOP_NONCE_SECRET.
    #[arg(
        long,
        env = "DPOP_NONCES",
        value_name = "BOOL",
        default_value = "false",
        help_heading = DPOP_INTROSPECTION
    )]
    pub dpop_nonces: String,

    /// With DPOP_NONCES=true: the secret nonces are derived from, the same on every replica
    /// (at least 32 characters, e.g. `openssl rand -base64 32`).
    #[arg(
        long,
        env = "DPOP_NONCE_SECRET",
        value_name = "SECRET",
        hide_env_values = true,
        help_heading = DPOP_INTROSPECTION
    )]
    pub dpop_nonce_secret: Option<String>,

    /// Token introspection (RFC 7662): `off`; `opaque` (tokens that are not JWTs are checked
    /// with the issuer's introspection endpoint); `always` (JWTs too, after the local checks:
    /// revoked tokens are refused). Needs AUTH_INTROSPECTION_CLIENT_ID and _SECRET.
    #[arg(
        long,
        env = "AUTH_INTROSPECTION",
        value_name = "MODE",
        default_value = "off",
        value_parser = Choices(INTROSPECTION_MODES),
        help_heading = DPOP_INTROSPECTION
    )]
    pub introspection: String,

    /// The introspection endpoint. Default: the `introspection_endpoint` of the issuer's
    /// metadata (Okta: {issuer}/v1/introspect).
    #[arg(
        long,
        env = "AUTH_INTROSPECTION_URL",
        value_name = "URL",
        help_heading = DPOP_INTROSPECTION
    )]
    pub introspection_url: Option<String>,

    /// The client id api-guard introspects as (HTTP Basic). Under the development issuer:
    /// its own client.
    #[arg(
        long,
        env = "AUTH_INTROSPECTION_CLIENT_ID",
        value_name = "ID",
        help_heading = DPOP_INTROSPECTION
    )]
    pub introspection_client_id: Option<String>,

    /// The secret of that client; never logged. Under the development issuer: its own
    /// client's.
    #[arg(
        long,
        env = "AUTH_INTROSPECTION_CLIENT_SECRET",
        value_name = "SECRET",
        hide_env_values = true,
        help_heading = DPOP_INTROSPECTION
    )]
    pub introspection_client_secret: Option<String>,

    /// How long an introspection answer is reused, never past the token's `exp`; 0 asks the
    /// endpoint on every request.
    #[arg(
        long,
        env = "AUTH_INTROSPECTION_CACHE_SECS",
        value_name = "SECS",
        default_value = "60",
        help_heading = DPOP_INTROSPECTION
    )]
    pub introspection_cache_secs: String,

    /// The longest one introspection call may take; a slower endpoint gets the request a 503.
    #[arg(
        long,
        env = "AUTH_INTROSPECTION_TIMEOUT_MS",
        value_name = "MS",
        default_value = "5000",
        help_heading = DPOP_INTROSPECTION
    )]
    pub introspection_timeout_ms: String,

    /// Serve GET /metrics on this separate address only (e.g. 127.0.0.1:9090), not on
    /// BIND_ADDR. Default: /metrics on BIND_ADDR.
    #[arg(long, env = "METRICS_ADDR", value_name = "ADDR", help_heading = LOGS)]
    pub metrics_addr: Option<String>,

    /// Log format: `text` for people; one JSON object per line for log shippers: `json`
    /// (api-guard's names), `ecs` (Elastic Common Schema), `gcp` (Google Cloud Logging).
    #[arg(
        long,
        env = "LOG_FORMAT",
        value_name = "FORMAT",
        default_value = "text",
        value_parser = Choices(LOG_FORMATS),
        help_heading = LOGS
    )]
    pub log_format: String,

    /// Log filter, env_logger syntax (e.g. `info`, `api_guard=debug`).
    #[arg(
        long = "log",
        env = "RUST_LOG",
        value_name = "FILTER",
        default_value = "info",
        help_heading = LOGS
    )]
    pub log_filter: String,

    /// Seconds from SIGTERM (or SIGINT) to exit, all included: the drain, then the requests
    /// in flight. Match it to the orchestrator's grace period (Kubernetes: 30).
    #[arg(
        long,
        env = "SHUTDOWN_TIMEOUT_SECS",
        value_name = "SECS",
        default_value = "30",
        help_heading = SHUTDOWN
    )]
    pub shutdown_timeout_secs: String,

    /// Seconds to keep serving after SIGTERM while /health/ready answers 503, so load
    /// balancers that probe it stop sending first. Less than SHUTDOWN_TIMEOUT_SECS; 0 stops
    /// accepting at once.
    #[arg(
        long,
        env = "SHUTDOWN_DRAIN_SECS",
        value_name = "SECS",
        default_value = "10",
        help_heading = SHUTDOWN
    )]
    pub shutdown_drain_secs: String,

    /// Run the built-in development authorization server on the same port and trust only it.
    /// For trying the service without an Okta org; never for production.
    // Builds without the development issuer still accept the flag, to refuse it with a
    // sentence (startup.rs), but do not offer it.
    #[arg(long, help_heading = DEV)]
    #[cfg_attr(not(feature = "dev-issuer"), arg(hide = true))]
    pub dev: bool,

    /// With --dev: the development issuer's client id.
    #[arg(
        long,
        env = "DEV_CLIENT_ID",
        value_name = "ID",
        default_value = "api-guard-dev",
        help_heading = DEV
    )]
    #[cfg_attr(not(feature = "dev-issuer"), arg(hide = true))]
    pub dev_client_id: String,

    /// With --dev: the development issuer's client secret.
    #[arg(
        long,
        env = "DEV_CLIENT_SECRET",
        value_name = "SECRET",
        default_value = "api-guard-dev-secret",
        hide_env_values = true,
        help_heading = DEV
    )]
    #[cfg_attr(not(feature = "dev-issuer"), arg(hide = true))]
    pub dev_client_secret: String,
}

/// The subcommands: each does one thing and exits, instead of serving.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Probe GET /health/ready on BIND_ADDR's port over loopback (for 0.0.0.0 or [::]) and exit
    /// 0 on 200, 1 on anything else or no answer within 2 s. For Docker's and compose's
    /// HEALTHCHECK: the image has no shell or curl. Reads BIND_ADDR and nothing else.
    Healthcheck,
    /// Why is my token refused? Run every check the service runs on TOKEN, with the same
    /// settings (environment, .env, flags), discovery and keys, and print one line per check
    /// with the values compared and, for a failure, what to change. Exit 0 valid, 1 refused,
    /// 2 configuration or usage error (or the token could not be checked).
    Explain(ExplainArgs),
}

/// The arguments of `api-guard explain`. Not printed by `Debug`: the token is a credential.
#[derive(clap::Args, Clone, PartialEq, Eq)]
pub struct ExplainArgs {
    /// The access token (with or without `Bearer `), or `-` to read it from stdin, which keeps
    /// it out of the shell history and the process list.
    #[arg(value_name = "TOKEN")]
    pub token: String,
    /// Print one JSON object instead of lines, for scripts.
    #[arg(long)]
    pub json: bool,
}

impl std::fmt::Debug for ExplainArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExplainArgs")
            .field("token", &"[redacted]")
            .field("json", &self.json)
            .finish()
    }
}

impl Cli {
    /// The settings given by `args` alone, every other at its default: the environment (and
    /// so `.env`) is not read. For embedding services and tests.
    pub fn from_args_only<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let command = Cli::command().mut_args(|arg| arg.env(None::<&str>));
        Cli::from_arg_matches(&command.try_get_matches_from(args)?)
    }
}

/// A value `--help` lists the choices of, checked later by its parser in `fields.rs` (so a
/// wrong one is one `error:` line naming the variable, like every other setting, and not
/// clap's usage message).
#[derive(Clone)]
struct Choices(&'static [&'static str]);

impl TypedValueParser for Choices {
    type Value = String;

    fn parse_ref(
        &self,
        _cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        Ok(value.to_string_lossy().into_owned())
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(self.0.iter().map(PossibleValue::new)))
    }
}
