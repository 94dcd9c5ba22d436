//! The authorization-code login with PKCE (RFC 6749 section 4.1, RFC 7636 with `S256`, as RFC 9700
//! section 2.1.1 recommends), in two steps that may run in two processes: a web server sends the user
//! to the [`AuthorizationRequest`]'s URL and keeps its [`PendingLogin`] (in the user's server-side
//! session); the callback hands the pending login and the callback's query to the generated
//! `login_authorization_code`. Command-line and desktop applications use the
//! [`LoopbackRedirect`](crate::LoopbackRedirect) instead.
//!
//! The callback is checked before its code is redeemed: `state` always (a forged callback is refused),
//! `iss` when the server sends one (RFC 9207, against mix-up attacks), and an error the server
//! redirected with is a typed [`AuthorizationError::Denied`].

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;

use crate::error::{AuthorizationError, ConfigError, Error};

/// Where to send the user, and what the callback needs: made by the generated
/// `authorization_request`.
pub struct AuthorizationRequest {
    url: Url,
    pending: PendingLogin,
}

impl AuthorizationRequest {
    /// The URL to send the user's browser to (a redirect, or a link to open).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// What the callback needs to finish the login.
    pub fn pending(&self) -> &PendingLogin {
        &self.pending
    }

    /// The URL and the pending login, apart: send the user to the one, keep the other.
    pub fn into_parts(self) -> (Url, PendingLogin) {
        (self.url, self.pending)
    }
}

/// Its URL carries the `state`: shown without its query.
impl fmt::Debug for AuthorizationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut endpoint = self.url.clone();
        endpoint.set_query(None);
        f.debug_struct("AuthorizationRequest")
            .field("endpoint", &endpoint.as_str())
            .field("pending", &self.pending)
            .finish()
    }
}

/// An authorization-code login waiting for its callback: the `state` the callback must carry, the
/// PKCE verifier its code is redeemed with, and the redirect URI it was sent to.
///
/// Serialisable (JSON through serde), so that a web server can keep it in the user's session
/// between the redirect and the callback: the serialised form holds the verifier, so keep it
/// server-side (or in an encrypted cookie), and use it once. `Debug` shows neither the state nor the
/// verifier.
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    #[serde(serialize_with = "crate::token::expose::secret")]
    state: SecretString,
    #[serde(serialize_with = "crate::token::expose::secret")]
    verifier: SecretString,
    redirect_uri: String,
    /// The authorization endpoint the user was sent to: a callback's `iss` must be on its origin
    /// when no issuer is configured.
    authorization_endpoint: String,
    /// The scopes asked for: the session's, when the token response does not say.
    scopes: Vec<String>,
}

impl fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingLogin")
            .field("state", &"[REDACTED]")
            .field("verifier", &"[REDACTED]")
            .field("redirect_uri", &self.redirect_uri)
            .field("authorization_endpoint", &self.authorization_endpoint)
            .field("scopes", &self.scopes)
            .finish()
    }
}

impl PendingLogin {
    /// The redirect URI the authorization request named (the token request names it again).
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The scopes asked for.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    pub(crate) fn verifier(&self) -> &SecretString {
        &self.verifier
    }
}

/// What the login needs to build an authorization request.
pub(crate) struct RequestParts<'a> {
    pub endpoint: &'a Url,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub scopes: Vec<String>,
    pub parameters: &'a [(String, String)],
    pub allow_http: bool,
}

/// A new authorization request: fresh `state` and PKCE verifier, the S256 challenge in the URL.
pub(crate) fn request(parts: RequestParts<'_>) -> Result<AuthorizationRequest, Error> {
    check_redirect_uri(parts.redirect_uri, parts.allow_http)?;
    let state = random_token()?;
    let verifier = random_token()?;
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.expose_secret().as_bytes()));
    let mut url = parts.endpoint.clone();
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", parts.client_id)
            .append_pair("redirect_uri", parts.redirect_uri);
        if !parts.scopes.is_empty() {
            query.append_pair("scope", &parts.scopes.join(" "));
        }
        query
            .append_pair("state", state.expose_secret())
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        for (name, value) in parts.parameters {
            query.append_pair(name, value);
        }
    }
    let pending = PendingLogin {
        state,
        verifier,
        redirect_uri: parts.redirect_uri.to_owned(),
        authorization_endpoint: parts.endpoint.as_str().to_owned(),
        scopes: parts.scopes,
    };
    Ok(AuthorizationRequest { url, pending })
}

/// A redirect URI must be absolute, and plain `http` only to the loopback interface (RFC 8252
/// section 7.3; RFC 9700 section 2.1). A private-use scheme (`com.example.app:/callback`) is fine.
fn check_redirect_uri(redirect_uri: &str, allow_http: bool) -> Result<(), Error> {
    let what = "redirect URI";
    let url = Url::parse(redirect_uri).map_err(|source| ConfigError::InvalidUrl {
        what,
        url: redirect_uri.to_owned(),
        source,
    })?;
    if url.scheme() == "http" && !allow_http && !crate::config::is_loopback(&url) {
        return Err(Error::Config(ConfigError::PlainHttp {
            what,
            url: redirect_uri.to_owned(),
        }));
    }
    Ok(())
}

