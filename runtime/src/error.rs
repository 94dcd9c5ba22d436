//! One error type for everything a call can end in, split so that a caller can tell a finished
//! session (log in again) from a network blip (try again later) from the API's own answer.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use progenitor_client::ResponseValue;
use reqwest::StatusCode;

use crate::store::StoreError;

/// Everything a login, a resume, a logout or an API call can fail with.
///
/// `E` is the error body type the spec documents for the operation (`()` where there is none). What
/// is not an API call (a login, `resume`, `logout`, `refresh`, `flush`, the builder) fails with
/// `Error<NotACall>`, plain `Error`; `?` turns it into a call's `Error<E>` (and
/// [`Error::into_call`] where the call's error body is not JSON), so one function can log in and call
/// with one error type.
///
/// progenitor's request hook can only fail with a `reqwest::Error`, which cannot say "the session has
/// ended". So the SDK's hooks attach such failures to a response that the generated code hands back
/// unread, and the method returns the attached failure instead. Callers simply match on this enum.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error<E = NotACall> {
    /// The session is over and cannot be renewed: log in again. Every request waiting on the failed
    /// renewal gets this same error, and no further refresh is attempted.
    #[error("the session has ended: {0}; log in again")]
    SessionEnded(SessionEnd),

    /// The token endpoint refused the login (wrong password, unknown client, scope not allowed).
    #[error("the login was refused: {0}")]
    LoginRejected(OAuthError),

    /// An authorization-code or device login did not get as far as the token endpoint: a callback
    /// whose `state` or `iss` is wrong, a login the user or the server declined, a device code that
    /// expired, no callback in time. No session was stored.
    #[error(transparent)]
    Authorization(AuthorizationError),

    /// The revocation endpoint refused to revoke the token at logout (the local session ended anyway).
    #[error("the revocation endpoint refused: {0}")]
    RevocationRefused(OAuthError),

    /// The token endpoint could not be reached, timed out, or answered 429 or 5xx, even after
    /// retrying with backoff. The session is intact: try again later.
    #[error(transparent)]
    Transient(TransientError),

    /// The token endpoint refused a renewal for a reason other than the grant itself: the client's
    /// credentials (`invalid_client`, `unauthorized_client`: a configuration error), a malformed
    /// request, or a 4xx from something in front of it (a proxy's HTML page). The session is not
    /// over: it is kept, and renewed again on a later call. [`Error::SessionEnded`] is reserved for
    /// `invalid_grant`, the one answer that says the refresh token itself is gone.
    #[error("the token endpoint refused the renewal: {0} (the session is kept)")]
    RenewalRefused(OAuthError),

    /// The token endpoint answered with something that is not a usable token response.
    #[error(transparent)]
    InvalidTokenResponse(InvalidTokenResponse),

    /// The token store failed.
    #[error(transparent)]
    Store(StoreError),

    /// `resume` found no session in the store.
    #[error("the token store holds no session; log in first")]
    NoSession,

    /// The client is not configured for what was asked: a URL that is not one, plain http to a
    /// remote host, a flow the spec does not declare. Not transient: the configuration must change.
    #[error(transparent)]
    Config(ConfigError),

    /// The task renewing the token was cancelled (its runtime is shutting down) or panicked. The
    /// session is kept; the next call renews again.
    #[error("the renewal of the access token was cancelled before it finished (the session is kept)")]
    RenewalAborted,

    /// The API rejected the request's access token, and the request was not sent again because its
    /// body is a stream that cannot be replayed. The token has been renewed: send the request again.
    #[error(
        "the API answered {status} to the access token and the request was not sent again: its body is a \
         stream that cannot be replayed (the token has been renewed; send it again)"
    )]
    NotRetried {
        /// The status the API answered.
        status: StatusCode,
    },

    /// The API answered with an error the spec documents.
    #[error("the API answered {}", .0.status())]
    Api(Box<ResponseValue<E>>),

    /// The API answered with a status the spec does not document for the operation.
    #[error("the API answered {}, which the spec does not document for this operation", .0.status())]
    UnexpectedResponse(Box<reqwest::Response>),

    /// The API's response body does not match the spec. The message says where, but does not
    /// quote the body (serde's messages quote the offending value, which may be a secret); the body
    /// and serde's error are here for whoever needs them.
    #[error("the API's response does not match the spec: {}", describe_parse_error(.parse_error))]
    InvalidResponse {
        /// The body as received.
        body: Bytes,
        /// Why it does not parse. Not the error's `source()`: its message quotes the body.
        parse_error: serde_json::Error,
    },

    /// Sending the request or reading the response failed.
    #[error("the request failed: {0}")]
    Request(#[source] reqwest::Error),

    /// The request could not be built from the arguments.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl<E> Error<E> {
    /// The HTTP status the API answered, where the error comes from an API response.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::NotRetried { status } => Some(*status),
            Error::Api(response) => Some(response.status()),
            Error::UnexpectedResponse(response) => Some(response.status()),
            Error::Request(error) => error.status(),
            _ => None,
        }
    }

    /// True when the session is over and only a new login helps.
    pub fn is_session_ended(&self) -> bool {
        matches!(self, Error::SessionEnded(_))
    }

    /// True for failures that retrying can fix: the token endpoint or the token store unreachable,
    /// the API unreachable or answering 408, 429, 502, 503 or 504, or a stream upload that must be
    /// sent again. A request that could not be built, or an answer that does not match the spec, is
    /// not.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transient(_) | Error::NotRetried { .. } | Error::RenewalAborted => true,
            Error::Request(error) => !error.is_builder() && !error.is_redirect() && !error.is_decode(),
            Error::Store(error) => error.is_unavailable(),
            Error::Api(_) | Error::UnexpectedResponse(_) => self
                .status()
                .is_some_and(|status| matches!(status.as_u16(), 408 | 429 | 502 | 503 | 504)),
            _ => false,
        }
    }
}

