//! The report of `api-guard explain`: one line per check, in the order the guard runs them,
//! with the verdict, the values compared and, for a failure, what to change; or one JSON
//! object. The token itself and its signature are never printed; values read from the token
//! are escaped and bounded; the claims of a valid token are shown with the sensitive ones
//! ([`SENSITIVE_CLAIMS`]) redacted.

use api_guard::{AuthError, Check, CheckReport, Explanation, Guard};
use serde_json::{Map, Value, json};

/// Claims whose values are never printed: the personal data of OpenID Connect Core §5.1
/// and Okta's user name.
pub const SENSITIVE_CLAIMS: &[&str] = &[
    "name",
    "given_name",
    "family_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "username",
    "email",
    "phone_number",
    "address",
    "birthdate",
    "profile",
    "picture",
    "website",
    "gender",
];

/// The most characters of a value from the token that are printed.
const MAX_VALUE_CHARS: usize = 200;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Pass,
    Fail,
    Skipped,
    NotChecked,
}

impl Verdict {
    fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "ok",
            Verdict::Fail => "FAIL",
            Verdict::Skipped => "skip",
            Verdict::NotChecked => "--",
        }
    }

    fn json(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Skipped => "skipped",
            Verdict::NotChecked => "not_checked",
        }
    }
}

struct Line {
    name: &'static str,
    verdict: Verdict,
    /// The values compared.
    text: String,
    /// For a failure: what to change.
    fix: Option<String>,
    found: Option<String>,
    expected: Option<String>,
}

/// A report, ready to print.
pub struct Report<'e> {
    issuer: String,
    explanation: &'e Explanation,
    lines: Vec<Line>,
}

