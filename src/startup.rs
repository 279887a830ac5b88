//! `Application::build`: binds, starts the key store, serves, and returns once the port is
//! bound and the first key load has finished or failed. Used by `main` and by the tests.

use std::net::{SocketAddr, TcpListener};

use actix_cors::Cors;
use actix_web::dev::ServerHandle;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{Condition, from_fn};
use actix_web::rt::task::JoinHandle;
use actix_web::{App, HttpServer, web};

use api_guard::{Guard, GuardError};

use crate::replay_store::RedisReplayStore;

use crate::config::{Config, Shutdown};
#[cfg(feature = "dev-issuer")]
use crate::dev_issuer::{DevIssuer, DevIssuerSettings};
use crate::gateway::{Gateway, Policy};
use crate::public_url::PublicUrl;
use crate::routes::Published;
use crate::telemetry::{Drain, Telemetry};
use crate::{routes, telemetry};

/// Why the service could not start. Like a [`ConfigError`](crate::ConfigError), one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartupError {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] crate::ConfigError),
    /// The listen address could not be bound.
    #[error(
        "BIND_ADDR (--bind): cannot listen on {addr}: {source}; pick a free port or stop what uses it"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The metrics address could not be bound.
    #[error(
        "METRICS_ADDR (--metrics-addr): cannot listen on {addr}: {source}; pick a free port or stop what uses it"
    )]
    MetricsBind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// `--dev` with an address other machines can reach.
    #[error(
        "BIND_ADDR (--bind): --dev serves a token endpoint with a well-known secret, so it binds loopback only; use 127.0.0.1:8080, not {0}"
    )]
    DevNotLoopback(SocketAddr),
    /// `--dev` in a build without the development issuer.
    #[error(
        "--dev: this build leaves the development issuer out (feature `dev-issuer`); set AUTH_ISSUER instead"
    )]
    DevUnavailable,
    /// Threads or the server could not start.
    #[error("cannot start: {0}")]
    Io(#[from] std::io::Error),
}

impl From<GuardError> for StartupError {
    fn from(error: GuardError) -> Self {
        match error {
            GuardError::Settings(error) => {
                StartupError::Config(crate::config::auth_setting_error(error))
            }
            GuardError::Thread(error) => StartupError::Io(error),
            other => StartupError::Io(std::io::Error::other(other.to_string())),
        }
    }
}

/// The running service.
pub struct Application {
    addr: SocketAddr,
    issuer: String,
    guard: Guard,
    handle: ServerHandle,
    pub(crate) server: JoinHandle<std::io::Result<()>>,
    /// The main listening socket (shared with the server), shut when the drain is over.
    pub(crate) listener: TcpListener,
    metrics: Option<(SocketAddr, ServerHandle)>,
    /// Also holds the drain state the shutdown sequence starts.
    pub(crate) telemetry: Telemetry,
    pub(crate) shutdown: Shutdown,
    #[cfg_attr(not(feature = "dev-issuer"), allow(dead_code))]
    dev_issuer: DevSlot,
}

/// The embedded development issuer, when the build has it.
#[cfg(feature = "dev-issuer")]
type DevSlot = Option<DevIssuer>;
#[cfg(not(feature = "dev-issuer"))]
type DevSlot = ();

impl Application {
    /// Binds `config.bind` (port 0 picks a free port), starts the key store and the server,
    /// and waits for the first key load to finish or fail. The server runs once this
    /// returns; [`Application::run_until_stopped`] waits for it to end.
    pub async fn build(config: Config) -> Result<Application, StartupError> {
        // Refused before binding, so --dev never listens beyond loopback even for a moment.
        if config.dev.is_some() {
            if cfg!(not(feature = "dev-issuer")) {
                return Err(StartupError::DevUnavailable);
            }
            if !config.bind.ip().is_loopback() {
                return Err(StartupError::DevNotLoopback(config.bind));
            }
        }
        let listener = TcpListener::bind(config.bind).map_err(|source| StartupError::Bind {
            addr: config.bind,
            source,
        })?;
        let addr = listener.local_addr()?;
        let metrics_listener = match config.metrics_addr {
            None => None,
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .map_err(|source| StartupError::MetricsBind { addr, source })?,
            ),
        };

