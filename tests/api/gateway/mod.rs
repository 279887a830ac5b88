//! The gateway: the reverse proxy (`UPSTREAM_URL`) in front of a tiny upstream that echoes
//! what it received, and forward-auth (`/auth/verify`).

mod forward_auth;
mod policy_rules;
mod proxy;
mod streaming;
mod upstream;