/// 256 random bits, base64url: a PKCE verifier of 43 characters (RFC 7636 section 4.1), or a state.
fn random_token() -> Result<SecretString, Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Authorization(AuthorizationError::RandomnessUnavailable(e.to_string())))?;
    Ok(SecretString::from(URL_SAFE_NO_PAD.encode(bytes)))
}

/// Check a callback against its pending login and return the code to redeem. `callback` is the
/// callback URL, or its query (with or without the `?`).
pub(crate) fn check_callback(
    pending: &PendingLogin,
    callback: &str,
    issuer: Option<&str>,
) -> Result<SecretString, AuthorizationError> {
    // The state first: until it matches, nothing in the callback is to be believed (not even an
    // error, which a forged callback could use to end a real login).
    if !carries_state(callback, pending) {
        return Err(AuthorizationError::StateMismatch);
    }
    let mut params = std::collections::HashMap::new();
    for (name, value) in form_urlencoded::parse(query_of(callback).as_bytes()) {
        // RFC 6749 section 3.1: a parameter appears at most once.
        if params.insert(name.clone(), value).is_some() {
            return Err(AuthorizationError::InvalidCallback(format!(
                "the parameter `{name}` appears more than once"
            )));
        }
    }
    if let Some(received) = params.get("iss") {
        check_issuer(received, issuer, &pending.authorization_endpoint)?;
    }
    if let Some(code) = params.get("error") {
        return Err(AuthorizationError::Denied {
            code: code.to_string(),
            description: params.get("error_description").map(|d| d.to_string()),
        });
    }
    match params.remove("code") {
        Some(code) if !code.is_empty() => Ok(SecretString::from(code.into_owned())),
        _ => Err(AuthorizationError::InvalidCallback(
            "it has neither a `code` nor an `error`".to_owned(),
        )),
    }
}

/// Whether `callback` carries the pending login's `state`, once.
pub(crate) fn carries_state(callback: &str, pending: &PendingLogin) -> bool {
    let mut states = form_urlencoded::parse(query_of(callback).as_bytes()).filter(|(name, _)| name == "state");
    match (states.next(), states.next()) {
        (Some((_, state)), None) => constant_time_eq(state.as_bytes(), pending.state.expose_secret().as_bytes()),
        _ => false,
    }
}

/// The query of a callback given as a URL (`https://app/cb?...`), a path (`/cb?...`), or a query
/// (with or without its `?`; a `?` inside a query value is kept).
fn query_of(callback: &str) -> &str {
    let query = match callback.strip_prefix('?') {
        Some(query) => query,
        // A URL's or a path's query starts after the first `?`.
        None if callback.starts_with('/') || Url::parse(callback).is_ok() => {
            callback.split_once('?').map_or("", |(_, query)| query)
        }
        None => callback,
    };
    query.split_once('#').map_or(query, |(query, _)| query)
}

/// RFC 9207: the `iss` must be the configured issuer exactly, or without one, on the origin of the
/// authorization endpoint the user was sent to.
fn check_issuer(received: &str, configured: Option<&str>, endpoint: &str) -> Result<(), AuthorizationError> {
    let matches = match configured {
        Some(issuer) => received == issuer,
        None => {
            let origin = |url: &str| Url::parse(url).ok().map(|u| u.origin());
            origin(received).is_some_and(|received| Some(received) == origin(endpoint))
        }
    };
    if matches {
        return Ok(());
    }
    let expected = match configured {
        Some(issuer) => issuer.to_owned(),
        None => Url::parse(endpoint).map_or_else(|_| endpoint.to_owned(), |u| u.origin().ascii_serialization()),
    };
    Err(AuthorizationError::IssuerMismatch {
        expected,
        received: received.to_owned(),
    })
}