        let (config, dev_issuer) = resolve_issuer(config, addr)?;
        let guard = match &config.dpop_replay_store {
            None => Guard::start(config.auth.clone())?,
            Some(address) => {
                let store = RedisReplayStore::start(address.clone())?;
                Guard::start_with_replay_store(config.auth.clone(), std::sync::Arc::new(store))?
            }
        };
        let issuer = guard.settings().issuer().to_owned();
        let origins = config.cors_allowed_origins.clone();
        // Under --dev, every request must name a loopback host, and the issuer's own routes
        // never answer cross-origin (a page must not fetch tokens with the default secret).
        let dev_prefix = dev_prefix(&dev_issuer);
        let dev_mode = dev_prefix.is_some();
        let published = published(&config, &issuer, &dev_issuer)
            .with_authorization_servers(config.auth.issuers());
        let published = web::Data::new(published);
        let public_url = PublicUrl::new(config.public_url.as_deref());
        let app_guard = guard.clone();
        let telemetry = Telemetry::new(config.trusted_proxies.clone(), Drain::default());
        let policy = config
            .policy
            .clone()
            .unwrap_or_else(|| std::sync::Arc::new(Policy::everything_authenticated()));
        let gateway = Gateway::new(
            policy,
            config.trusted_proxies.clone(),
            config.upstream.clone(),
        );
        let (app_telemetry, app_drain) = (telemetry.clone(), telemetry.drain().clone());
        let public_metrics = metrics_listener.is_none();
        #[cfg(feature = "dev-issuer")]
        let app_dev_issuer = dev_issuer.clone();
        let server = HttpServer::new(move || {
            let app = App::new()
                .wrap(from_fn(routes::resource_metadata::advertise))
                .wrap(Condition::new(
                    !origins.is_empty(),
                    cors(&origins, dev_prefix.clone()),
                ))
                .wrap(Condition::new(
                    dev_mode,
                    from_fn(crate::loopback::loopback_host_only),
                ))
                .wrap(from_fn(telemetry::log_request))
                .app_data(app_telemetry.clone())
                .app_data(app_drain.clone())
                .app_data(public_url.clone())
                .app_data(published.clone())
                .configure(api_guard::configure(app_guard.clone()));
            let app = if public_metrics {
                app.service(routes::metrics)
            } else {
                app
            };
            #[cfg(feature = "dev-issuer")]
            let app = app.configure(|cfg| {
                if let Some(dev) = &app_dev_issuer {
                    dev.configure(cfg);
                }
            });
            // /auth/verify always; in gateway mode, api-guard's own routes and then the
            // proxy for every other path, instead of the sample API.
            if gateway.proxies() {
                app.configure(routes::configure_own)
                    .configure(|cfg| gateway.configure(cfg))
            } else {
                app.configure(|cfg| gateway.configure(cfg))
                    .configure(routes::configure)
            }
        })
        .workers(config.workers)
        .keep_alive(config.keep_alive)
        // The signals and the deadline are ours (see `shutdown`): actix's own graceful timeout
        // is set past SHUTDOWN_TIMEOUT_SECS so it never cuts a request off before we decide to.
        .disable_signals()
        .shutdown_timeout(config.shutdown.timeout.as_secs() + 1)
        .listen(listener.try_clone()?)?
        .run();
        let handle = server.handle();
        let server = actix_web::rt::spawn(server);
        let metrics = match metrics_listener {
            None => None,
            Some(listener) => Some(serve_metrics(listener, &guard, &telemetry)?),
        };
        guard.first_load().await;
        Ok(Application {
            addr,
            issuer,
            guard,
            handle,
            server,
            listener,
            metrics,
            telemetry,
            shutdown: config.shutdown,
            dev_issuer,
        })
    }

    /// Where `/metrics` is served when `METRICS_ADDR` moved it off the main listener.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(addr, _)| *addr)
    }

    /// The request metrics, trusted proxies and drain state.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// The handles of every server: the main listener's, and the metrics listener's if any.
    pub(crate) fn handles(&self) -> Vec<ServerHandle> {
        let metrics = self.metrics.iter().map(|(_, handle)| handle.clone());
        std::iter::once(self.handle.clone())
            .chain(metrics)
            .collect()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The issuer whose tokens are accepted.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The auth guard, shared with every worker.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// The embedded development issuer, when started with `--dev`.
    #[cfg(feature = "dev-issuer")]
    pub fn dev_issuer(&self) -> Option<&DevIssuer> {
        self.dev_issuer.as_ref()
    }

    /// A handle to stop the main server (the metrics listener, if any, stops with the process).
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Runs until the server is stopped through [`Application::handle`]. Signals are not
    /// handled here: the binary uses [`Application::run_until_signalled`].
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await.map_err(std::io::Error::other)?
    }
}

