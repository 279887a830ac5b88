//! The test kit (feature `test-util`): an issuer that lives in the test's own process,
//! mints tokens and hands out a [`Guard`] that trusts it. No network, no running issuer,
//! no Okta org: test your protected handlers in your own `#[actix_web::test]`.
//!
//! Tokens are shaped like Okta's (`cid`, an `scp` array, no `typ`), signed with a fresh
//! RS256 key by default, and valid for an hour.
//!
//! ```
//! use actix_web::{App, HttpResponse, test, web};
//! use api_guard::AuthenticatedClaims;
//! use api_guard::testing::TestIssuer;
//!
//! async fn orders(claims: AuthenticatedClaims) -> Result<HttpResponse, api_guard::AuthError> {
//!     claims.require_scopes(&["orders:read"])?;
//!     Ok(HttpResponse::Ok().body(claims.sub().unwrap_or_default().to_owned()))
//! }
//!
//! # actix_web::rt::System::new().block_on(async {
//! let issuer = TestIssuer::new();
//! let app = test::init_service(
//!     App::new()
//!         .configure(api_guard::configure(issuer.guard()))
//!         .route("/orders", web::get().to(orders)),
//! )
//! .await;
//!
//! let token = issuer.token().subject("alice").scopes(["orders:read"]).mint();
//! let request = test::TestRequest::get()
//!     .uri("/orders")
//!     .insert_header(("Authorization", format!("Bearer {token}")))
//!     .to_request();
//! assert_eq!(test::call_service(&app, request).await.status(), 200);
//!
//! let expired = issuer.token().scopes(["orders:read"]).expired().mint();
//! let request = test::TestRequest::get()
//!     .uri("/orders")
//!     .insert_header(("Authorization", format!("Bearer {expired}")))
//!     .to_request();
//! assert_eq!(test::call_service(&app, request).await.status(), 401);
//! # });
//! ```
//!
//! # Security
//!
//! Everything here exists to make tokens on demand. It is behind a feature so that it is
//! never in a production build by accident: enable `test-util` in `[dev-dependencies]` only.

mod keys;

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::jwks::{JwksStore, KeySet};
use crate::{Algorithm, AuthSettings, Guard};
use keys::{SigningKey, b64, random_id};

/// The issuer of a [`TestIssuer::new`]: a name that can never resolve (RFC 6761 `.invalid`).
const TEST_ISSUER: &str = "https://issuer.api-guard.invalid/oauth2/default";
/// The audience tokens carry by default, which [`AuthSettings::new`] also expects.
const TEST_AUDIENCE: &str = "api://default";
/// The client (`cid`, `sub`) of tokens by default.
const TEST_CLIENT: &str = "test-client";
/// How long a minted token is valid by default.
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// An issuer in the test's own process: its signing keys, the tokens it mints, and the
/// guards that trust it. Cheap to clone; clones share keys and guards.
#[derive(Clone)]
pub struct TestIssuer {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    keys: RwLock<KeyTable>,
    /// The key stores of the guards handed out, which follow key changes.
    stores: Mutex<Vec<JwksStore>>,
}

/// Published keys in publication order, and the one that signs (which may have been
/// unpublished).
struct KeyTable {
    published: Vec<Arc<SigningKey>>,
    signing: Arc<SigningKey>,
}

impl TestIssuer {
    /// An issuer at `https://issuer.api-guard.invalid/oauth2/default` with one fresh RS256 key.
    pub fn new() -> Self {
        TestIssuer::for_issuer(TEST_ISSUER)
    }

