//! The token endpoint: the grants the SDK uses (RFC 6749 sections 4.1, 4.3, 4.4 and 6; RFC 8628
//! section 3.4), the device authorization request (RFC 8628 section 3.1) and token revocation
//! (RFC 7009).
//!
//! Written on our own `reqwest` client rather than with oauth2-rs: oauth2-rs 5 reads tokens into its
//! own string newtypes (not `secrecy`) and keeps the raw response body, tokens included, inside its
//! parse error; it reads bodies without a size limit; and its error type does not separate the
//! answers this SDK must tell apart (a refused refresh ends the session, a 503 does not). The protocol
//! subset needed here is small, and every branch of it is tested.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::error::{InvalidTokenResponse, OAuthError, TransientCause, TransientError};
use crate::token::{Grant, TokenSet};

/// How the client authenticates to the token endpoint (RFC 6749 section 2.3.1; RFC 7523).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientAuth {
    /// HTTP Basic with the form-encoded id and secret: what the RFC requires servers to support.
    #[default]
    Basic,
    /// `client_id` and `client_secret` in the form body.
    RequestBody,
    /// `private_key_jwt`: a JWT signed with the key given to
    /// [`ClientBuilder::client_assertion_key`](crate::ClientBuilder::client_assertion_key).
    /// Feature `jwt`.
    #[cfg(feature = "jwt")]
    PrivateKeyJwt,
    /// `client_secret_jwt`: a JWT signed (HS256) with the client secret, which itself is not sent.
    /// Feature `jwt`.
    #[cfg(feature = "jwt")]
    ClientSecretJwt,
}

/// The most of a token endpoint's answer the SDK reads; a larger body is an error, not a hang.
pub const MAX_TOKEN_RESPONSE_BYTES: usize = 1024 * 1024;

/// Lifetimes longer than this are taken as this (keeps time arithmetic far from overflow).
const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// What to ask the token endpoint for.
pub(crate) enum GrantRequest<'a> {
    Password {
        username: &'a str,
        password: &'a SecretString,
        scopes: &'a [String],
    },
    ClientCredentials {
        scopes: &'a [String],
    },
    AuthorizationCode {
        code: &'a SecretString,
        redirect_uri: &'a str,
        verifier: &'a SecretString,
    },
    DeviceCode {
        device_code: &'a SecretString,
    },
    Refresh {
        previous: &'a TokenSet,
        refresh_token: &'a SecretString,
    },
}

/// Why the token endpoint gave no token.
#[derive(Debug, Clone)]
pub(crate) enum TokenFailure {
    /// It said no (RFC 6749 section 5.2 error, or a 4xx).
    Refused(OAuthError),
    /// It could not be used for now, even after retries.
    Transient(TransientError),
    /// It answered something unusable.
    Invalid(InvalidTokenResponse),
    /// The request could not be made (a client assertion that cannot be signed).
    #[cfg_attr(not(feature = "jwt"), allow(dead_code))]
    Config(crate::error::ConfigError),
}

/// How transient failures are retried.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retry {
    pub attempts: u32,
    pub backoff: Duration,
}

/// The client's side of the token endpoint.
#[derive(Debug)]
pub(crate) struct TokenClient {
    pub http: reqwest::Client,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    pub client_auth: ClientAuth,
    /// Signs client assertions, for the JWT client authentications.
    #[cfg(feature = "jwt")]
    pub signer: Option<crate::assertion::Signer>,
    /// Sent with every token and device authorization request.
    pub parameters: Vec<(String, String)>,
    pub timeout: Duration,
    pub retry: Retry,
    pub clock: Arc<dyn Clock>,
}

