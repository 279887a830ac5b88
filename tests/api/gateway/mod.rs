//! The gateway: the reverse proxy (`UPSTREAM_URL`) in front of a tiny upstream that echoes
//! what it received, and forward-auth (`/auth/verify`).

mod forward_auth;
mod proxy;
mod streaming;
mod upstream;
// To enable after the route-policy merge (it needs AUTH_POLICY_FILE): `mod policy_rules;`.
