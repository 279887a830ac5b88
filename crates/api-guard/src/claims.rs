//! The verified claims of an access token, in both common shapes.
//!
//! Okta writes scopes as an `scp` array and the client as `cid`; RFC 9068 §2.2 writes a
//! space-separated `scope` string and `client_id`. Both are read, and matched exactly.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::de::{self, Deserialize, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{Error, Reason};

/// The claims of an access token whose signature, issuer, audience and lifetime were verified.
///
/// Taking it as a handler argument is what protects the handler:
///
/// ```no_run
/// use actix_web::{HttpResponse, get};
/// use api_guard::AuthenticatedClaims;
///
/// #[get("/orders")]
/// async fn orders(claims: AuthenticatedClaims) -> Result<HttpResponse, api_guard::AuthError> {
///     claims.require_scopes(&["orders:read"])?;
///     Ok(HttpResponse::Ok().body(format!("orders of {}", claims.client_id().unwrap_or("?"))))
/// }
/// ```
///
/// With a type of your own, `AuthenticatedClaims<T>` also deserialises the verified claims
/// into `T` (any `serde::Deserialize` type; unknown claims are ignored unless `T` says
/// otherwise). A token whose claims do not fit `T` is refused with 401 `invalid_token`
/// (`bad_claim`), as a malformed registered claim would be:
///
/// ```no_run
/// use actix_web::{HttpResponse, get};
/// use api_guard::AuthenticatedClaims;
///
/// #[derive(serde::Deserialize)]
/// struct Tenant {
///     tenant_id: String,
/// }
///
/// #[get("/invoices")]
/// async fn invoices(claims: AuthenticatedClaims<Tenant>) -> HttpResponse {
///     HttpResponse::Ok().body(format!("invoices of tenant {}", claims.custom().tenant_id))
/// }
/// ```
///
/// Cloning the untyped form is cheap: the claims are shared.
#[derive(Clone)]
pub struct AuthenticatedClaims<T = ()> {
    verified: Arc<Inner>,
    custom: T,
}

struct Inner {
    /// The claims as the issuer signed them: one JSON object, valid UTF-8 and valid JSON,
    /// every top-level claim name once (objects inside claims are not checked for
    /// duplicate names; `claims()` keeps the last value of such a name).
    json: Box<str>,
    sub: Option<Box<str>>,
    client_id: Option<Box<str>>,
    scopes: Vec<String>,
    /// `cnf.jkt` (RFC 9449 §6.1): the thumbprint of the key the token is bound to.
    dpop_thumbprint: Option<Box<str>>,
    /// Every claim as a map, parsed from `json` only if asked for.
    map: OnceLock<Map<String, Value>>,
}

impl AuthenticatedClaims {
    /// Wraps claims that were verified: their JSON and what [`Registered`] read from it.
    /// Only the validator calls this.
    pub(crate) fn from_verified(json: &str, registered: &Registered<'_>) -> Self {
        let owned = |claim: &Option<Claim<'_>>| match claim {
            Some(Claim::Str(value)) => Some(Box::from(value.as_ref())),
            _ => None,
        };
        let inner = Inner {
            json: Box::from(json),
            sub: owned(&registered.sub),
            client_id: owned(&registered.client_id).or_else(|| owned(&registered.cid)),
            scopes: scopes_of(registered),
            dpop_thumbprint: match &registered.cnf {
                Some(Confirmation {
                    jkt: Some(Claim::Str(jkt)),
                }) => Some(Box::from(jkt.as_ref())),
                _ => None,
            },
            map: OnceLock::new(),
        };
        AuthenticatedClaims {
            verified: Arc::new(inner),
            custom: (),
        }
    }

    /// The same claims, also deserialised into `T`. For `T = ()`, nothing is parsed.
    pub(crate) fn with_custom<T: DeserializeOwned + 'static>(
        self,
    ) -> Result<AuthenticatedClaims<T>, Error> {
        let custom = if std::any::TypeId::of::<T>() == std::any::TypeId::of::<()>() {
            T::deserialize(de::value::UnitDeserializer::<serde_json::Error>::new())
        } else {
            serde_json::from_str(&self.verified.json)
        };
        match custom {
            Ok(custom) => Ok(AuthenticatedClaims {
                verified: self.verified,
                custom,
            }),
            Err(error) => {
                log::debug!(
                    "the verified claims do not fit {}: {}",
                    std::any::type_name::<T>(),
                    crate::outside::quoted(&error.to_string())
                );
                Err(Error::from(Reason::BadClaim))
            }
        }
    }
}

impl<T> AuthenticatedClaims<T> {
    /// `sub`: the subject (for client credentials, usually the client id). Optional in
    /// some issuers' tokens.
    pub fn sub(&self) -> Option<&str> {
        self.verified.sub.as_deref()
    }

