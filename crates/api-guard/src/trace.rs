//! What [`Guard::explain`](crate::Guard::explain) reports: each check the guard ran on a
//! token, its verdict and the values it compared.
//!
//! The validator reports to a [`Trace`]. The guard's own path passes [`NoTrace`], whose
//! methods are empty and inlined, so the request path pays nothing: the values to report
//! are produced by closures it never calls. `Guard::explain` passes a [`Recorder`], which
//! keeps every check, and lets the claim checks run on past a failure so that one report
//! names every wrong claim; the first failure is still the one the guard would answer with.

use crate::error::Error;

/// One check of a token ([`Check::ALL`] lists them in the order the guard runs them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Check {
    /// Size and shape: a bearer token (RFC 6750 §2.1) of three base64url segments.
    Token,
    /// The JOSE header: JSON, no key of its own (`jku`, `jwk`, `x5u`, `x5c`), no `crit`.
    Header,
    /// The header's `alg` against the allowed algorithms.
    Algorithm,
    /// The header's `typ`: an access token's.
    Type,
    /// The key named by `kid`, in the issuer's key set.
    Key,
    /// The signature, with that key.
    Signature,
    /// The payload: a JSON object of claims, not an ID token's.
    Claims,
    /// `iss` against the issuer.
    Issuer,
    /// `aud` against the audiences.
    Audience,
    /// `exp`, with the leeway.
    Expiry,
    /// `nbf`, with the leeway.
    NotBefore,
    /// `iat`, with the leeway.
    IssuedAt,
    /// The granted scopes against the scopes every route requires.
    Scopes,
    /// The issuer's introspection answer (RFC 7662).
    Introspection,
    /// The DPoP binding (RFC 9449 §7.1–7.2) of a token presented alone, as a Bearer token
    /// is: a bound token (`cnf.jkt`) needs the DPoP scheme and a proof; `required` mode
    /// accepts only bound tokens.
    Dpop,
}

impl Check {
    /// Every check, in the order the guard runs them.
    pub const ALL: [Check; 15] = [
        Check::Token,
        Check::Header,
        Check::Algorithm,
        Check::Type,
        Check::Key,
        Check::Signature,
        Check::Claims,
        Check::Issuer,
        Check::Audience,
        Check::Expiry,
        Check::NotBefore,
        Check::IssuedAt,
        Check::Introspection,
        Check::Dpop,
        Check::Scopes,
    ];

    /// Whether only a JWT goes through this check (an opaque token is introspected instead):
    /// everything from the header to `iat`.
    pub fn is_jwt_only(self) -> bool {
        !matches!(
            self,
            Check::Token | Check::Scopes | Check::Introspection | Check::Dpop
        )
    }

    /// The short name reports use: `token`, `header`, `alg`, `typ`, `key`, `signature`,
    /// `claims`, `iss`, `aud`, `exp`, `nbf`, `iat`, `scopes`, `introspection`, `dpop`.
    pub fn name(self) -> &'static str {
        match self {
            Check::Token => "token",
            Check::Header => "header",
            Check::Algorithm => "alg",
            Check::Type => "typ",
            Check::Key => "key",
            Check::Signature => "signature",
            Check::Claims => "claims",
            Check::Issuer => "iss",
            Check::Audience => "aud",
            Check::Expiry => "exp",
            Check::NotBefore => "nbf",
            Check::IssuedAt => "iat",
            Check::Scopes => "scopes",
            Check::Introspection => "introspection",
            Check::Dpop => "dpop",
        }
    }
}

/// One check as it ran: the verdict and what was compared.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckReport {
    /// Which check.
    pub check: Check,
    /// `Ok` if it passed; else the error the guard answers with.
    pub outcome: Result<(), Error>,
    /// The token's value (for times: seconds since the epoch), if it has one. Text from
    /// the token: quote it before it reaches a terminal or a log.
    pub found: Option<String>,
    /// What the settings expect, or what the value was checked against.
    pub expected: Option<String>,
}

/// A report of every check the guard ran on one token (see
/// [`Guard::explain`](crate::Guard::explain)).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Explanation {
    /// The checks, in the order they ran; a check after a failed one that needs it (the
    /// signature after a missing key) is not there.
    pub checks: Vec<CheckReport>,
    /// What the guard answers for this token.
    pub result: Result<crate::AuthenticatedClaims, Error>,
    /// The time the checks ran at, in seconds since the epoch.
    pub now: u64,
}