impl TokenClient {
    /// Ask for a token, retrying transient failures with exponential backoff. No attempt starts that
    /// could still be under way at `deadline` (a renewal's claim on the refresh token lapses then).
    pub async fn token(
        &self,
        url: &Url,
        grant: GrantRequest<'_>,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<TokenSet, TokenFailure> {
        let mut attempt = 1;
        let mut waits = Backoff::new(self.retry.backoff, Duration::MAX);
        // An authorization code is single-use: if an answer was lost, sending it again would be a
        // replay, which makes the server revoke what it issued for it (RFC 6749 section 4.1.2).
        let attempts = match grant {
            GrantRequest::AuthorizationCode { .. } => 1,
            _ => self.retry.attempts.max(1),
        };
        loop {
            match self.token_once(url, &grant).await {
                Err(TokenFailure::Transient(mut error)) if attempt >= attempts => {
                    error.attempts = attempt;
                    return Err(TokenFailure::Transient(error));
                }
                Err(TokenFailure::Transient(mut error)) => {
                    tokio::time::sleep(waits.next_delay()).await;
                    if deadline.is_some_and(|deadline| tokio::time::Instant::now() + self.timeout > deadline) {
                        // Paused, or slower than planned: past this point another process may hold
                        // the refresh token's claim.
                        error.attempts = attempt;
                        return Err(TokenFailure::Transient(error));
                    }
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    async fn token_once(&self, url: &Url, grant: &GrantRequest<'_>) -> Result<TokenSet, TokenFailure> {
        let joined_scopes;
        let assertion = self.assertion(url)?;
        let mut form: Vec<(&str, &str)> = Vec::with_capacity(8);
        let (kind, requested_scopes) = match grant {
            GrantRequest::Password {
                username,
                password,
                scopes,
            } => {
                form.extend([
                    ("grant_type", "password"),
                    ("username", username),
                    ("password", password.expose_secret()),
                ]);
                (Grant::Password, *scopes)
            }
            GrantRequest::ClientCredentials { scopes } => {
                form.push(("grant_type", "client_credentials"));
                (Grant::ClientCredentials, *scopes)
            }
            GrantRequest::AuthorizationCode {
                code,
                redirect_uri,
                verifier,
            } => {
                form.extend([
                    ("grant_type", "authorization_code"),
                    ("code", code.expose_secret()),
                    ("redirect_uri", redirect_uri),
                    ("code_verifier", verifier.expose_secret()),
                ]);
                (Grant::AuthorizationCode, &[][..])
            }
            GrantRequest::DeviceCode { device_code } => {
                form.extend([
                    ("grant_type", DEVICE_CODE_GRANT),
                    ("device_code", device_code.expose_secret()),
                ]);
                (Grant::DeviceCode, &[][..])
            }
            GrantRequest::Refresh {
                previous,
                refresh_token,
            } => {
                form.extend([
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token.expose_secret()),
                ]);
                (previous.grant(), &[][..])
            }
        };
        if !requested_scopes.is_empty() {
            joined_scopes = requested_scopes.join(" ");
            form.push(("scope", &joined_scopes));
        }
        self.extend(&mut form);
        let request = self.authenticate(self.http.post(url.clone()), &mut form, assertion.as_ref());
        let now = self.clock.now();
        let secrets = secrets(&form, self.client_secret.as_ref());
        let (status, body) = self.send(url, request.form(&form)).await?;

        let parsed = parse_token_response(status, &body, now, kind);
        let mut tokens = parsed.map_err(|failure| match failure {
            // Some servers quote the refresh token they refuse ("Invalid refresh token: ...").
            TokenFailure::Refused(oauth) => TokenFailure::Refused(oauth.redacted(&secrets)),
            other => other,
        })?;
        if let GrantRequest::Refresh {
            previous,
            refresh_token,
        } = grant
        {
            // RFC 6749 section 6: without a new refresh token, the old one stays valid; without a
            // scope, the scope is unchanged.
            if tokens.refresh_token().is_none() {
                tokens = tokens.with_refresh_token((*refresh_token).clone());
            }
            if tokens.scopes().is_empty() {
                tokens = tokens.with_scopes(previous.scopes().to_vec());
            }
        } else if tokens.scopes().is_empty() {
            tokens = tokens.with_scopes(requested_scopes.to_vec());
        }
        Ok(tokens)
    }

    /// Start a device login (RFC 8628 section 3.1): the device code, and what the user is shown.
    pub async fn device_authorization(
        &self,
        url: &Url,
        scopes: &[String],
    ) -> Result<DeviceAuthorizationResponse, TokenFailure> {
        let joined_scopes = scopes.join(" ");
        let assertion = self.assertion(url)?;
        let mut form: Vec<(&str, &str)> = Vec::with_capacity(4);
        if !scopes.is_empty() {
            form.push(("scope", &joined_scopes));
        }
        self.extend(&mut form);
        let request = self.authenticate(self.http.post(url.clone()), &mut form, assertion.as_ref());
        let secrets = secrets(&form, self.client_secret.as_ref());
        let (status, body) = self.send(url, request.form(&form)).await?;
        let refused = |body: &[u8]| TokenFailure::Refused(oauth_error(status, body).redacted(&secrets));
        if status.is_client_error() {
            return Err(refused(&body));
        }
        if !status.is_success() {
            return Err(invalid(status, format!("unexpected status {status}")));
        }
        match serde_json::from_slice::<DeviceAuthorizationResponse>(&body) {
            Ok(response) => Ok(response),
            // Some servers answer 200 with an OAuth error body.
            Err(_) if serde_json::from_slice::<ErrorResponse>(&body).is_ok() => Err(refused(&body)),
            Err(e) => Err(invalid(status, crate::error::describe_parse_error(&e))),
        }
    }

    /// The configured extra parameters, after the protocol's own.
    fn extend<'a>(&'a self, form: &mut Vec<(&'a str, &'a str)>) {
        form.extend(
            self.parameters
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str())),
        );
    }