    /// The OAuth client the token was issued to: `client_id` (RFC 9068) or Okta's `cid`.
    pub fn client_id(&self) -> Option<&str> {
        self.verified.client_id.as_deref()
    }

    /// The granted scopes, from Okta's `scp` array and the standard `scope` string.
    pub fn scopes(&self) -> &[String] {
        &self.verified.scopes
    }

    /// Whether the token grants exactly this scope (no prefix or case folding).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.verified.scopes.iter().any(|granted| granted == scope)
    }

    /// `Ok` if every scope is granted; otherwise the 403 `insufficient_scope` error naming
    /// all of `required`, ready to return from a handler with `?`.
    pub fn require_scopes(&self, required: &[&str]) -> Result<(), Error> {
        if required.iter().all(|scope| self.has_scope(scope)) {
            Ok(())
        } else {
            Err(Error::InsufficientScope {
                required: required.iter().map(|s| s.to_string()).collect(),
            })
        }
    }

    /// `cnf.jkt` (RFC 9449 §6.1): the RFC 7638 thumbprint of the key the token is bound to,
    /// if it is DPoP-bound. Such a token is accepted only as `Authorization: DPoP` with a
    /// proof signed by that key.
    pub fn dpop_thumbprint(&self) -> Option<&str> {
        self.verified.dpop_thumbprint.as_deref()
    }

    /// Every verified claim, as the issuer sent it (parsed on first use).
    pub fn claims(&self) -> &Map<String, Value> {
        self.verified.map.get_or_init(|| {
            // The validator parsed this JSON already, as strictly: it cannot fail here.
            serde_json::from_str(&self.verified.json).unwrap_or_default()
        })
    }

    /// Every verified claim as one JSON object: the token's own claims, as signed (claim
    /// order and spacing are the issuer's).
    pub fn claims_json(&self) -> &str {
        &self.verified.json
    }

    /// One claim by name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.claims().get(name)
    }

    /// The claims deserialised into your own type.
    pub fn custom(&self) -> &T {
        &self.custom
    }

    /// Your own claims, taken out.
    pub fn into_custom(self) -> T {
        self.custom
    }
}

impl<T: fmt::Debug> fmt::Debug for AuthenticatedClaims<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticatedClaims")
            .field("sub", &self.sub())
            .field("client_id", &self.client_id())
            .field("scopes", &self.scopes())
            .field("custom", &self.custom)
            .finish_non_exhaustive()
    }
}

fn scopes_of(registered: &Registered<'_>) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    let mut add = |scope: &str| {
        if !scope.is_empty() && !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    };
    match &registered.scp {
        Some(Claim::List { strings, .. }) => strings.iter().map(Cow::as_ref).for_each(&mut add),
        Some(Claim::Str(list)) => list.split(' ').for_each(&mut add),
        _ => {}
    }
    if let Some(Claim::Str(list)) = &registered.scope {
        list.split(' ').for_each(&mut add);
    }
    scopes
}

/// What the validator and [`AuthenticatedClaims`] read from a token's claims, in one pass
/// over its JSON without building a map: the registered claims, the caller's identity and
/// scopes, and whether ID-token claims are present. Every other claim is parsed as strictly
/// as a full parse would (strings, escapes, numbers in range) and skipped. A claim name
/// given twice is refused (RFC 7519 §4), so the JSON kept is unambiguous.
#[derive(Debug, Default)]
pub(crate) struct Registered<'a> {
    pub(crate) iss: Option<Claim<'a>>,
    pub(crate) aud: Option<Claim<'a>>,
    pub(crate) exp: Option<Claim<'a>>,
    pub(crate) nbf: Option<Claim<'a>>,
    pub(crate) iat: Option<Claim<'a>>,
    sub: Option<Claim<'a>>,
    client_id: Option<Claim<'a>>,
    cid: Option<Claim<'a>>,
    scp: Option<Claim<'a>>,
    scope: Option<Claim<'a>>,
    /// `cnf` (RFC 7800 §3.1), an object: its `jkt`.
    pub(crate) cnf: Option<Confirmation<'a>>,
    /// `nonce`, `at_hash` or `c_hash` is present (OpenID Connect Core §2, §3.1.3.6).
    pub(crate) id_token_claim: bool,
}

/// One claim's value, as far as the checks care: strings borrow from the JSON unless they
/// hold escapes.
#[derive(Debug, PartialEq)]
pub(crate) enum Claim<'a> {
    Str(Cow<'a, str>),
    Number(f64),
    /// An array: its strings, and whether it held nothing else.
    List {
        strings: Vec<Cow<'a, str>>,
        only_strings: bool,
    },
    /// `null`, a boolean or an object.
    Other,
}