/// Serves `/metrics` alone on its own listener (`METRICS_ADDR`), with one worker.
fn serve_metrics(
    listener: TcpListener,
    guard: &Guard,
    telemetry: &Telemetry,
) -> Result<(SocketAddr, ServerHandle), StartupError> {
    let addr = listener.local_addr()?;
    let (guard, telemetry) = (guard.clone(), telemetry.clone());
    let server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(telemetry::log_request))
            .app_data(telemetry.clone())
            .app_data(guard.clone())
            .service(routes::metrics)
            .default_service(web::to(routes::not_found))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    Ok((addr, handle))
}

/// With `--dev`, starts the development issuer at `http://{addr}/oauth2/default` and makes
/// it the configured issuer.
#[cfg(feature = "dev-issuer")]
fn resolve_issuer(mut config: Config, addr: SocketAddr) -> Result<(Config, DevSlot), StartupError> {
    let Some(client) = &config.dev else {
        return Ok((config, None));
    };
    let issuer = crate::config::dev_issuer_url(addr);
    let mut settings = DevIssuerSettings::new(issuer.clone());
    settings.client_id = client.client_id.clone();
    settings.client_secret = client.client_secret.expose().to_owned();
    if let Some(audience) = config.auth.audiences().first() {
        settings.audience = audience.clone();
    }
    let dev = DevIssuer::new(settings).map_err(|e| std::io::Error::other(e.to_string()))?;
    config.auth = config.auth.with_issuer(issuer);
    Ok((config, Some(dev)))
}

/// What `/openapi.json` and the protected-resource metadata say: with `--dev`, the
/// development issuer's token endpoint and the scopes it grants.
#[cfg(feature = "dev-issuer")]
fn published(config: &Config, issuer: &str, dev: &DevSlot) -> Published {
    match dev {
        Some(dev) => Published::new(
            issuer,
            Some(dev.token_endpoint()),
            config.auth.required_scopes(),
            &dev.settings().scopes,
        ),
        None => Published::new(
            issuer,
            config.token_url.clone(),
            config.auth.required_scopes(),
            &[],
        ),
    }
}

#[cfg(not(feature = "dev-issuer"))]
fn published(config: &Config, issuer: &str, _: &DevSlot) -> Published {
    Published::new(
        issuer,
        config.token_url.clone(),
        config.auth.required_scopes(),
        &[],
    )
}

#[cfg(not(feature = "dev-issuer"))]
fn resolve_issuer(config: Config, _: SocketAddr) -> Result<(Config, DevSlot), StartupError> {
    Ok((config, ()))
}