/// `Debug` for every `E`, so that every call's error is a `std::error::Error` (`?` into `anyhow` or
/// `Box<dyn Error>`), including calls whose error body is a `ByteStream`. An [`Error::Api`] shows its
/// status and the body's type, not the body: read it with `ResponseValue::into_inner`.
impl<E> fmt::Debug for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::SessionEnded(end) => f.debug_tuple("SessionEnded").field(end).finish(),
            Error::LoginRejected(oauth) => f.debug_tuple("LoginRejected").field(oauth).finish(),
            Error::Authorization(e) => f.debug_tuple("Authorization").field(e).finish(),
            Error::RevocationRefused(oauth) => f.debug_tuple("RevocationRefused").field(oauth).finish(),
            Error::Transient(e) => f.debug_tuple("Transient").field(e).finish(),
            Error::RenewalRefused(oauth) => f.debug_tuple("RenewalRefused").field(oauth).finish(),
            Error::InvalidTokenResponse(e) => f.debug_tuple("InvalidTokenResponse").field(e).finish(),
            Error::Store(e) => f.debug_tuple("Store").field(e).finish(),
            Error::NoSession => f.write_str("NoSession"),
            Error::Config(e) => f.debug_tuple("Config").field(e).finish(),
            Error::RenewalAborted => f.write_str("RenewalAborted"),
            Error::NotRetried { status } => f.debug_struct("NotRetried").field("status", status).finish(),
            Error::Api(response) => f
                .debug_struct("Api")
                .field("status", &response.status())
                .field("body", &format_args!("{}", std::any::type_name::<E>()))
                .finish_non_exhaustive(),
            Error::UnexpectedResponse(response) => f.debug_tuple("UnexpectedResponse").field(response).finish(),
            Error::InvalidResponse { body, parse_error } => f
                .debug_struct("InvalidResponse")
                .field("body", &format_args!("{} bytes", body.len()))
                .field("parse_error", &describe_parse_error(parse_error))
                .finish(),
            Error::Request(e) => f.debug_tuple("Request").field(e).finish(),
            Error::InvalidRequest(message) => f.debug_tuple("InvalidRequest").field(message).finish(),
        }
    }
}

/// The `E` of an [`Error`] that no API call returned: there is no value of it, so such an error is
/// never [`Error::Api`], and converts into any call's `Error<E>` ([`Error::into_call`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotACall {}

/// A login's (or any non-call's) error, as a call's: `?` in a function that also calls the API. For
/// a call whose error body is not JSON (`Error<ByteStream>`), [`Error::into_call`] does the same.
impl<E: serde::de::DeserializeOwned> From<Error<NotACall>> for Error<E> {
    fn from(error: Error<NotACall>) -> Self {
        error.into_call()
    }
}

