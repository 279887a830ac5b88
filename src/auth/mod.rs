//! The security core: bearer token in, verified claims or an RFC 6750 challenge out.
//!
//! One file per step of the flow (DESIGN.md, "The shape"): [`bearer`] reads the token,
//! [`Validator`] checks it against the [`jwks`] key store, [`Error`] answers the caller, and
//! [`resource_metadata`] points its challenge to the protected-resource metadata.

pub mod bearer;
mod cache;
mod claims;
pub mod error;
mod extractor;
pub mod jwks;
pub mod resource_metadata;
mod validator;

pub use cache::{CacheStats, DEFAULT_TOKEN_CACHE_BYTES, TokenCache};
pub use claims::AuthenticatedClaims;
pub use error::{Error, REALM, Reason};
pub use extractor::{Guard, configure, require_token};
pub use resource_metadata::{WELL_KNOWN_PATH, advertise_resource_metadata};
pub use validator::{DEFAULT_MAX_TOKEN_BYTES, Validator};