    /// An issuer whose tokens carry `issuer` in `iss`, with one fresh RS256 key.
    ///
    /// # Panics
    ///
    /// If aws-lc-rs cannot generate a key (no usable random source).
    pub fn for_issuer(issuer: impl Into<String>) -> Self {
        let key = Arc::new(generate(Algorithm::RS256));
        TestIssuer {
            inner: Arc::new(Inner {
                issuer: issuer.into(),
                keys: RwLock::new(KeyTable {
                    published: vec![Arc::clone(&key)],
                    signing: key,
                }),
                stores: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The issuer URL, exactly as tokens carry it.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// Settings that trust this issuer, with every other setting at its default: change
    /// them and pass them to [`TestIssuer::guard_with`].
    pub fn settings(&self) -> AuthSettings {
        AuthSettings::new(self.issuer())
    }

    /// A guard with the default settings for this issuer, trusting its published keys.
    pub fn guard(&self) -> Guard {
        self.guard_with(self.settings())
    }

    /// A guard with `settings`, trusting this issuer's published keys. It follows later key
    /// changes ([`add_key`](Self::add_key), [`remove_key`](Self::remove_key)) as a refresh would.
    /// The settings' issuer need not be this one: a test can check that tokens of another
    /// issuer are refused. (With several issuers in `settings`, each one's key store holds
    /// this issuer's keys; [`TestIssuer::guard_for_all`] gives each its own.)
    ///
    /// # Panics
    ///
    /// If `settings` are invalid (see [`AuthSettings::validate`]): a mistake in the test.
    pub fn guard_with(&self, settings: AuthSettings) -> Guard {
        if let Err(error) = settings.validate() {
            panic!("TestIssuer::guard_with: invalid settings: {error}");
        }
        let stores = settings
            .issuers()
            .map(|issuer| self.store(issuer))
            .collect();
        Guard::with_stores(settings, stores)
    }

    /// A guard with `settings` trusting several test issuers, as a guard trusts several
    /// issuers ([`AuthSettings::with_additional_issuers`]): each issuer of the settings gets
    /// its own key store, holding the published keys of the one of `issuers` with that
    /// URL, and following its key changes.
    ///
    /// ```
    /// use api_guard::testing::TestIssuer;
    ///
    /// let a = TestIssuer::for_issuer("https://a.example/oauth2/default");
    /// let b = TestIssuer::for_issuer("https://b.example/oauth2/default");
    /// let settings = a.settings().with_additional_issuers([b.issuer()]);
    /// let guard = TestIssuer::guard_for_all(settings, &[&a, &b]);
    /// assert!(guard.verify(&a.token().mint()).is_ok());
    /// assert!(guard.verify(&b.token().mint()).is_ok());
    /// // Claiming to be `a`, signed by `b`: `a`'s keys alone are tried.
    /// assert!(guard.verify(&b.token().issuer(a.issuer()).mint()).is_err());
    /// ```
    ///
    /// # Panics
    ///
    /// If `settings` are invalid, or name an issuer none of `issuers` is: a mistake in the
    /// test.
    pub fn guard_for_all(settings: AuthSettings, issuers: &[&TestIssuer]) -> Guard {
        if let Err(error) = settings.validate() {
            panic!("TestIssuer::guard_for_all: invalid settings: {error}");
        }
        let stores = settings
            .issuers()
            .map(|url| match issuers.iter().find(|i| i.issuer() == url) {
                Some(issuer) => issuer.store(url),
                None => panic!("TestIssuer::guard_for_all: no test issuer is {url:?}"),
            })
            .collect();
        Guard::with_stores(settings, stores)
    }

    /// A key store for the settings' issuer `issuer` that holds this issuer's keys and
    /// follows their changes.
    fn store(&self, issuer: &str) -> JwksStore {
        let store = JwksStore::fixed(issuer, self.key_set());
        lock(&self.inner.stores).push(store.clone());
        store
    }

    /// A token to mint: Okta-shaped, for the audience `api://default` and the client
    /// `test-client`, with no scopes, valid for an hour. Change what the test needs.
    pub fn token(&self) -> TokenBuilder {
        let iat = unix_now();
        let mut claims = Map::new();
        claims.insert("ver".into(), json!(1));
        claims.insert(
            "jti".into(),
            json!(format!("AT.{}", random_id(18).unwrap_or_default())),
        );
        claims.insert("iss".into(), json!(self.issuer()));
        claims.insert("aud".into(), json!(TEST_AUDIENCE));
        claims.insert("iat".into(), json!(iat));
        claims.insert("exp".into(), json!(iat + TOKEN_LIFETIME.as_secs()));
        claims.insert("cid".into(), json!(TEST_CLIENT));
        claims.insert("scp".into(), json!([] as [&str; 0]));
        claims.insert("sub".into(), json!(TEST_CLIENT));
        TokenBuilder {
            issuer: self.clone(),
            header: Map::new(),
            claims,
            key: KeyChoice::Signing,
        }
    }

    /// Signs exactly `header` and `claims` as a compact JWS (RFC 7515 §7.1) with the key
    /// named by `header["kid"]`, or the current signing key when the header names no
    /// published key. For forged-token tests.
    ///
    /// # Security
    ///
    /// The signature uses the key's own algorithm whatever `header["alg"]` says: the header
    /// is copied verbatim so tests can forge algorithm-confusion tokens.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let named = header
            .get("kid")
            .and_then(Value::as_str)
            .and_then(|kid| self.published_key(kid));
        let key = named.unwrap_or_else(|| self.signing_key());
        sign_with(&key, header, claims)
    }

    /// Generates a key for `alg` and publishes it; the signing key does not change.
    /// Returns the new key's `kid`.
    pub fn add_key(&self, alg: Algorithm) -> String {
        let key = generate(alg);
        let kid = key.kid.clone();
        write(&self.inner.keys).published.push(Arc::new(key));
        self.publish();
        kid
    }

    /// Makes the published key `kid` the signing key. `false` if no such key is published.
    pub fn use_key(&self, kid: &str) -> bool {
        let Some(key) = self.published_key(kid) else {
            return false;
        };
        write(&self.inner.keys).signing = key;
        true
    }

    /// Unpublishes the key `kid`. `false` if no such key is published. Removing the signing
    /// key leaves it signing until [`use_key`](Self::use_key) picks another, which gives
    /// tokens whose key has left the key set.
    pub fn remove_key(&self, kid: &str) -> bool {
        let removed = {
            let mut table = write(&self.inner.keys);
            let before = table.published.len();
            table.published.retain(|key| key.kid != kid);
            table.published.len() != before
        };
        if removed {
            self.publish();
        }
        removed
    }

    /// The `kid` of the current signing key.
    pub fn signing_kid(&self) -> String {
        self.signing_key().kid.clone()
    }

    /// The algorithm of the current signing key.
    pub fn signing_alg(&self) -> Algorithm {
        self.signing_key().alg
    }

    /// The public JWK of the published key `kid`, as a JWKS serves it.
    pub fn jwk(&self, kid: &str) -> Option<Value> {
        self.published_key(kid).map(|key| key.jwk.clone())
    }

    /// The JWK Set of the published keys (RFC 7517 §5).
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = read(&self.inner.keys)
            .published
            .iter()
            .map(|key| key.jwk.clone())
            .collect();
        json!({ "keys": keys })
    }

    /// The public key of the published key `kid`: SubjectPublicKeyInfo DER for RSA and EC
    /// keys, the raw 32 bytes for Ed25519 (what an HMAC key-confusion forgery would use as
    /// its secret).
    pub fn public_key_der(&self, kid: &str) -> Option<Vec<u8>> {
        self.published_key(kid).map(|key| key.public_der.clone())
    }

    fn signing_key(&self) -> Arc<SigningKey> {
        Arc::clone(&read(&self.inner.keys).signing)
    }

    fn published_key(&self, kid: &str) -> Option<Arc<SigningKey>> {
        read(&self.inner.keys)
            .published
            .iter()
            .find(|key| key.kid == kid)
            .cloned()
    }

    fn key_set(&self) -> KeySet {
        // Our own JWKS, generated a moment ago: it parses.
        KeySet::from_json(self.jwks().to_string().as_bytes()).unwrap_or_default()
    }

    /// Hands the published keys to every guard, as their refresh would.
    fn publish(&self) {
        for store in lock(&self.inner.stores).iter() {
            store.replace_keys(self.key_set());
        }
    }
}

impl Default for TestIssuer {
    fn default() -> Self {
        TestIssuer::new()
    }
}

impl std::fmt::Debug for TestIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestIssuer")
            .field("issuer", &self.issuer())
            .field("signing_kid", &self.signing_kid())
            .finish_non_exhaustive()
    }
}