impl Error<NotACall> {
    /// This error as any call's: `login(..).await.map_err(Error::into_call)?` where `?` alone cannot
    /// convert (a call whose error body is a `ByteStream`).
    pub fn into_call<E>(self) -> Error<E> {
        match self {
            Error::SessionEnded(end) => Error::SessionEnded(end),
            Error::LoginRejected(oauth) => Error::LoginRejected(oauth),
            Error::Authorization(e) => Error::Authorization(e),
            Error::RevocationRefused(oauth) => Error::RevocationRefused(oauth),
            Error::Transient(e) => Error::Transient(e),
            Error::RenewalRefused(oauth) => Error::RenewalRefused(oauth),
            Error::InvalidTokenResponse(e) => Error::InvalidTokenResponse(e),
            Error::Store(e) => Error::Store(e),
            Error::NoSession => Error::NoSession,
            Error::Config(e) => Error::Config(e),
            Error::RenewalAborted => Error::RenewalAborted,
            Error::NotRetried { status } => Error::NotRetried { status },
            #[allow(unreachable_code, reason = "there is no `NotACall`, so no such response")]
            Error::Api(response) => match response.into_inner() {},
            Error::UnexpectedResponse(response) => Error::UnexpectedResponse(response),
            Error::InvalidResponse { body, parse_error } => Error::InvalidResponse { body, parse_error },
            Error::Request(e) => Error::Request(e),
            Error::InvalidRequest(message) => Error::InvalidRequest(message),
        }
    }
}

impl<E> From<progenitor_client::Error<E>> for Error<E> {
    fn from(error: progenitor_client::Error<E>) -> Self {
        use progenitor_client::Error as P;
        match error {
            P::ErrorResponse(response) => Error::Api(Box::new(response)),
            P::UnexpectedResponse(response) => Error::UnexpectedResponse(Box::new(response)),
            P::InvalidResponsePayload(body, parse_error) => Error::InvalidResponse { body, parse_error },
            P::CommunicationError(e) | P::InvalidUpgrade(e) | P::ResponseBodyError(e) => Error::Request(e),
            P::InvalidRequest(message) | P::Custom(message) => Error::InvalidRequest(message),
        }
    }
}

/// An OAuth error answer (RFC 6749 section 5.2), e.g. `invalid_grant`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    status: StatusCode,
    code: String,
    description: Option<String>,
}

impl OAuthError {
    pub(crate) fn new(status: StatusCode, code: String, description: Option<String>) -> Self {
        Self {
            status,
            code,
            description,
        }
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// With every one of `secrets` that the server quoted in its texts replaced.
    pub(crate) fn redacted(mut self, secrets: &[&str]) -> Self {
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
            if let Some(description) = &mut self.description {
                *description = description.replace(secret, "[redacted]");
            }
            self.code = self.code.replace(secret, "[redacted]");
        }
        self
    }

    /// The `error` code, e.g. `invalid_grant` or `invalid_client`; `unknown` if the body had none.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The `error_description`, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code, self.status)?;
        match &self.description {
            Some(description) => write!(f, ": {description}"),
            None => Ok(()),
        }
    }
}

/// Why an authorization-code or device login stopped before a token was issued
/// ([`Error::Authorization`]).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorizationError {
    /// The callback's `state` is not the pending login's: a forged callback (cross-site request
    /// forgery), or the callback of another login. Its code is not redeemed.
    #[error(
        "the callback's `state` is not the pending login's: it may be forged, or belong to another login; \
         its code was not used"
    )]
    StateMismatch,
    /// The callback's `iss` (RFC 9207) names another authorization server than the one the user was
    /// sent to: a mix-up attack, or a misconfigured [`issuer`](crate::ClientBuilder::issuer).
    #[error("the callback comes from issuer `{received}`, not `{expected}`; its code was not used")]
    IssuerMismatch {
        /// The issuer expected: the configured one, or the authorization endpoint's origin.
        expected: String,
        /// The `iss` the callback carried.
        received: String,
    },
    /// The authorization server declined the login: the user refused (`access_denied`), or the
    /// request was not acceptable (`invalid_scope`, `unauthorized_client`...).
    #[error("the authorization server declined the login: {code}{}", .description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Denied {
        /// The `error` code (RFC 6749 section 4.1.2.1, RFC 8628 section 3.5).
        code: String,
        /// The `error_description`, if any.
        description: Option<String>,
    },
    /// The callback is not an authorization response (no `code` and no `error`, a parameter given
    /// twice).
    #[error("the callback is not an authorization response: {0}")]
    InvalidCallback(String),
    /// The device code expired before the user approved the login (`expired_token`, or its
    /// `expires_in` passed): start a new device login.
    #[error("the device code expired before the login was approved; start a new device login")]
    Expired,
    /// No callback reached the loopback redirect in time.
    #[error("no callback reached the loopback redirect within {0:?}")]
    Timeout(std::time::Duration),
    /// The loopback redirect could not listen or read its callback.
    #[error("the loopback redirect failed: {0}")]
    Loopback(Arc<std::io::Error>),
    /// The system's random number generator failed, so no `state` or PKCE verifier could be made.
    #[error("the system's random number generator failed: {0}")]
    RandomnessUnavailable(String),
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionEnd {
    /// The token endpoint answered `invalid_grant` to its refresh token: it expired, was revoked, or
    /// was presented twice.
    #[error("the token endpoint refused to renew it: {0}")]
    Refused(OAuthError),
    /// It has no refresh token and is not a client-credentials session: the SDK keeps no password,
    /// authorization code or device code to log in with again.
    #[error("it has no refresh token, and only a client-credentials session can be renewed without one")]
    NotRenewable,
    /// It was logged out.
    #[error("it was logged out")]
    LoggedOut,
    /// The store lost the session (a Redis restarted without persistence), and this process's copy
    /// may be older than the one it lost: presenting its refresh token could be presenting a spent
    /// one.
    #[error("the token store lost it, and this process's copy may be outdated")]
    StoreLost,
    /// The token endpoint answered a renewal with a success the SDK cannot use (a token type other
    /// than Bearer, a malformed body). It may have rotated the refresh token meanwhile, so the old one
    /// is not presented again.
    #[error("the token endpoint's answer to a renewal cannot be used: {0}")]
    UnusableRenewal(InvalidTokenResponse),
}

