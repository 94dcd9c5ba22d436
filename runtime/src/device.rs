//! The device authorization grant (RFC 8628), for devices without a browser or a keyboard: the user
//! approves the login on another device, at a verification URI, with a user code; meanwhile the
//! device polls the token endpoint at the server's interval.

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;
use tokio::time::Instant;

use crate::config::Config;
use crate::error::{AuthorizationError, Error};
use crate::protocol::{DeviceAuthorizationResponse, GrantRequest, TokenFailure};
use crate::token::TokenSet;

/// The wait between polls when the server names none (RFC 8628 section 3.2).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// What `slow_down` adds to the wait between polls (RFC 8628 section 3.5).
const SLOW_DOWN: Duration = Duration::from_secs(5);

/// The bounds of the wait between polls, whatever the server says: never back to back, never
/// longer than a user waits.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
const MAX_INTERVAL: Duration = Duration::from_secs(300);

/// A device login waiting for the user: show them [`user_code`](Self::user_code) and
/// [`verification_uri`](Self::verification_uri) (or the
/// [`verification_uri_complete`](Self::verification_uri_complete), as a link or a QR code), then
/// hand it to the generated `login_device`, which polls until the user approves, declines, or the
/// code expires. `Debug` does not show the device code.
pub struct DeviceAuthorization {
    device_code: SecretString,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: Option<String>,
    expires_at: Instant,
    interval: Duration,
    scopes: Vec<String>,
}

impl fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("device_code", &"[REDACTED]")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("expires_in", &self.expires_in())
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl DeviceAuthorization {
    pub(crate) fn new(response: DeviceAuthorizationResponse, scopes: Vec<String>) -> Self {
        let (lifetime, interval) = (response.lifetime(), response.interval());
        Self {
            device_code: response.device_code,
            user_code: response.user_code,
            verification_uri: response.verification_uri,
            verification_uri_complete: response.verification_uri_complete,
            expires_at: Instant::now() + lifetime.min(Duration::from_secs(24 * 3600)),
            interval: interval.unwrap_or(DEFAULT_INTERVAL).clamp(MIN_INTERVAL, MAX_INTERVAL),
            scopes,
        }
    }

    /// The code the user enters at the verification URI.
    pub fn user_code(&self) -> &str {
        &self.user_code
    }

    /// Where the user approves the login.
    pub fn verification_uri(&self) -> &str {
        &self.verification_uri
    }

    /// The verification URI with the user code in it, when the server gives one.
    pub fn verification_uri_complete(&self) -> Option<&str> {
        self.verification_uri_complete.as_deref()
    }

    /// How long the user has left.
    pub fn expires_in(&self) -> Duration {
        self.expires_at.saturating_duration_since(Instant::now())
    }
}

/// Poll the token endpoint until the user approves (the tokens), declines, or the code expires.
/// A token endpoint that cannot be reached is polled again, less often, until the code expires
/// (RFC 8628 section 3.5). Dropping the future stops the polling.
pub(crate) async fn poll(config: &Config, authorization: &DeviceAuthorization) -> Result<(TokenSet, url::Url), Error> {
    let flow = config.flow(crate::Grant::DeviceCode)?;
    let mut interval = authorization.interval;
    let mut wait = interval;
    // Consecutive polls the token endpoint could not answer: each doubles the next wait.
    let mut unanswered = 0u32;
    tracing::debug!(?interval, expires_in = ?authorization.expires_in(), "device login: waiting for the user");
    loop {
        if Instant::now() + wait >= authorization.expires_at {
            return Err(Error::Authorization(AuthorizationError::Expired));
        }
        tokio::time::sleep(wait).await;
        wait = interval;
        let grant = GrantRequest::DeviceCode {
            device_code: &authorization.device_code,
        };
        match config.tokens.token(&flow.token, grant, None).await {
            Ok(tokens) if tokens.scopes().is_empty() => {
                return Ok((tokens.with_scopes(authorization.scopes.clone()), flow.token.clone()));
            }
            Ok(tokens) => return Ok((tokens, flow.token.clone())),
            Err(TokenFailure::Refused(oauth)) => {
                unanswered = 0;
                match oauth.code() {
                    "authorization_pending" => {}
                    "slow_down" => {
                        interval = (interval + SLOW_DOWN).min(MAX_INTERVAL);
                        wait = interval;
                        tracing::debug!(?interval, "the token endpoint asked the device login to slow down");
                    }
                    "expired_token" => return Err(Error::Authorization(AuthorizationError::Expired)),
                    "access_denied" => {
                        return Err(Error::Authorization(AuthorizationError::Denied {
                            code: oauth.code().to_owned(),
                            description: oauth.description().map(str::to_owned),
                        }));
                    }
                    _ => return Err(Error::LoginRejected(oauth)),
                }
            }
            Err(TokenFailure::Transient(error)) => {
                unanswered = (unanswered + 1).min(8);
                wait = interval.saturating_mul(1 << unanswered).min(MAX_INTERVAL);
                tracing::warn!(%error, ?wait, "device login: the token endpoint is unavailable; polling again later");
            }
            Err(other) => return Err(crate::client::login_error(other)),
        }
    }
}