    /// Revoke a session (RFC 7009): its refresh token, which revokes the whole grant, or without one
    /// its access token. Not retried: logging out must not hang on a dead server.
    pub async fn revoke_session(&self, url: &Url, tokens: &TokenSet) -> Result<(), TokenFailure> {
        match tokens.refresh_token() {
            Some(refresh) => self.revoke(url, refresh, "refresh_token").await,
            None => self.revoke(url, tokens.access_token(), "access_token").await,
        }
    }

    async fn revoke(&self, url: &Url, token: &SecretString, hint: &str) -> Result<(), TokenFailure> {
        let assertion = self.assertion(url)?;
        let mut form = vec![("token", token.expose_secret()), ("token_type_hint", hint)];
        let request = self.authenticate(self.http.post(url.clone()), &mut form, assertion.as_ref());
        let (status, body) = self.send(url, request.form(&form)).await?;
        if status.is_success() {
            return Ok(());
        }
        Err(TokenFailure::Refused(oauth_error(status, &body)))
    }

    /// A new client assertion for a request to `url`, when the client authenticates with one.
    fn assertion(&self, url: &Url) -> Result<Option<SecretString>, TokenFailure> {
        #[cfg(feature = "jwt")]
        if let Some(signer) = &self.signer {
            return signer
                .assertion(&self.client_id, url.as_str(), self.clock.now())
                .map(Some)
                .map_err(|e| TokenFailure::Config(crate::error::ConfigError::ClientAssertion(e)));
        }
        let _ = url;
        Ok(None)
    }