/// What a check compared: the token's value and the expected one.
#[derive(Default)]
pub(crate) struct Detail {
    pub(crate) found: Option<String>,
    pub(crate) expected: Option<String>,
}

impl Detail {
    pub(crate) fn new(found: Option<String>, expected: impl Into<String>) -> Detail {
        Detail {
            found,
            expected: Some(expected.into()),
        }
    }
}

/// Where checks are reported.
pub(crate) trait Trace {
    /// Whether the claim checks go on past a failure (the result is the first failure
    /// either way).
    const GO_ON: bool;

    /// Reports one check; `detail` is called only by a trace that keeps it.
    fn record(
        &mut self,
        check: Check,
        outcome: &Result<(), Error>,
        detail: impl FnOnce() -> Detail,
    );
}

/// The guard's trace: nothing is recorded, nothing computed.
pub(crate) struct NoTrace;

impl Trace for NoTrace {
    const GO_ON: bool = false;

    #[inline(always)]
    fn record(&mut self, _: Check, _: &Result<(), Error>, _: impl FnOnce() -> Detail) {}
}

/// Keeps every check, for [`Explanation`].
#[derive(Default)]
pub(crate) struct Recorder(pub(crate) Vec<CheckReport>);

impl Trace for Recorder {
    const GO_ON: bool = true;

    fn record(
        &mut self,
        check: Check,
        outcome: &Result<(), Error>,
        detail: impl FnOnce() -> Detail,
    ) {
        let Detail { found, expected } = detail();
        self.0.push(CheckReport {
            check,
            outcome: outcome.clone(),
            found,
            expected,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Reason;
    use crate::testing::TestIssuer;

    fn failed(explanation: &Explanation) -> Vec<(&'static str, &'static str)> {
        explanation
            .checks
            .iter()
            .filter_map(|c| Some((c.check.name(), c.outcome.as_ref().err()?.reason_code())))
            .collect()
    }

    #[test]
    fn every_check_is_listed_once_and_the_jwt_only_ones_run_from_header_to_iat() {
        let names: std::collections::HashSet<&str> = Check::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), Check::ALL.len());
        let jwt_only: Vec<&str> = Check::ALL
            .iter()
            .filter(|c| c.is_jwt_only())
            .map(|c| c.name())
            .collect();
        assert_eq!(
            jwt_only,
            [
                "header",
                "alg",
                "typ",
                "key",
                "signature",
                "claims",
                "iss",
                "aud",
                "exp",
                "nbf",
                "iat"
            ]
        );
    }

    #[actix_web::test]
    async fn explain_reports_every_wrong_claim_and_answers_with_the_first() {
        let issuer = TestIssuer::new();
        let guard = issuer.guard();
        let token = issuer.token().wrong_audience().expired().mint();
        let explanation = guard.explain(&token).await;
        assert_eq!(
            failed(&explanation),
            [("aud", "wrong_audience"), ("exp", "expired")]
        );
        assert_eq!(explanation.result.clone().err(), guard.verify(&token).err());
        assert_eq!(
            explanation.result.err(),
            Some(Error::InvalidToken(Reason::WrongAudience))
        );
        let names: Vec<&str> = explanation.checks.iter().map(|c| c.check.name()).collect();
        assert_eq!(
            names,
            [
                "token",
                "header",
                "alg",
                "typ",
                "key",
                "signature",
                "claims",
                "iss",
                "aud",
                "exp",
                "nbf",
                "iat"
            ]
        );
    }

    #[actix_web::test]
    async fn explain_of_a_valid_token_passes_every_check_up_to_the_scopes() {
        let issuer = TestIssuer::new();
        let guard = issuer.guard_with(issuer.settings().with_required_scopes(["a"]));
        let explanation = guard.explain(&issuer.token().scopes(["a"]).mint()).await;
        assert!(explanation.result.is_ok());
        assert!(failed(&explanation).is_empty());
        let scopes = explanation.checks.last().unwrap();
        assert_eq!(scopes.check, Check::Scopes);
        assert_eq!(scopes.found.as_deref(), Some("a"));
        let token = issuer.token().mint();
        let refused = guard.explain(&token).await;
        assert_eq!(failed(&refused), [("scopes", "insufficient_scope")]);
        assert_eq!(refused.result.err(), guard.verify(&token).err());
    }
}