/// Which key signs a [`TokenBuilder`]'s token.
#[derive(Clone)]
enum KeyChoice {
    /// The issuer's current signing key.
    Signing,
    /// A key the issuer never published.
    Unknown,
}

/// A token being made by [`TestIssuer::token`]; [`mint`](Self::mint) signs it.
#[derive(Clone)]
#[must_use = "a token is made by `.mint()`"]
pub struct TokenBuilder {
    issuer: TestIssuer,
    header: Map<String, Value>,
    claims: Map<String, Value>,
    key: KeyChoice,
}

impl TokenBuilder {
    /// `sub`. Default: `test-client`.
    pub fn subject(self, subject: impl Into<String>) -> Self {
        self.claim("sub", subject.into())
    }

    /// The client, as Okta writes it (`cid`). Default: `test-client`.
    pub fn client_id(self, client_id: impl Into<String>) -> Self {
        self.claim("cid", client_id.into())
    }

    /// The granted scopes, as Okta writes them (an `scp` array). Default: none.
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(self, scopes: I) -> Self {
        let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
        self.claim("scp", scopes)
    }

    /// `aud`. Default: `api://default`.
    pub fn audience(self, audience: impl Into<String>) -> Self {
        self.claim("aud", audience.into())
    }

    /// `iss`. Default: the issuer's own.
    pub fn issuer(self, issuer: impl Into<String>) -> Self {
        self.claim("iss", issuer.into())
    }

