//! The black-box suite: the real service and the real development issuer over HTTP on
//! loopback. One test binary (every file under tests/ would link separately).
#![allow(missing_docs, clippy::unwrap_used)]

mod binary;
mod config_errors;
mod cors;
mod discovery;
mod dpop;
mod dpop_redis;
mod echo;
mod explain;
mod forged;
mod gateway;
mod hardening;
mod healthcheck;
mod hello_whoami;
mod helpers;
mod introspection;
mod issuer_outage;
mod issuers;
mod key_rotation;
mod library;
mod observability;
mod openapi;
mod private_ca;
mod process;
mod rfc6750;
mod shutdown;
mod token_cache;
mod token_shapes;
