//! The gateway: api-guard in front of an API written in any language, in two ways.
//!
//! - **Reverse proxy** (`UPSTREAM_URL`, [`proxy`]): every request that is not one of
//!   api-guard's own routes has its path normalised ([`path`]), meets the route [`policy`]
//!   and, unless the rule is anonymous, the library's guard; then it goes to the upstream with
//!   the identity headers (`X-Auth-*`), bodies streamed both ways (RFC 9110 §7.6 for what a
//!   proxy forwards).
//! - **Forward-auth** (`/auth/verify`, [`verify`]): the same normalisation, policy and guard
//!   for the request a front proxy (nginx `auth_request`, Caddy `forward_auth`, Traefik
//!   `forwardAuth`) describes in its headers; the answer is 200 with the identity headers, or
//!   the service's own 401/403.
//!
//! Both share one step ([`access`]) and one error type ([`Error`]); authentication errors are
//! the library's own, so their status, challenge and body are the ones the sample API sends.
//! A request's path is normalised once, and the normalised path is what the upstream
//! receives, so the policy and the upstream never read two different paths.
//!
//! ```no_run
//! # async fn run(config: api_guard_server::Config) -> Result<(), Box<dyn std::error::Error>> {
//! // UPSTREAM_URL=http://127.0.0.1:3000 in the environment turns it on:
//! let app = api_guard_server::Application::build(config).await?;
//! app.run_until_stopped().await?;
//! # Ok(())
//! # }
//! ```

mod access;
mod body;
#[doc(hidden)]
pub mod bypass;
mod error;
mod headers;
mod identity;
pub mod path;
pub mod policy;
mod proxy;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;

pub use error::Error;
pub use policy::Policy;

use crate::telemetry::TrustedProxies;

/// The path of forward-auth.
pub const VERIFY_PATH: &str = "/auth/verify";

/// Where and how requests are proxied (`UPSTREAM_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSettings {
    /// `http(s)://host[:port]`, no trailing `/` (`UPSTREAM_URL`).
    pub origin: String,
    /// Keep `Authorization` and `DPoP` (`UPSTREAM_FORWARD_TOKEN`).
    pub forward_token: bool,
    /// Send the client's `Host` instead of the upstream's (`UPSTREAM_PRESERVE_HOST`).
    pub preserve_host: bool,
    /// To open a connection (`UPSTREAM_CONNECT_TIMEOUT_SECS`).
    pub connect_timeout: Duration,
    /// To the response headers, and between two pieces of the response body
    /// (`UPSTREAM_TIMEOUT_SECS`).
    pub timeout: Duration,
    /// Largest request body (`UPSTREAM_MAX_BODY_BYTES`).
    pub max_body_bytes: u64,
}

/// What every worker shares: the policy, the trusted proxies and, in gateway mode, the
/// upstream. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Gateway(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    policy: Arc<Policy>,
    trusted: TrustedProxies,
    upstream: Option<UpstreamSettings>,
}

/// How long an idle connection to the upstream is kept for the next request: under the
/// 5 s idle timeout of Node.js (and others), so api-guard never sends on a connection the
/// upstream is closing (requests are not retried).
const UPSTREAM_IDLE: Duration = Duration::from_secs(4);
/// Connections to the upstream per worker, at most.
const UPSTREAM_CONNECTIONS: usize = 1024;

impl Gateway {
    /// The gateway of a process: `upstream` is `None` for forward-auth alone.
    pub fn new(
        policy: Arc<Policy>,
        trusted: TrustedProxies,
        upstream: Option<UpstreamSettings>,
    ) -> Self {
        Gateway(Arc::new(Shared {
            policy,
            trusted,
            upstream,
        }))
    }

    /// Whether requests are proxied (`UPSTREAM_URL` is set).
    pub fn proxies(&self) -> bool {
        self.0.upstream.is_some()
    }

    /// Registers `/auth/verify` (every method) and, in gateway mode, the proxy for every path
    /// no earlier route took, with one HTTP client for this worker (keep-alive to the
    /// upstream). Call it inside `HttpServer::new`, after api-guard's own routes and, in
    /// gateway mode, with no other default service.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(self.clone())
            .route(VERIFY_PATH, web::route().to(verify::verify));
        if let Some(upstream) = &self.0.upstream {
            // The default service, not a `/{tail:.*}` route: no pattern to match (a regular
            // expression) on every request, and a request-target that is not a path (`*`)
            // meets the normalisation too. The metrics name it by its RouteLabel.
            cfg.app_data(proxy::Upstream::new(upstream))
                .default_service(web::to(proxy::proxy));
        }
    }
}