    /// `exp` this long after `iat`. Default: one hour.
    pub fn expires_in(self, lifetime: Duration) -> Self {
        let iat = self
            .claims
            .get("iat")
            .and_then(Value::as_u64)
            .unwrap_or_else(unix_now);
        self.claim("exp", iat + lifetime.as_secs())
    }

    /// Any claim, as JSON; replaces one of the same name.
    ///
    /// # Panics
    ///
    /// If `value` cannot be serialised to JSON (a map with non-string keys).
    pub fn claim(mut self, name: &str, value: impl Serialize) -> Self {
        let value = match serde_json::to_value(value) {
            Ok(value) => value,
            Err(error) => panic!("TokenBuilder::claim({name:?}): not JSON: {error}"),
        };
        self.claims.insert(name.to_owned(), value);
        self
    }

    /// Any header parameter (`typ`, `kid`, ...), as JSON; `alg` is always the key's own.
    pub fn header(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.header.insert(name.to_owned(), value.into());
        self
    }

    /// A token that expired two minutes ago, issued an hour before: refused with the default
    /// leeway of a minute.
    pub fn expired(self) -> Self {
        let now = unix_now();
        self.claim("iat", now - 3720).claim("exp", now - 120)
    }

    /// A token for another API (`aud` is `api://someone-else`).
    pub fn wrong_audience(self) -> Self {
        self.audience("api://someone-else")
    }

    /// A token signed with a key the issuer never published: `unknown_kid`.
    pub fn unknown_key(mut self) -> Self {
        self.key = KeyChoice::Unknown;
        self
    }

    /// The claims as they stand, as JSON.
    pub fn claims(&self) -> Value {
        Value::Object(self.claims.clone())
    }

    /// The signed token, in compact form.
    pub fn mint(self) -> String {
        let key = match self.key {
            KeyChoice::Signing => self.issuer.signing_key(),
            KeyChoice::Unknown => Arc::new(generate(self.issuer.signing_alg())),
        };
        let mut header = self.header;
        header.entry("kid").or_insert_with(|| json!(key.kid));
        header.insert("alg".into(), json!(key.alg.name()));
        sign_with(&key, &Value::Object(header), &Value::Object(self.claims))
    }
}

/// `header.claims.signature`, each part base64url (RFC 7515 §7.1).
///
/// # Panics
///
/// If aws-lc-rs fails to sign, which only a broken random source causes.
fn sign_with(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    match key.sign(signing_input.as_bytes()) {
        Ok(signature) => format!("{signing_input}.{}", b64(&signature)),
        Err(_) => panic!("the test kit could not sign a token with aws-lc-rs"),
    }
}

fn generate(alg: Algorithm) -> SigningKey {
    match SigningKey::generate(alg) {
        Ok(key) => key,
        Err(_) => panic!("the test kit could not generate a {alg} key with aws-lc-rs"),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // No critical section here can panic, so a poisoned lock still holds consistent data.
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

fn lock<T>(lock: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    lock.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
