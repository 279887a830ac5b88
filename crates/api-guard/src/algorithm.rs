//! The JWS algorithms a token may be signed with (RFC 7518 §3.1, RFC 8037 §3.1): the
//! asymmetric ones only, so no setting can ever let a public key act as an HMAC secret
//! (RFC 8725 §2.1, §3.1).
//!
//! ```
//! use api_guard::Algorithm;
//!
//! assert_eq!("ES256".parse::<Algorithm>(), Ok(Algorithm::ES256));
//! assert!("HS256".parse::<Algorithm>().is_err());
//! assert_eq!(Algorithm::EdDSA.to_string(), "EdDSA");
//! ```

use std::fmt;
use std::str::FromStr;

/// An asymmetric JWS signing algorithm api-guard verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(clippy::upper_case_acronyms)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256: what Okta signs with.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// Ed25519 (RFC 8037).
    EdDSA,
}

impl Algorithm {
    /// Every algorithm, in the order settings list them by default.
    pub const ALL: [Algorithm; 9] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    /// The JWS `alg` name, as tokens and JWKs write it.
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a name is not an [`Algorithm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AlgorithmError {
    /// `HS256`, `HS384` or `HS512`: never accepted (RFC 8725 §2.1).
    #[error("is a shared-secret algorithm and is never allowed")]
    SharedSecret,
    /// Any other name, `none` included. Names are case-sensitive (RFC 7518 §3.1).
    #[error("is not a supported algorithm")]
    Unknown,
}

impl FromStr for Algorithm {
    type Err = AlgorithmError;

    /// Exact, case-sensitive names: a token saying `rs256` names no algorithm.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        if matches!(name, "HS256" | "HS384" | "HS512") {
            return Err(AlgorithmError::SharedSecret);
        }
        Algorithm::ALL
            .into_iter()
            .find(|alg| alg.name() == name)
            .ok_or(AlgorithmError::Unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_nothing_else_parses() {
        for alg in Algorithm::ALL {
            assert_eq!(alg.name().parse(), Ok(alg));
        }
        for name in ["HS256", "HS384", "HS512"] {
            assert_eq!(name.parse::<Algorithm>(), Err(AlgorithmError::SharedSecret));
        }
        for name in [
            "none", "None", "rs256", "RS256 ", "", "ES512", "ES256K", "Ed25519",
        ] {
            assert_eq!(
                name.parse::<Algorithm>(),
                Err(AlgorithmError::Unknown),
                "{name}"
            );
        }
    }
}