impl<'e> Report<'e> {
    /// The report of `explanation`, made by `guard`.
    pub fn new(guard: &Guard, explanation: &'e Explanation) -> Report<'e> {
        let issuer = guard.settings().issuer().to_owned();
        let introspection = guard
            .settings()
            .introspection()
            .map_or("off", |i| i.mode().name());
        let opaque = explanation
            .checks
            .iter()
            .any(|c| c.check == Check::Token && c.outcome.is_ok())
            && !explanation.checks.iter().any(|c| c.check == Check::Header);
        let lines = Check::ALL
            .iter()
            .map(|&check| {
                let name = check.name();
                if let Some(ran) = explanation.checks.iter().find(|c| c.check == check) {
                    return line(ran, &issuer, explanation.now);
                }
                if check == Check::Introspection && introspection == "off" {
                    return skipped(name, "off (AUTH_INTROSPECTION=off)");
                }
                if check == Check::Introspection && introspection == "opaque" && !opaque {
                    return skipped(name, "JWTs are checked locally (AUTH_INTROSPECTION=opaque)");
                }
                if opaque && check.is_jwt_only() {
                    return skipped(name, "an opaque token: introspection checks it instead");
                }
                Line {
                    name,
                    verdict: Verdict::NotChecked,
                    text: "not checked: an earlier check failed".into(),
                    fix: None,
                    found: None,
                    expected: None,
                }
            })
            .collect();
        Report {
            issuer,
            explanation,
            lines,
        }
    }

    /// One line per check, then the outcome.
    pub fn text(&self) -> String {
        let mut out = format!(
            "api-guard explain: checking a token of {} bytes against issuer {}\n",
            self.token_bytes(),
            self.issuer
        );
        for line in &self.lines {
            out.push_str(&format!(
                "  {:<5} {:<14} {}\n",
                line.verdict.label(),
                line.name,
                line.text
            ));
            if let Some(fix) = &line.fix {
                out.push_str(&format!("  {:<5} {:<14} -> {fix}\n", "", ""));
            }
        }
        match &self.explanation.result {
            Ok(claims) => {
                out.push_str(&format!(
                    "claims: {}\nvalid: the service accepts this token\n",
                    Value::Object(redacted(claims.claims()))
                ));
            }
            Err(error) => out.push_str(&format!(
                "{}: {} {} ({}): {}\n",
                if is_unavailable(error) {
                    "not checked"
                } else {
                    "refused"
                },
                actix_web::ResponseError::status_code(error).as_u16(),
                error.code(),
                error.reason_code(),
                error.description()
            )),
        }
        out
    }

    /// One JSON object: `valid`, the answer the service gives (`status`, `error`, `reason`,
    /// `error_description`), the `checks` and, for a valid token, its `claims` (redacted).
    pub fn json(&self) -> Value {
        let result = &self.explanation.result;
        let error = result.as_ref().err();
        let checks: Vec<Value> = self
            .lines
            .iter()
            .map(|line| {
                json!({
                    "check": line.name,
                    "verdict": line.verdict.json(),
                    "found": line.found,
                    "expected": line.expected,
                    "detail": line.text,
                    "fix": line.fix,
                })
            })
            .collect();
        json!({
            "valid": result.is_ok(),
            "status": error.map_or(200, |e| actix_web::ResponseError::status_code(e).as_u16()),
            "error": error.map(AuthError::code),
            "reason": error.map(AuthError::reason_code),
            "error_description": error.map(AuthError::description),
            "issuer": self.issuer,
            "now": self.explanation.now,
            "checks": checks,
            "claims": result.as_ref().ok().map(|c| Value::Object(redacted(c.claims()))),
        })
    }

    fn token_bytes(&self) -> String {
        // The token check names the size; the token itself is not here to measure.
        self.explanation
            .checks
            .first()
            .and_then(|c| c.found.as_deref())
            .and_then(|found| found.split(' ').next())
            .unwrap_or("?")
            .to_owned()
    }
}

fn is_unavailable(error: &AuthError) -> bool {
    matches!(
        error,
        AuthError::KeysUnavailable { .. } | AuthError::IntrospectionUnavailable { .. }
    )
}

fn skipped(name: &'static str, why: &str) -> Line {
    Line {
        name,
        verdict: Verdict::Skipped,
        text: why.to_owned(),
        fix: None,
        found: None,
        expected: None,
    }
}

/// A check's line: what was compared, and for a failure what to change.
fn line(check: &CheckReport, issuer: &str, now: u64) -> Line {
    let name = check.check.name();
    let found = check.found.as_deref().map(clean);
    let expected = check.expected.as_deref().map(clean);
    let shown = found.clone().unwrap_or_else(|| "(none)".to_owned());
    let want = expected.clone().unwrap_or_default();
    let text = match name {
        "token" | "header" => match &check.outcome {
            Ok(()) => shown.clone(),
            Err(_) => format!("{shown}; expected {want}"),
        },
        "alg" => format!("alg `{shown}`; allowed (AUTH_ALGORITHMS): {want}"),
        "typ" => format!("typ `{shown}`; accepted: {want}"),
        "key" => format!("kid `{shown}` in the key store of issuer {issuer}: {want}"),
        "signature" => match &check.outcome {
            Ok(()) => format!("verifies ({want})"),
            Err(_) => format!("does not verify ({want})"),
        },
        "claims" => match &check.outcome {
            Ok(()) => "a JSON object of claims, not an ID token's".to_owned(),
            Err(_) => format!("expected {want}"),
        },
        "iss" => format!("iss `{shown}`; AUTH_ISSUER `{want}`"),
        "aud" => format!("aud `{shown}`; AUTH_AUDIENCE `{want}`"),
        "exp" | "nbf" | "iat" => format!("{}; {want}", date(found.as_deref(), now)),
        "dpop" => format!("{shown}; presented alone, as a Bearer token; {want}"),
        "scopes" if want.is_empty() => format!("granted `{shown}`; none required"),
        "scopes" => format!("granted `{shown}`; AUTH_REQUIRED_SCOPES `{want}`"),
        _ => format!("{shown}; expected {want}"),
    };
    let fix = check
        .outcome
        .as_ref()
        .err()
        .map(|error| fix(name, error, &shown, &want, now));
    Line {
        name,
        verdict: if check.outcome.is_ok() {
            Verdict::Pass
        } else {
            Verdict::Fail
        },
        text,
        fix,
        found,
        expected,
    }
}

/// What to change when check `name` failed with `error`.
fn fix(name: &str, error: &AuthError, found: &str, expected: &str, now: u64) -> String {
    let first_audience = found
        .trim_start_matches('[')
        .split([',', ']'])
        .next()
        .unwrap_or(found);
    match (name, error.reason_code()) {
        ("token", "malformed_header") => "the token has characters a bearer token cannot have (RFC 6750 §2.1): pass the access token alone, without quotes or line breaks".into(),
        ("token", "too_large") => "the token is larger than 8 KiB: no access token of Okta's is; check what is being sent".into(),
        ("token", _) => "this is not a JWT (three base64url segments): pass the access token, not an ID or refresh token; for opaque tokens set AUTH_INTROSPECTION=opaque".into(),
        ("header", "key_in_header") => "the header carries or points to a key (jku, jwk, x5u, x5c): keys are taken only from the issuer's key set, so such a token is never accepted".into(),
        ("header", "unsupported_critical") => "the header lists critical extensions (crit) that api-guard does not support: the issuer must not send them".into(),
        ("header", _) => "the header is not a JSON object naming each parameter once: the token is damaged".into(),
        ("alg", _) => format!("alg is `{found}`, AUTH_ALGORITHMS is `{expected}`: add {found} to AUTH_ALGORITHMS if your issuer signs with it (HS* and none are never accepted)"),
        ("typ", _) => format!("typ is `{found}`: send an access token ({expected}), not an ID token or another JWT"),
        ("key", "unknown_kid") => format!("no key `{found}` in the key set of {expected}: the token comes from another issuer or authorization server (compare its iss with AUTH_ISSUER), or its key was retired: get a new token"),
        ("key", "missing_kid") => "the token names no kid and the issuer publishes several keys: the issuer must set kid".into(),
        ("key", "keys_unavailable") => "the issuer's keys could not be loaded: check AUTH_ISSUER (or AUTH_JWKS_URI) and that this host reaches the issuer".into(),
        ("key", _) => format!("the key `{found}` is not made for the token's alg: the token is forged or the issuer misconfigured"),
        ("signature", _) => "the signature does not verify with the issuer's key: the token was altered, or signed by another issuer under the same kid".into(),
        ("claims", "wrong_type") => "the token carries ID-token claims (nonce, at_hash, c_hash): send the access token, not the ID token".into(),
        ("claims", "bad_claim") => "sub, client_id, cid or scope is not a string: the issuer's token is malformed".into(),
        ("claims", _) => "the claims are not a JSON object naming each claim once: the token is damaged".into(),
        ("iss", "wrong_issuer") => format!("iss is `{found}`, AUTH_ISSUER is `{expected}`: set AUTH_ISSUER={found} (exactly, trailing slash included) or get a token from {expected}"),
        ("aud", "wrong_audience") => format!("aud is `{found}`, AUTH_AUDIENCE is `{expected}`: set AUTH_AUDIENCE={first_audience} or request a token for this audience"),
        ("iss" | "aud" | "exp", "missing_claim") => format!("the token has no `{name}`: the issuer must include it"),
        ("exp", "expired") => format!("the token expired {}: get a new token", relative(found, now)),
        ("nbf", "not_yet_valid") | ("iat", "issued_in_future") => format!("the token's {name} is {}: the clocks of this host and the issuer disagree (check NTP), or wait", relative(found, now)),
        (_, "bad_claim") => format!("`{name}` has the wrong JSON type (`{found}`): the issuer's token is malformed"),
        ("introspection", "inactive") => "the issuer says the token is not active: it was revoked or has expired; get a new token".into(),
        ("introspection", "introspection_unavailable") => "the introspection endpoint gave no usable answer (the warning on stderr says why): check AUTH_INTROSPECTION_URL, AUTH_INTROSPECTION_CLIENT_ID and AUTH_INTROSPECTION_CLIENT_SECRET".into(),
        ("introspection", reason) => format!("the introspection answer's claims fail a check ({reason}): {}", error.description()),
        ("dpop", "bound_token_as_bearer") => "the token is bound to a key (cnf.jkt): present it as `Authorization: DPoP <token>` with a `DPoP` proof signed by that key (`cargo run --example dpop-client` shows how); explain checks a token alone, as Bearer".into(),
        ("dpop", "dpop_required") => "AUTH_DPOP=required accepts only DPoP-bound tokens: request the token with a `DPoP` proof (its answer says token_type DPoP), or set AUTH_DPOP=allowed".into(),
        ("scopes", _) => format!("the token grants `{found}`, AUTH_REQUIRED_SCOPES needs `{expected}`: request the token with scope={expected}, or change AUTH_REQUIRED_SCOPES"),
        _ => error.description().to_owned(),
    }
}

/// A NumericDate as an RFC 3339 date and how far from `now` it is.
fn date(found: Option<&str>, now: u64) -> String {
    match found.and_then(|f| f.parse::<f64>().ok()) {
        Some(secs) if secs.is_finite() && secs >= 0.0 => {
            format!(
                "{} ({})",
                rfc3339(secs as i64),
                relative_secs(secs as i64 - now as i64)
            )
        }
        _ => found.map_or_else(|| "(none)".to_owned(), str::to_owned),
    }
}

fn relative(found: &str, now: u64) -> String {
    match found.parse::<f64>() {
        Ok(secs) if secs.is_finite() => format!(
            "{} ({})",
            relative_secs(secs as i64 - now as i64),
            rfc3339(secs as i64)
        ),
        _ => format!("`{found}`"),
    }
}

/// `in 1h 2m` or `3m 4s ago`.
fn relative_secs(delta: i64) -> String {
    let magnitude = delta.unsigned_abs();
    let (d, h, m, s) = (
        magnitude / 86_400,
        magnitude / 3600 % 24,
        magnitude / 60 % 60,
        magnitude % 60,
    );
    let span = match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    };
    if delta >= 0 {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (the civil calendar, proleptic
/// Gregorian, from days since the epoch).
fn rfc3339(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// A value from the token, fit for a terminal: control characters escaped, bounded.
fn clean(value: &str) -> String {
    let mut out: String = value
        .chars()
        .take(MAX_VALUE_CHARS)
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if value.chars().count() > MAX_VALUE_CHARS {
        out.push_str(&format!("… ({} characters)", value.chars().count()));
    }
    out
}

/// The claims, with [`SENSITIVE_CLAIMS`]' values replaced.
fn redacted(claims: &Map<String, Value>) -> Map<String, Value> {
    claims
        .iter()
        .map(|(name, value)| {
            let value = if SENSITIVE_CLAIMS.contains(&name.as_str()) {
                Value::from("[redacted]")
            } else {
                value.clone()
            };
            (name.clone(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc3339_with_how_far_off_they_are() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_764_480_000), "2025-11-30T05:20:00Z");
        assert_eq!(relative_secs(-47), "47s ago");
        assert_eq!(relative_secs(3552), "in 59m 12s");
        assert_eq!(relative_secs(-90_061), "1d 1h ago");
        assert_eq!(
            date(Some("1764480000"), 1_764_480_060),
            "2025-11-30T05:20:00Z (1m 0s ago)"
        );
    }

    #[test]
    fn values_from_the_token_are_escaped_and_bounded() {
        assert_eq!(clean("a\nb\u{1b}"), "a\\nb\\u{1b}");
        let long = clean(&"x".repeat(1000));
        assert!(
            long.ends_with("… (1000 characters)") && long.len() < 260,
            "{long}"
        );
    }

    #[test]
    fn sensitive_claims_are_redacted() {
        let claims = json!({"sub": "0oa1", "email": "a@b.c", "scp": ["x"]});
        let shown = redacted(claims.as_object().unwrap());
        assert_eq!(
            Value::Object(shown),
            json!({"sub": "0oa1", "email": "[redacted]", "scp": ["x"]})
        );
    }

    #[test]
    fn a_wrong_audience_says_which_setting_to_change() {
        let error = AuthError::from(api_guard::Reason::WrongAudience);
        assert_eq!(
            fix("aud", &error, "api://orders", "api://default", 0),
            "aud is `api://orders`, AUTH_AUDIENCE is `api://default`: set AUTH_AUDIENCE=api://orders or request a token for this audience"
        );
        assert!(
            fix("aud", &error, "[api://a,api://b]", "api://default", 0)
                .contains("set AUTH_AUDIENCE=api://a ")
        );
    }
}
