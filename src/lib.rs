//! The api-guard service: the `api-guard` binary built on the `api-guard` library crate.
//!
//! It holds what only the binary needs: the configuration ([`config`]: flags, environment,
//! `.env`), logging and metrics ([`telemetry`]), the sample routes ([`routes`]), the
//! development issuer behind `--dev` (`dev_issuer`, feature `dev-issuer`), the gateway
//! (reverse proxy and forward-auth, [`gateway`]), start-up ([`startup`]), graceful shutdown
//! ([`shutdown`]) and the `healthcheck` and `explain` subcommands ([`healthcheck`],
//! [`explain`]). Token validation itself is the
//! library's: a Rust service that only wants to protect its handlers depends on `api-guard`,
//! not on this package. ARCHITECTURE.md describes the layering.

pub mod config;
#[cfg(feature = "dev-issuer")]
pub mod dev_issuer;
pub mod explain;
pub mod gateway;
pub mod healthcheck;
pub mod loopback;
pub mod public_url;
pub mod routes;
pub mod shutdown;
pub mod startup;
pub mod telemetry;

pub use config::{Cli, Config, ConfigError};
pub use startup::{Application, StartupError};