/// Equal, in time that does not depend on where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> (Url, PendingLogin) {
        let endpoint = Url::parse("https://id.example.com/authorize?tenant=t1").unwrap();
        let parts = RequestParts {
            endpoint: &endpoint,
            client_id: "app",
            redirect_uri: "http://127.0.0.1:8123/callback",
            scopes: vec!["read".into(), "write".into()],
            parameters: &[("audience".into(), "https://api.example.com".into())],
            allow_http: false,
        };
        request(parts).unwrap().into_parts()
    }

    fn param(url: &Url, name: &str) -> String {
        url.query_pairs().find(|(n, _)| n == name).unwrap().1.into_owned()
    }

    #[test]
    fn the_url_carries_an_s256_challenge_of_the_verifier_and_a_fresh_state() {
        let (url, pending) = pending();
        assert_eq!(param(&url, "tenant"), "t1");
        assert_eq!(param(&url, "response_type"), "code");
        assert_eq!(param(&url, "scope"), "read write");
        assert_eq!(param(&url, "code_challenge_method"), "S256");
        assert_eq!(param(&url, "audience"), "https://api.example.com");
        let verifier = pending.verifier.expose_secret();
        assert_eq!(verifier.len(), 43);
        assert_eq!(
            param(&url, "code_challenge"),
            URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
        );
        assert_eq!(param(&url, "state"), pending.state.expose_secret());
        let (_, other) = self::pending();
        assert_ne!(other.state.expose_secret(), pending.state.expose_secret());
        assert_ne!(other.verifier.expose_secret(), verifier);
        // RFC 7636 appendix B's example.
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"));
        assert_eq!(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn debug_shows_neither_state_nor_verifier_and_the_pending_login_survives_serde() {
        let (url, pending) = pending();
        let shown = format!("{pending:?}");
        assert!(!shown.contains(pending.state.expose_secret()), "{shown}");
        assert!(!shown.contains(pending.verifier.expose_secret()), "{shown}");
        let request = AuthorizationRequest {
            url,
            pending: pending.clone(),
        };
        assert!(!format!("{request:?}").contains(pending.state.expose_secret()));
        let json = serde_json::to_string(&pending).unwrap();
        let back: PendingLogin = serde_json::from_str(&json).unwrap();
        assert_eq!(back.verifier.expose_secret(), pending.verifier.expose_secret());
        assert_eq!(back.redirect_uri, pending.redirect_uri);
    }

    #[test]
    fn callbacks_are_checked_before_their_code_is_used() {
        let (_, pending) = pending();
        let state = pending.state.expose_secret().to_owned();
        let ok = |callback: &str| check_callback(&pending, callback, None);
        let code = ok(&format!("code=abc&state={state}")).unwrap();
        assert_eq!(code.expose_secret(), "abc");
        assert!(ok(&format!("http://127.0.0.1:8123/callback?state={state}&code=abc#x")).is_ok());
        assert!(ok(&format!("/callback?state={state}&code=abc")).is_ok());
        assert!(ok(&format!("?state={state}&code=abc&error_description=what?")).is_ok());
        assert!(ok(&format!("iss=https://id.example.com&state={state}&code=abc")).is_ok());
        // A state given twice is no state.
        assert!(matches!(
            ok(&format!("code=abc&state={state}&state={state}")),
            Err(AuthorizationError::StateMismatch)
        ));
        assert!(matches!(
            ok("code=abc&state=forged"),
            Err(AuthorizationError::StateMismatch)
        ));
        assert!(matches!(ok("code=abc"), Err(AuthorizationError::StateMismatch)));
        // A forged error is a state mismatch, not a denial.
        assert!(matches!(
            ok("error=access_denied"),
            Err(AuthorizationError::StateMismatch)
        ));
        match ok(&format!("error=access_denied&error_description=no&state={state}")) {
            Err(AuthorizationError::Denied { code, description }) => {
                assert_eq!((code.as_str(), description.as_deref()), ("access_denied", Some("no")));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            ok(&format!("state={state}")),
            Err(AuthorizationError::InvalidCallback(_))
        ));
        assert!(matches!(
            ok(&format!("code=a&code=b&state={state}")),
            Err(AuthorizationError::InvalidCallback(_))
        ));
    }

    #[test]
    fn an_issuer_sent_must_be_the_expected_one() {
        let (_, pending) = pending();
        let state = pending.state.expose_secret().to_owned();
        let with_iss =
            |iss: &str, configured| check_callback(&pending, &format!("code=c&state={state}&iss={iss}"), configured);
        assert!(with_iss("https://id.example.com", None).is_ok());
        assert!(with_iss("https://id.example.com/tenant", None).is_ok());
        assert!(matches!(
            with_iss("https://evil.example.com", None),
            Err(AuthorizationError::IssuerMismatch { .. })
        ));
        assert!(with_iss("https://id.example.com/t1", Some("https://id.example.com/t1")).is_ok());
        assert!(matches!(
            with_iss("https://id.example.com/t2", Some("https://id.example.com/t1")),
            Err(AuthorizationError::IssuerMismatch { .. })
        ));
    }

    #[test]
    fn redirect_uris_must_be_absolute_and_http_only_to_loopback() {
        assert!(check_redirect_uri("https://app.example.com/cb", false).is_ok());
        assert!(check_redirect_uri("com.example.app:/oauth", false).is_ok());
        assert!(check_redirect_uri("http://localhost:8080/cb", false).is_ok());
        assert!(matches!(
            check_redirect_uri("http://app.example.com/cb", false),
            Err(Error::Config(ConfigError::PlainHttp { .. }))
        ));
        assert!(matches!(
            check_redirect_uri("/cb", false),
            Err(Error::Config(ConfigError::InvalidUrl { .. }))
        ));
    }
}