/// What is wrong with a client's configuration ([`Error::Config`]). The builder reports all but the
/// last two from [`build`](crate::ClientBuilder::build).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A URL does not parse (relative URLs are taken relative to the base URL).
    #[error("{what} `{url}` is not a valid URL: {source}")]
    InvalidUrl {
        /// Which URL: `base URL`, `token URL`, `the spec's tokenUrl`...
        what: &'static str,
        /// The URL as configured.
        url: String,
        /// Why it does not parse.
        source: url::ParseError,
    },
    /// A URL is plain `http` to a host beyond the loopback interface, and
    /// [`danger_allow_http`](crate::ClientBuilder::danger_allow_http) is off.
    #[error(
        "{what} `{url}` is plain http: tokens would cross the network unencrypted. Use https, or \
         `ClientBuilder::danger_allow_http(true)` if this network is trusted"
    )]
    PlainHttp {
        /// Which URL.
        what: &'static str,
        /// The URL as configured.
        url: String,
    },
    /// A URL's scheme is neither `https` nor `http`.
    #[error("{what} `{url}` is not an http(s) URL")]
    NotHttp {
        /// Which URL.
        what: &'static str,
        /// The URL as configured.
        url: String,
    },
    /// A status given to [`trigger_statuses`](crate::ClientBuilder::trigger_statuses) is not 4xx.
    #[error("trigger status {0} is not a 4xx status")]
    TriggerNotClientError(StatusCode),
    /// An HTTP client could not be built (a TLS backend that cannot initialise).
    #[error("the {which} HTTP client cannot be built: {source}")]
    HttpClient {
        /// `API's` or `token endpoint's`.
        which: &'static str,
        /// reqwest's error.
        source: Arc<reqwest::Error>,
    },
    /// A parameter given to [`extra_parameter`](crate::ClientBuilder::extra_parameter) is one the
    /// protocol itself uses.
    #[error("`{0}` is a parameter the SDK sends itself; it cannot be given as an extra parameter")]
    ReservedParameter(String),
    /// A client assertion key that cannot be used, or JWT client authentication without the key or
    /// secret it signs with (feature `jwt`).
    #[error("{0}")]
    ClientAssertion(String),
    /// A session's grant needs a flow the spec does not declare, and no
    /// [`token_url`](crate::ClientBuilder::token_url) is set.
    #[error("the spec declares no OAuth {0} flow; set `ClientBuilder::token_url` to use one anyway")]
    NoFlow(&'static str),
    /// A token given to the SDK (or read from a store) has characters an HTTP header cannot carry.
    #[error("the access token has characters an HTTP header cannot carry")]
    TokenNotAHeader,
}

/// The token endpoint could not be used for now.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the token endpoint is unavailable after {attempts} attempt(s): {cause}")]
pub struct TransientError {
    pub(crate) attempts: u32,
    pub(crate) cause: TransientCause,
}

impl TransientError {
    /// How many times the request was tried.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The status of the last answer, if there was one.
    pub fn status(&self) -> Option<StatusCode> {
        match &self.cause {
            TransientCause::Status(status) => Some(*status),
            TransientCause::Network(error) => error.status(),
        }
    }
}