impl Registered<'_> {
    /// Whether `sub`, `client_id`, `cid`, `scope` and `cnf.jkt` are each absent or a string.
    pub(crate) fn identity_claims_are_strings(&self) -> bool {
        let jkt = self.cnf.as_ref().and_then(|cnf| cnf.jkt.as_ref());
        [&self.sub, &self.client_id, &self.cid, &self.scope]
            .into_iter()
            .map(Option::as_ref)
            .chain([jkt])
            .all(|claim| matches!(claim, None | Some(Claim::Str(_))))
    }

    /// Each claim read, with its string value when it was read as a string: for the
    /// fuzz target's comparison with a full parse.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn strings(&self) -> Vec<(&'static str, Option<&str>)> {
        let fields = [
            ("iss", &self.iss),
            ("aud", &self.aud),
            ("exp", &self.exp),
            ("nbf", &self.nbf),
            ("iat", &self.iat),
            ("sub", &self.sub),
            ("client_id", &self.client_id),
            ("cid", &self.cid),
            ("scp", &self.scp),
            ("scope", &self.scope),
        ];
        fields
            .into_iter()
            .filter_map(|(name, claim)| {
                let claim = claim.as_ref()?;
                Some((
                    name,
                    if let Claim::Str(s) = claim {
                        Some(s.as_ref())
                    } else {
                        None
                    },
                ))
            })
            .collect()
    }
}

impl<'de> Deserialize<'de> for Registered<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RegisteredVisitor)
    }
}

struct RegisteredVisitor;

impl<'de> Visitor<'de> for RegisteredVisitor {
    type Value = Registered<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Registered<'de>, A::Error> {
        let mut claims = Registered::default();
        let mut names: Vec<Cow<'de, str>> = Vec::with_capacity(24);
        while let Some(Name(name)) = map.next_key()? {
            if names.contains(&name) {
                return Err(de::Error::custom(format_args!("claim {name} given twice")));
            }
            let slot = match name.as_ref() {
                "iss" => &mut claims.iss,
                "aud" => &mut claims.aud,
                "exp" => &mut claims.exp,
                "nbf" => &mut claims.nbf,
                "iat" => &mut claims.iat,
                "sub" => &mut claims.sub,
                "client_id" => &mut claims.client_id,
                "cid" => &mut claims.cid,
                "scp" => &mut claims.scp,
                "scope" => &mut claims.scope,
                "cnf" => {
                    claims.cnf = Some(map.next_value()?);
                    names.push(name);
                    continue;
                }
                other => {
                    claims.id_token_claim |= matches!(other, "nonce" | "at_hash" | "c_hash");
                    map.next_value::<Checked>()?;
                    names.push(name);
                    continue;
                }
            };
            *slot = Some(map.next_value()?);
            names.push(name);
        }
        Ok(claims)
    }
}

/// The confirmation claim (RFC 7800 §3.1): an object, of which only `jkt` (RFC 9449 §6.1)
/// is read; its other members are parsed as strictly and skipped, each name once.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Confirmation<'a> {
    pub(crate) jkt: Option<Claim<'a>>,
}

impl<'de> Deserialize<'de> for Confirmation<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ConfirmationVisitor)
    }
}

struct ConfirmationVisitor;

impl<'de> Visitor<'de> for ConfirmationVisitor {
    type Value = Confirmation<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a `cnf` object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Confirmation<'de>, A::Error> {
        let mut cnf = Confirmation::default();
        let mut names: Vec<Cow<'de, str>> = Vec::new();
        while let Some(Name(name)) = map.next_key()? {
            if names.contains(&name) {
                return Err(de::Error::custom(format_args!(
                    "cnf member {name} given twice"
                )));
            }
            if name == "jkt" {
                cnf.jkt = Some(map.next_value()?);
            } else {
                map.next_value::<Checked>()?;
            }
            names.push(name);
        }
        Ok(cnf)
    }
}

/// A claim name, borrowed from the JSON unless it holds escapes.
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(StrVisitor).map(Name)
    }
}

struct StrVisitor;

impl<'de> Visitor<'de> for StrVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(value))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(value.to_owned()))
    }
}

impl<'de> Deserialize<'de> for Claim<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ClaimVisitor)
    }
}

struct ClaimVisitor;

