//! What the service says about itself in `/openapi.json` and in the protected-resource
//! metadata: the issuer, where to get a token, and the scopes to ask for.

use std::borrow::Cow;

/// Built once at start-up from the configuration and registered as `web::Data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The issuer whose tokens are accepted (the first, with several): the one whose token
    /// endpoint `/openapi.json` names.
    pub issuer: String,
    /// Every issuer whose tokens are accepted: the metadata's `authorization_servers`.
    pub authorization_servers: Vec<String>,
    /// The token endpoint to name: `AUTH_TOKEN_URL`, or the development issuer's. `None`
    /// names the discovered one (see [`Published::token_url`]).
    pub token_url: Option<String>,
    /// Scopes a client should ask for, each with its description: `AUTH_REQUIRED_SCOPES`
    /// first, then what the development issuer grants in `--dev` mode.
    pub scopes: Vec<(String, String)>,
    /// `AUTH_REQUIRED_SCOPES`: what every protected route requires.
    pub required_scopes: Vec<String>,
}

impl Published {
    /// For `issuer`, naming `token_url` if given, with `required_scopes` and the scopes
    /// `granted` by the issuer besides them (the development issuer's).
    pub fn new(
        issuer: &str,
        token_url: Option<String>,
        required_scopes: &[String],
        granted: &[String],
    ) -> Self {
        let mut scopes: Vec<(String, String)> = required_scopes
            .iter()
            .map(|s| (s.clone(), "required by every protected route".to_owned()))
            .collect();
        for scope in granted {
            if !required_scopes.contains(scope) {
                let description = "granted by the development issuer (--dev)".to_owned();
                scopes.push((scope.clone(), description));
            }
        }
        Published {
            issuer: issuer.to_owned(),
            authorization_servers: vec![issuer.to_owned()],
            token_url,
            scopes,
            required_scopes: required_scopes.to_vec(),
        }
    }

    /// The same, naming `issuers` (the first is [`Published::issuer`]) as the authorization
    /// servers.
    pub fn with_authorization_servers<'a>(
        mut self,
        issuers: impl Iterator<Item = &'a str>,
    ) -> Self {
        self.authorization_servers = issuers.map(str::to_owned).collect();
        self
    }

    /// Where a client gets a token: `AUTH_TOKEN_URL` (or the development issuer's); else
    /// the `token_endpoint` the issuer's metadata named; else, before discovery succeeded
    /// or with a fixed `AUTH_JWKS_URI`, `{issuer}/v1/token` (Okta's layout).
    pub fn token_url(&self, discovered: Option<String>) -> Cow<'_, str> {
        if let Some(url) = &self.token_url {
            return Cow::Borrowed(url);
        }
        match discovered {
            Some(discovered) => Cow::Owned(discovered),
            None => Cow::Owned(format!("{}/v1/token", self.issuer.trim_end_matches('/'))),
        }
    }

    /// The scope names, in order.
    pub fn scope_names(&self) -> Vec<&str> {
        self.scopes.iter().map(|(name, _)| name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_token_url_wins_and_the_okta_layout_is_the_fallback() {
        let scopes = ["AccessAll".to_owned()];
        let configured = Published::new(
            "https://a.example/oauth2/x",
            Some("https://b.example/token".into()),
            &[],
            &[],
        );
        assert_eq!(configured.token_url(None), "https://b.example/token");
        let fallback = Published::new("https://a.example/oauth2/x/", None, &scopes, &[]);
        assert_eq!(
            fallback.token_url(None),
            "https://a.example/oauth2/x/v1/token"
        );
    }

    #[test]
    fn required_scopes_come_first_and_granted_ones_are_not_repeated() {
        let required = ["orders:read".to_owned(), "AccessAll".to_owned()];
        let granted = ["AccessAll".to_owned(), "extra".to_owned()];
        let published = Published::new("https://a.example", None, &required, &granted);
        assert_eq!(
            published.scope_names(),
            ["orders:read", "AccessAll", "extra"]
        );
    }
}
