//! Reading an introspection answer (RFC 7662 §2.2): a JSON object whose `active` member is a
//! boolean. Anything else is not an answer, and the request it was for gets a 503: an
//! endpoint that answers garbage must never decide that a token is valid, nor that it is not.

use serde_json::{Map, Value};

/// What the endpoint said about the token.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// `active: false`: revoked, expired, or unknown to the issuer. Nothing else in the
    /// answer counts (§2.2: the server should send nothing else).
    Inactive,
    /// `active: true`, with the answer's JSON (its members are the token's claims).
    Active(String),
}

/// Reads `body`, the endpoint's 200 answer. `Err` says, for the operator's log, why it is
/// not an RFC 7662 answer.
pub(crate) fn read(body: &[u8]) -> Result<Answer, &'static str> {
    let text = std::str::from_utf8(body).map_err(|_| "the answer is not UTF-8")?;
    let object: Map<String, Value> =
        serde_json::from_str(text).map_err(|_| "the answer is not a JSON object")?;
    match object.get("active") {
        Some(Value::Bool(false)) => Ok(Answer::Inactive),
        Some(Value::Bool(true)) => {
            // Read again as the validator reads claims: each member once, strictly.
            crate::claims::read(text).map_err(|_| "the answer names a member twice")?;
            Ok(Answer::Active(text.to_owned()))
        }
        Some(_) => Err("`active` is not a boolean"),
        None => Err("the answer has no `active` member"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_boolean_active_member_makes_an_answer() {
        assert_eq!(read(br#"{"active":false}"#), Ok(Answer::Inactive));
        assert_eq!(
            read(br#"{"active":false,"scope":"x","iss":1}"#),
            Ok(Answer::Inactive)
        );
        let active = r#"{"active":true,"scope":"a b","client_id":"c"}"#;
        assert_eq!(
            read(active.as_bytes()),
            Ok(Answer::Active(active.to_owned()))
        );
        for (body, why) in [
            (&b"<html>oops</html>"[..], "the answer is not a JSON object"),
            (b"[true]", "the answer is not a JSON object"),
            (b"{}", "the answer has no `active` member"),
            (br#"{"active":"true"}"#, "`active` is not a boolean"),
            (br#"{"active":1}"#, "`active` is not a boolean"),
            (br#"{"active":null}"#, "`active` is not a boolean"),
            (
                br#"{"active":true,"scope":"a","scope":"b"}"#,
                "the answer names a member twice",
            ),
            (b"\xff", "the answer is not UTF-8"),
        ] {
            assert_eq!(read(body), Err(why), "{}", String::from_utf8_lossy(body));
        }
    }
}