impl<'de> Visitor<'de> for ClaimVisitor {
    type Value = Claim<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Claim<'de>, E> {
        Ok(Claim::Str(Cow::Borrowed(value)))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Claim<'de>, E> {
        Ok(Claim::Str(Cow::Owned(value.to_owned())))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Claim<'de>, E> {
        Ok(Claim::Number(value as f64))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Claim<'de>, E> {
        Ok(Claim::Number(value as f64))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Claim<'de>, E> {
        Ok(Claim::Number(value))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Claim<'de>, E> {
        Ok(Claim::Other)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Claim<'de>, E> {
        Ok(Claim::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Claim<'de>, A::Error> {
        let mut strings = Vec::new();
        let mut only_strings = true;
        while let Some(item) = items.next_element::<Claim<'de>>()? {
            match item {
                Claim::Str(value) => strings.push(value),
                _ => only_strings = false,
            }
        }
        Ok(Claim::List {
            strings,
            only_strings,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Claim<'de>, A::Error> {
        CheckedVisitor.visit_map(map).map(|_| Claim::Other)
    }
}

/// Any JSON value, parsed as strictly as `serde_json::Value` would parse it and dropped.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Checked, A::Error> {
        while items.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_key::<Checked>()?.is_some() {
            map.next_value::<Checked>()?;
        }
        Ok(Checked)
    }
}

/// Reads `json`, a token's decoded claims, as the validator does: a JSON object, each
/// claim once.
pub(crate) fn read(json: &str) -> Result<Registered<'_>, serde_json::Error> {
    serde_json::from_str(json)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claims(value: Value) -> AuthenticatedClaims {
        let json = value.to_string();
        let registered = read(&json).expect("test claims are a JSON object");
        AuthenticatedClaims::from_verified(&json, &registered)
    }

    #[test]
    fn okta_shape_gives_scp_array_and_cid() {
        let c = claims(json!({"cid": "0oa1", "scp": ["AccessAll", "orders:read"], "sub": "0oa1"}));
        assert_eq!(c.client_id(), Some("0oa1"));
        assert_eq!(c.scopes(), ["AccessAll", "orders:read"]);
    }

    #[test]
    fn standard_shape_gives_scope_string_and_client_id() {
        let c = claims(json!({"client_id": "app", "scope": "a  b c"}));
        assert_eq!(c.client_id(), Some("app"));
        assert_eq!(c.scopes(), ["a", "b", "c"]);
        assert_eq!(c.sub(), None);
    }

    #[test]
    fn scope_matching_is_exact_in_both_claim_shapes() {
        for c in [
            claims(json!({"scp": ["orders:read"]})),
            claims(json!({"scope": "orders:read"})),
        ] {
            assert!(c.has_scope("orders:read"));
            assert!(!c.has_scope("orders"));
            assert!(!c.has_scope("orders:rea"));
            assert!(!c.has_scope("ORDERS:READ"));
            assert!(!c.has_scope("orders:read "));
        }
    }

    #[test]
    fn the_claims_json_is_the_tokens_own_and_the_map_is_parsed_from_it() {
        let json = r#"{"sub":"a\u0062","scp":["x",1,"y"],"n":{"k":[1.5,null]}}"#;
        let c = AuthenticatedClaims::from_verified(json, &read(json).expect("valid"));
        assert_eq!(c.claims_json(), json);
        assert_eq!(c.sub(), Some("ab"));
        assert_eq!(c.scopes(), ["x", "y"]);
        assert_eq!(c.get("n"), Some(&json!({"k": [1.5, null]})));
        assert_eq!(c.claims().len(), 3);
    }

    #[test]
    fn claims_are_read_as_strictly_as_a_full_parse_and_each_name_once() {
        for twice in [r#"{"iss":"a","iss":"b"}"#, r#"{"x":1,"x":2}"#] {
            assert!(read(twice).is_err(), "{twice}");
        }
        for bad in [
            r#"{"x":1e400}"#,
            r#"{"x":"\ud800"}"#,
            r#"{"x":{"y":tru}}"#,
            r#"[{"iss":"a"}]"#,
            r#"{"x":1} x"#,
        ] {
            assert!(read(bad).is_err(), "{bad}");
            assert!(
                serde_json::from_str::<Map<String, Value>>(bad).is_err(),
                "{bad}"
            );
        }
        let registered = read(r#"{"aud":["a",2],"exp":1.5,"nonce":null}"#).expect("valid");
        assert_eq!(
            registered.aud,
            Some(Claim::List {
                strings: vec!["a".into()],
                only_strings: false
            })
        );
        assert_eq!(registered.exp, Some(Claim::Number(1.5)));
        assert!(registered.id_token_claim);
    }

    #[test]
    fn require_scopes_names_all_required_scopes() {
        let c = claims(json!({"scope": "a"}));
        assert!(c.require_scopes(&["a"]).is_ok());
        assert_eq!(
            c.require_scopes(&["a", "b"]),
            Err(Error::InsufficientScope {
                required: vec!["a".into(), "b".into()]
            })
        );
    }
}