    /// Client authentication (RFC 6749 section 2.3.1): HTTP Basic with form-encoded credentials, or
    /// the credentials in the body, or a client assertion (RFC 7523 section 2.2). A client without
    /// a secret is a public client and sends its id.
    fn authenticate<'a>(
        &'a self,
        request: reqwest::RequestBuilder,
        form: &mut Vec<(&'a str, &'a str)>,
        assertion: Option<&'a SecretString>,
    ) -> reqwest::RequestBuilder {
        let request = request
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(self.timeout);
        if let Some(assertion) = assertion {
            form.extend([
                ("client_id", self.client_id.as_str()),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", assertion.expose_secret()),
            ]);
            return request;
        }
        match (&self.client_secret, self.client_auth) {
            (Some(secret), ClientAuth::Basic) => {
                let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                request.basic_auth(encode(&self.client_id), Some(encode(secret.expose_secret())))
            }
            // `RequestBody` (the JWT authentications always have an assertion: `resolve` makes
            // their signer).
            (Some(secret), _) => {
                form.extend([
                    ("client_id", self.client_id.as_str()),
                    ("client_secret", secret.expose_secret()),
                ]);
                request
            }
            (None, _) => {
                form.push(("client_id", self.client_id.as_str()));
                request
            }
        }
    }

    /// Send, classify transport failures and retryable statuses, and read the body through a limit.
    async fn send(&self, url: &Url, request: reqwest::RequestBuilder) -> Result<(StatusCode, Vec<u8>), TokenFailure> {
        let transient = |cause| TokenFailure::Transient(TransientError { attempts: 1, cause });
        let network = |e: reqwest::Error| transient(TransientCause::Network(Arc::new(e.without_url())));
        let mut response = request.send().await.map_err(network)?;
        let status = response.status();
        if status.is_redirection() {
            // The token client follows no redirects (`ClientBuilder::token_http_client`).
            return Err(invalid(
                status,
                "the token endpoint answered with a redirect, which is not followed: it would carry the \
                 credentials elsewhere; configure the endpoint's final URL instead",
            ));
        }
        if response.url() != url {
            // The client followed a redirect: credentials went to, and the answer came from, an
            // address nobody configured. Not trusted, and said.
            return Err(invalid(
                status,
                "the token endpoint redirected the request; configure its final URL instead",
            ));
        }
        if status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
        {
            return Err(transient(TransientCause::Status(status)));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(network)? {
            if body.len() + chunk.len() > MAX_TOKEN_RESPONSE_BYTES {
                return Err(invalid(
                    status,
                    format!("the body is larger than {MAX_TOKEN_RESPONSE_BYTES} bytes"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }
}

/// RFC 7523 section 2.2's client assertion type.
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// RFC 8628 section 3.4's grant type.
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The secrets in a token request's form, and the client secret: what an error the server quotes them
/// in must not show.
fn secrets<'a>(form: &[(&'a str, &'a str)], client_secret: Option<&'a SecretString>) -> Vec<&'a str> {
    let secret_fields = [
        "password",
        "refresh_token",
        "client_secret",
        "client_assertion",
        "code",
        "code_verifier",
        "device_code",
    ];
    form.iter()
        .filter(|(name, _)| secret_fields.contains(name))
        .map(|(_, value)| *value)
        .chain(client_secret.map(|s| s.expose_secret()))
        .collect()
}

/// A device authorization response (RFC 8628 section 3.2).
#[derive(Deserialize)]
pub(crate) struct DeviceAuthorizationResponse {
    pub device_code: SecretString,
    pub user_code: String,
    /// Google's endpoint says `verification_url`.
    #[serde(alias = "verification_url")]
    pub verification_uri: String,
    #[serde(default)]
    pub verification_uri_complete: Option<String>,
    /// A number or a numeric string (ADFS sends strings).
    pub expires_in: serde_json::Value,
    #[serde(default)]
    pub interval: Option<serde_json::Value>,
}

impl DeviceAuthorizationResponse {
    /// How long the device code lasts (a lifetime that cannot be read: polled for 15 minutes).
    pub fn lifetime(&self) -> Duration {
        lifetime(Some(&self.expires_in))
            .ok()
            .flatten()
            .unwrap_or(Duration::from_secs(900))
    }

    /// The wait between polls the server asks for, if it says.
    pub fn interval(&self) -> Option<Duration> {
        lifetime(self.interval.as_ref()).ok().flatten()
    }
}

fn invalid(status: StatusCode, reason: impl Into<String>) -> TokenFailure {
    TokenFailure::Invalid(InvalidTokenResponse {
        status,
        reason: reason.into(),
    })
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: SecretString,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    refresh_token: Option<SecretString>,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// Read a token endpoint's answer into a [`TokenSet`] issued at `now`, or say why not.
pub(crate) fn parse_token_response(
    status: StatusCode,
    body: &[u8],
    now: SystemTime,
    grant: Grant,
) -> Result<TokenSet, TokenFailure> {
    if !status.is_success() {
        if status.is_client_error() {
            return Err(TokenFailure::Refused(oauth_error(status, body)));
        }
        return Err(invalid(status, format!("unexpected status {status}")));
    }
    let response: TokenResponse = match serde_json::from_slice(body) {
        Ok(response) => response,
        // Some servers answer 200 with an OAuth error body.
        Err(_) if serde_json::from_slice::<ErrorResponse>(body).is_ok() => {
            return Err(TokenFailure::Refused(oauth_error(status, body)));
        }
        Err(error) => return Err(invalid(status, crate::error::describe_parse_error(&error))),
    };
    let token_type = match response.token_type {
        None => "Bearer".to_owned(),
        Some(t) if t.eq_ignore_ascii_case("bearer") => "Bearer".to_owned(),
        // A scheme name is short (`mac`, `DPoP`): quote it; anything longer may be a misplaced token.
        Some(other) if other.len() <= 10 => {
            return Err(invalid(
                status,
                format!("token_type `{other}` is not supported (only Bearer)"),
            ));
        }
        Some(other) => {
            return Err(invalid(
                status,
                format!(
                    "a token_type of {} characters is not supported (only Bearer)",
                    other.len()
                ),
            ));
        }
    };
    if response.access_token.expose_secret().is_empty() {
        return Err(invalid(status, "access_token is empty"));
    }
    if reqwest::header::HeaderValue::from_str(response.access_token.expose_secret()).is_err() {
        return Err(invalid(
            status,
            "access_token has characters an HTTP header cannot carry",
        ));
    }
    let lifetime = lifetime(response.expires_in.as_ref()).map_err(|reason| invalid(status, reason))?;

    let mut tokens = TokenSet::new(response.access_token, grant, now).with_token_type(token_type);
    if let Some(lifetime) = lifetime {
        tokens = tokens.with_lifetime(lifetime);
    }
    if let Some(refresh_token) = response.refresh_token.filter(|t| !t.expose_secret().is_empty()) {
        tokens = tokens.with_refresh_token(refresh_token);
    }
    if let Some(scope) = response.scope {
        tokens = tokens.with_scopes(scope.split_whitespace().map(str::to_owned).collect());
    }
    Ok(tokens)
}

/// `expires_in` as a lifetime. A number or a numeric string; absent, zero or negative means "not
/// said" (the token is used until the API rejects it: refreshing ahead of a lifetime of zero would
/// refresh on every request).
fn lifetime(expires_in: Option<&serde_json::Value>) -> Result<Option<Duration>, String> {
    let seconds = match expires_in {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::Number(n)) => n.as_f64(),
        Some(serde_json::Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    match seconds {
        Some(s) if s.is_finite() && s > 0.0 => Ok(Some(Duration::from_secs_f64(s.min(MAX_LIFETIME.as_secs_f64())))),
        Some(s) if s.is_finite() => Ok(None),
        _ => Err("expires_in is not a number".to_owned()),
    }
}

/// An OAuth error body, or what can be said of a 4xx without one.
fn oauth_error(status: StatusCode, body: &[u8]) -> OAuthError {
    match serde_json::from_slice::<ErrorResponse>(body) {
        Ok(e) => OAuthError::new(status, e.error, e.error_description),
        Err(_) => OAuthError::new(status, "unknown".to_owned(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: SystemTime = SystemTime::UNIX_EPOCH;

    fn parse(status: u16, body: &str) -> Result<TokenSet, TokenFailure> {
        parse_token_response(
            StatusCode::from_u16(status).unwrap(),
            body.as_bytes(),
            NOW,
            Grant::Password,
        )
    }

    fn reason(outcome: Result<TokenSet, TokenFailure>) -> String {
        match outcome {
            Err(TokenFailure::Invalid(e)) => e.reason,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn a_full_response_is_read() {
        let tokens = parse(
            200,
            r#"{"access_token":"at","token_type":"bearer","expires_in":3600,"refresh_token":"rt","scope":"a b"}"#,
        )
        .unwrap();
        assert_eq!(tokens.access_token().expose_secret(), "at");
        assert_eq!(tokens.refresh_token().unwrap().expose_secret(), "rt");
        assert_eq!(tokens.token_type(), "Bearer");
        assert_eq!(tokens.expires_at(), Some(NOW + Duration::from_secs(3600)));
        assert_eq!(tokens.scopes(), ["a", "b"]);
    }

    #[test]
    fn expires_in_may_be_a_string_and_nonpositive_means_unknown() {
        assert!(
            parse(200, r#"{"access_token":"a","expires_in":"60"}"#)
                .unwrap()
                .expires_at()
                .is_some()
        );
        assert_eq!(
            parse(200, r#"{"access_token":"a","expires_in":0}"#)
                .unwrap()
                .expires_at(),
            None
        );
        assert_eq!(
            parse(200, r#"{"access_token":"a","expires_in":-5}"#)
                .unwrap()
                .expires_at(),
            None
        );
        assert_eq!(parse(200, r#"{"access_token":"a"}"#).unwrap().expires_at(), None);
        let huge = parse(200, r#"{"access_token":"a","expires_in":1e300}"#).unwrap();
        assert_eq!(huge.expires_at(), Some(NOW + MAX_LIFETIME));
        assert_eq!(
            reason(parse(200, r#"{"access_token":"a","expires_in":"soon"}"#)),
            "expires_in is not a number"
        );
    }

    #[test]
    fn oauth_errors_are_refusals_even_with_status_200() {
        for status in [400, 401, 200] {
            match parse(status, r#"{"error":"invalid_grant","error_description":"reused"}"#) {
                Err(TokenFailure::Refused(e)) => {
                    assert_eq!(e.code(), "invalid_grant");
                    assert_eq!(e.description(), Some("reused"));
                }
                other => panic!("{status}: {other:?}"),
            }
        }
        match parse(401, "<html>nope</html>") {
            Err(TokenFailure::Refused(e)) => assert_eq!(e.code(), "unknown"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unusable_answers_say_why_without_quoting_the_body() {
        assert!(reason(parse(200, "<html>")).starts_with("not JSON"));
        assert_eq!(
            reason(parse(200, r#"{"token_type":"bearer"}"#)),
            "missing field `access_token`"
        );
        let wrong = reason(parse(200, r#"{"access_token":123456789}"#));
        assert!(!wrong.contains("123456789"), "{wrong}");
        assert!(reason(parse(200, r#"{"access_token":"a","token_type":"mac"}"#)).contains("only Bearer"));
        assert_eq!(reason(parse(200, r#"{"access_token":""}"#)), "access_token is empty");
        assert!(reason(parse(200, r#"{"access_token":"a\nb"}"#)).contains("HTTP header"));
        assert!(reason(parse(302, "")).contains("unexpected status"));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #[test]
            fn any_answer_is_a_token_set_or_a_typed_failure(status in 100u16..600, body in prop::collection::vec(any::<u8>(), 0..300)) {
                let status = StatusCode::from_u16(status).unwrap();
                let _ = parse_token_response(status, &body, NOW, Grant::Password);
            }

            #[test]
            fn well_formed_answers_are_read_exactly(
                access in "[A-Za-z0-9._~+/=-]{1,64}",
                expires_in in any::<i64>(),
                refresh in prop::option::of("[A-Za-z0-9._-]{1,64}"),
                scopes in prop::collection::vec("[a-z.]{1,10}", 0..4),
            ) {
                let mut body = serde_json::json!({"access_token": access, "token_type": "bearer", "expires_in": expires_in});
                if let Some(refresh) = &refresh {
                    body["refresh_token"] = serde_json::json!(refresh);
                }
                if !scopes.is_empty() {
                    body["scope"] = serde_json::json!(scopes.join(" "));
                }
                let tokens = parse_token_response(StatusCode::OK, body.to_string().as_bytes(), NOW, Grant::Password).unwrap();
                prop_assert_eq!(tokens.access_token().expose_secret(), access.as_str());
                prop_assert_eq!(tokens.refresh_token().map(|t| t.expose_secret().to_owned()), refresh);
                prop_assert_eq!(tokens.scopes(), scopes.as_slice());
                let expected = (expires_in > 0).then(|| NOW + Duration::from_secs(expires_in as u64).min(MAX_LIFETIME));
                prop_assert_eq!(tokens.expires_at(), expected);
            }

            #[test]
            fn failures_never_quote_the_access_token(access in "[A-Za-z0-9]{11,40}", field in "[a-z_]{1,12}") {
                // The token misplaced where it makes the answer unusable: as the token type, as
                // expires_in, beside broken JSON. (Real tokens are longer than the 10 characters up
                // to which a token type is quoted.)
                for body in [
                    format!(r#"{{"access_token":"{access}","token_type":"{access}"}}"#),
                    format!(r#"{{"access_token":"{access}","expires_in":"{access}"}}"#),
                    format!(r#"{{"access_token":"{access}","{field}":}}"#),
                ] {
                    if let Err(TokenFailure::Invalid(e)) = parse_token_response(StatusCode::OK, body.as_bytes(), NOW, Grant::Password) {
                        prop_assert!(!e.to_string().contains(&access), "{}", e);
                    }
                }
            }
        }
    }
}