/// What went wrong on the last attempt.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum TransientCause {
    #[error("{0}")]
    Network(Arc<reqwest::Error>),
    #[error("it answered {0}")]
    Status(StatusCode),
}

/// The token endpoint's answer is not a token response the SDK can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the token endpoint's answer ({status}) is not a usable token response: {reason}")]
pub struct InvalidTokenResponse {
    pub(crate) status: StatusCode,
    pub(crate) reason: String,
}

impl InvalidTokenResponse {
    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

/// Why a token could not be had; cheap to clone, so every request waiting on one refresh gets it.
#[derive(Debug, Clone)]
pub(crate) enum AuthError {
    SessionEnded(SessionEnd),
    RenewalRefused(OAuthError),
    Transient(TransientError),
    InvalidTokenResponse(InvalidTokenResponse),
    Store(StoreError),
    Config(ConfigError),
    Aborted,
}

impl<E> From<AuthError> for Error<E> {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::SessionEnded(end) => Error::SessionEnded(end),
            AuthError::RenewalRefused(oauth) => Error::RenewalRefused(oauth),
            AuthError::Transient(e) => Error::Transient(e),
            AuthError::InvalidTokenResponse(e) => Error::InvalidTokenResponse(e),
            AuthError::Store(e) => Error::Store(e),
            AuthError::Config(e) => Error::Config(e),
            AuthError::Aborted => Error::RenewalAborted,
        }
    }
}

impl<E> From<ConfigError> for Error<E> {
    fn from(error: ConfigError) -> Self {
        Error::Config(error)
    }
}

impl<E> From<StoreError> for Error<E> {
    fn from(error: StoreError) -> Self {
        Error::Store(error)
    }
}

impl AuthError {
    /// Whether the failure may pass, so that a still-valid token may be used meanwhile.
    pub(crate) fn is_passing(&self) -> bool {
        match self {
            AuthError::Transient(_)
            | AuthError::RenewalRefused(_)
            | AuthError::InvalidTokenResponse(_)
            | AuthError::Aborted => true,
            AuthError::Store(error) => error.is_unavailable(),
            AuthError::SessionEnded(_) | AuthError::Config(_) => false,
        }
    }
}

impl From<ConfigError> for AuthError {
    fn from(error: ConfigError) -> Self {
        AuthError::Config(error)
    }
}

impl From<StoreError> for AuthError {
    fn from(error: StoreError) -> Self {
        AuthError::Store(error)
    }
}

/// Describe a JSON parse failure without quoting the input: serde's messages quote the offending
/// value, which in a token response or a stored session may be a token. Says what kind of failure
/// and where.
pub(crate) fn describe_parse_error(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let message = error.to_string();
    match error.classify() {
        Category::Data if message.starts_with("missing field") => {
            message.split(" at line").next().unwrap_or(&message).to_owned()
        }
        Category::Data => format!(
            "a field has the wrong type (line {}, column {})",
            error.line(),
            error.column()
        ),
        Category::Syntax | Category::Eof | Category::Io => {
            format!("not JSON (line {}, column {})", error.line(), error.column())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_std_error<T: std::error::Error + Send + Sync + 'static>() {}

    #[test]
    fn every_calls_error_is_a_std_error() {
        is_std_error::<Error>();
        is_std_error::<Error<()>>();
        is_std_error::<Error<progenitor_client::ByteStream>>();
        is_std_error::<Error<serde_json::Value>>();
    }

    #[test]
    fn debug_shows_no_body() {
        let source = serde_json::from_slice::<u32>(b"\"secret-token\"").unwrap_err();
        let error: Error<()> = Error::InvalidResponse {
            body: Bytes::from_static(b"\"secret-token\""),
            parse_error: source,
        };
        let debug = format!("{error:?}");
        assert!(debug.starts_with("InvalidResponse { body: 14 bytes"), "{debug}");
        assert!(!debug.contains("secret-token"), "{debug}");
        let display = error.to_string();
        assert!(
            display.contains("a field has the wrong type (line 1, column 14)"),
            "{display}"
        );
        assert!(!display.contains("secret-token"), "{display}");
        assert!(std::error::Error::source(&error).is_none());
    }

    #[test]
    fn configuration_errors_are_not_transient() {
        let error: Error = ConfigError::TriggerNotClientError(StatusCode::OK).into();
        assert!(!error.is_transient());
        assert_eq!(error.to_string(), "trigger status 200 OK is not a 4xx status");
        assert!(Error::<()>::RenewalAborted.is_transient());
    }
}