/// The development issuer's path prefix (e.g. `/oauth2/default`), under `--dev`.
#[cfg(feature = "dev-issuer")]
fn dev_prefix(dev: &DevSlot) -> Option<String> {
    dev.as_ref().map(DevIssuer::path_prefix)
}

#[cfg(not(feature = "dev-issuer"))]
fn dev_prefix(_: &DevSlot) -> Option<String> {
    None
}

/// Whether `path`, percent-decoded or not, is the development issuer's (`prefix` or below).
fn is_under(path: &str, prefix: &str) -> bool {
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    [path, decoded.as_ref()].iter().any(|p| {
        p.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// actix-cors from `CORS_ALLOWED_ORIGINS`. It wraps outside auth, so 401 and 403 carry CORS
/// headers too, and a preflight never reaches a handler that wants a token. The origin is
/// checked by one function: `*` allows any, a list allows its members (the two are never
/// mixed: configuration refuses it), and nothing under `dev_prefix` (the development
/// issuer's routes) is ever allowed, whatever the list says.
fn cors(origins: &[String], dev_prefix: Option<String>) -> Cors {
    let any = origins.iter().any(|origin| origin == "*");
    let listed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    Cors::default()
        .allowed_methods(["GET", "POST", "OPTIONS"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            telemetry::REQUEST_ID,
            // RFC 9449: a browser client sends its proof, and reads a server nonce.
            header::HeaderName::from_static("dpop"),
        ])
        .expose_headers([
            header::WWW_AUTHENTICATE,
            header::RETRY_AFTER,
            telemetry::REQUEST_ID,
            header::HeaderName::from_static("dpop-nonce"),
        ])
        .max_age(3600)
        .block_on_origin_mismatch(false)
        .allowed_origin_fn(move |origin, head| {
            if dev_prefix
                .as_deref()
                .is_some_and(|prefix| is_under(head.uri.path(), prefix))
            {
                return false;
            }
            any || listed.contains(origin)
        })
}

/// Tells the person who just started the service what to do next: in `--dev` mode, the
/// issuer, the client credentials and ready-to-paste commands; otherwise where it listens.
pub fn print_banner(app: &Application) {
    let base = format!("http://{}", app.addr());
    #[cfg(feature = "dev-issuer")]
    if let Some(dev) = app.dev_issuer() {
        let s = dev.settings();
        let (id, secret, scope) = (&s.client_id, &s.client_secret, s.scopes.join(" "));
        let token_url = dev.token_endpoint();
        println!(
            "api-guard is listening on {base} with the development issuer (--dev: for trying it out, never for production)\n\
             \n  issuer         {issuer}\n  token endpoint {token_url}\n  client id      {id}\n  client secret  {secret}\n  scope          {scope}\n\
             \nGet a token (client credentials, HTTP Basic):\n\
             \n  TOKEN=$(curl -s -u '{id}:{secret}' -d grant_type=client_credentials -d 'scope={scope}' {token_url} | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')\n\
             \nCall the API:\n\
             \n  curl -i {base}/api/whoami -H \"Authorization: Bearer $TOKEN\"   # 200 with your claims\n  curl -i {base}/api/whoami                                      # 401\n  curl -i {base}/api/hello                                       # 200 for anyone\n",
            issuer = app.issuer(),
        );
        return;
    }
    let stores = app.guard().key_stores();
    let keys = if stores.iter().all(|store| store.keys > 0) {
        "signing keys loaded"
    } else if app.guard().is_ready() {
        "signing keys of some issuers not loaded yet: their tokens answer 503 until they are (see /health/ready)"
    } else {
        "signing keys not loaded yet: protected routes answer 503 and /health/ready 503 until they are"
    };
    let issuers: Vec<&str> = stores.iter().map(|store| store.issuer.as_str()).collect();
    log::info!(
        "api-guard is listening on {base}; accepting tokens of {}; {keys}",
        issuers.join(", ")
    );
}
