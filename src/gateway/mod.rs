//! The gateway: api-guard in front of an API written in any language. A request's path is
//! normalised once ([`path`]), the route policy decides what it needs ([`policy`]), and the
//! normalised path is what the upstream receives, so the policy and the upstream never read
//! two different paths. ARCHITECTURE.md describes the flow.

#[doc(hidden)]
pub mod bypass;
pub mod path;
pub mod policy;
