//! A logged-in session: the current token in memory, renewed once however many requests need it.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use reqwest::header::HeaderValue;
use secrecy::ExposeSecret;

use crate::config::Config;
use crate::error::{AuthError, SessionEnd};
use crate::protocol::{GrantRequest, TokenFailure};
use crate::store::{DynStore, Expect, Swap, Version, Versioned};
use crate::token::{Grant, TokenSet};

/// A token as it is sent: the tokens, the header made once, and when to renew.
pub(crate) struct Token {
    tokens: TokenSet,
    /// The store version this token was read as or written as (`None`: not yet in the store).
    version: Option<Version>,
    header: HeaderValue,
    renew_at: Option<SystemTime>,
}

impl Token {
    fn new(tokens: TokenSet, version: Option<Version>, skew: Duration) -> Result<Self, AuthError> {
        let mut header =
            HeaderValue::try_from(format!("Bearer {}", tokens.access_token().expose_secret()))
                .map_err(|_| {
                    AuthError::Config("the access token cannot be sent in an HTTP header".into())
                })?;
        header.set_sensitive(true);
        // Renew `skew` before expiry, but never earlier than half-way through the token's life.
        let renew_at = tokens.expires_at().map(|expires| {
            let lifetime = expires
                .duration_since(tokens.issued_at())
                .unwrap_or_default();
            expires - skew.min(lifetime / 2)
        });
        Ok(Self {
            tokens,
            version,
            header,
            renew_at,
        })
    }

    pub(crate) fn header(&self) -> &HeaderValue {
        &self.header
    }

    fn is_due(&self, now: SystemTime) -> bool {
        self.renew_at.is_some_and(|at| now >= at)
    }

    fn is_expired(&self, now: SystemTime) -> bool {
        self.tokens.expires_at().is_some_and(|at| now >= at)
    }
}

/// Why a renewal was started (for tracing).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Reason {
    AheadOfExpiry,
    Rejected,
}

/// Publishes a renewal's outcome and clears the renewal slot when the renewal task ends, also if it
/// panicked or was cancelled (then the current token stays, and the next caller starts afresh).
struct Finish<'a> {
    session: &'a Session,
    outcome: Option<Result<Arc<Token>, AuthError>>,
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        let mut state = self.session.state();
        state.renewal = None;
        match &self.outcome {
            Some(Ok(token)) => state.current = token.clone(),
            Some(Err(AuthError::SessionEnded(end))) => state.ended = Some(end.clone()),
            Some(Err(_)) | None => {}
        }
    }
}

type Renewal = Shared<BoxFuture<'static, Result<Arc<Token>, AuthError>>>;

struct State {
    current: Arc<Token>,
    /// The renewal in flight, which every caller joins.
    renewal: Option<Renewal>,
    /// Set once the session can no longer be renewed; every later call fails with it.
    ended: Option<SessionEnd>,
}

pub(crate) struct Session {
    config: Arc<Config>,
    store: Arc<dyn DynStore>,
    state: Mutex<State>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn new(
        config: Arc<Config>,
        store: Arc<dyn DynStore>,
        stored: Versioned,
    ) -> Result<Arc<Self>, AuthError> {
        let current = Arc::new(Token::new(
            stored.tokens,
            Some(stored.version),
            config.skew,
        )?);
        let state = Mutex::new(State {
            current,
            renewal: None,
            ended: None,
        });
        Ok(Arc::new(Self {
            config,
            store,
            state,
        }))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every critical section is a few assignments that cannot panic half-way.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn current(&self) -> Result<Arc<Token>, AuthError> {
        let state = self.state();
        match &state.ended {
            Some(end) => Err(AuthError::SessionEnded(end.clone())),
            None => Ok(state.current.clone()),
        }
    }

    /// A token to send now. Within the skew of expiry it is renewed first; if that fails for a passing
    /// reason while the token is still valid, the token is used anyway.
    pub(crate) async fn token(self: &Arc<Self>) -> Result<Arc<Token>, AuthError> {
        let current = self.current()?;
        let now = self.config.clock().now();
        if !current.is_due(now) {
            return Ok(current);
        }
        match self.renew(&current, Reason::AheadOfExpiry).await {
            Err(AuthError::Transient(_) | AuthError::Store(_)) if !current.is_expired(now) => {
                Ok(current)
            }
            outcome => outcome,
        }
    }

    /// The API rejected the token a request carried (`sent`, its `Authorization` header): a token to
    /// send it again with. Renews only if that token is still the current one.
    pub(crate) async fn rejected(
        self: &Arc<Self>,
        sent: Option<&HeaderValue>,
    ) -> Result<Arc<Token>, AuthError> {
        let current = self.current()?;
        if sent != Some(&current.header) {
            return Ok(current);
        }
        self.renew(&current, Reason::Rejected).await
    }

    /// Renew the session once, however many callers ask: the first starts the renewal, the others
    /// join it, and a caller whose token was already replaced gets the replacement.
    async fn renew(
        self: &Arc<Self>,
        seen: &Arc<Token>,
        reason: Reason,
    ) -> Result<Arc<Token>, AuthError> {
        let renewal = {
            let mut state = self.state();
            if let Some(end) = &state.ended {
                return Err(AuthError::SessionEnded(end.clone()));
            }
            if !Arc::ptr_eq(&state.current, seen) {
                return Ok(state.current.clone());
            }
            let start = || {
                tracing::debug!(?reason, "renewing the access token");
                // Its own task: a caller that gives up cannot cut a renewal in half (a refresh token
                // spent at the server and its successor never stored).
                let task = tokio::spawn(self.clone().run_renewal(seen.clone()));
                task.map(|joined| {
                    joined.unwrap_or_else(|e| {
                        Err(AuthError::Config(format!("renewal task failed: {e}")))
                    })
                })
                .boxed()
                .shared()
            };
            state.renewal.get_or_insert_with(start).clone()
        };
        renewal.await
    }

    async fn run_renewal(self: Arc<Self>, seen: Arc<Token>) -> Result<Arc<Token>, AuthError> {
        let mut finish = Finish {
            session: &self,
            outcome: None,
        };
        let outcome = self.renewed(&seen).await;
        match &outcome {
            Ok(_) => tracing::debug!("access token renewed"),
            Err(error) => tracing::warn!(?error, "renewing the access token failed"),
        }
        finish.outcome = Some(outcome.clone());
        outcome
    }

    /// The renewal: adopt a newer session from the store if another process renewed it, else ask the
    /// token endpoint and store the result (compare-and-set: a newer session stored meanwhile wins).
    async fn renewed(&self, seen: &Token) -> Result<Arc<Token>, AuthError> {
        let skew = self.config.skew;
        let now = self.config.clock().now();
        match self.store.load().await {
            Ok(Some(stored)) if Some(stored.version) != seen.version => {
                let token = Token::new(stored.tokens, Some(stored.version), skew)?;
                if !token.is_due(now) {
                    return Ok(Arc::new(token));
                }
            }
            Ok(None) if seen.version.is_some() => {
                return Err(AuthError::SessionEnded(SessionEnd::LoggedOut));
            }
            // Unreachable store: renew anyway, and keep the result in memory.
            Err(error) => tracing::warn!(%error, "cannot read the token store before renewing"),
            Ok(_) => {}
        }

        let tokens = self.request_renewal(&seen.tokens).await?;
        let expect = seen.version.map_or(Expect::Empty, Expect::Version);
        match self.store.store(expect, &tokens).await {
            Ok(Swap::Stored(version)) => Ok(Arc::new(Token::new(tokens, Some(version), skew)?)),
            Ok(Swap::Conflict(Some(newer))) => Ok(Arc::new(Token::new(
                newer.tokens,
                Some(newer.version),
                skew,
            )?)),
            Ok(Swap::Conflict(None)) => Err(AuthError::SessionEnded(SessionEnd::LoggedOut)),
            Err(error) => {
                tracing::warn!(%error, "renewed token kept in memory only: the token store failed");
                Ok(Arc::new(Token::new(tokens, seen.version, skew)?))
            }
        }
    }

    /// Redeem the refresh token, or re-acquire a client-credentials token.
    async fn request_renewal(&self, previous: &TokenSet) -> Result<TokenSet, AuthError> {
        let flow = self
            .config
            .flow(previous.grant())
            .map_err(|e| AuthError::Config(e.to_string()))?;
        let (url, grant) = match (previous.refresh_token(), previous.grant()) {
            (Some(refresh_token), _) => (
                &flow.refresh,
                GrantRequest::Refresh {
                    previous,
                    refresh_token,
                },
            ),
            (None, Grant::ClientCredentials) => (
                &flow.token,
                GrantRequest::ClientCredentials {
                    scopes: previous.scopes(),
                },
            ),
            (None, Grant::Password) => {
                return Err(AuthError::SessionEnded(SessionEnd::NotRenewable));
            }
        };
        self.config
            .tokens
            .token(url, grant)
            .await
            .map_err(|failure| match failure {
                TokenFailure::Refused(oauth) => AuthError::SessionEnded(SessionEnd::Refused(oauth)),
                TokenFailure::Transient(e) => AuthError::Transient(e),
                TokenFailure::Invalid(e) => AuthError::InvalidTokenResponse(e),
            })
    }

    /// End the session here: every later call, on any clone, fails with `end`.
    pub(crate) fn end(&self, end: SessionEnd) {
        self.state().ended = Some(end);
    }

    /// The tokens to revoke at logout: the refresh token if there is one, else the access token.
    pub(crate) fn tokens(&self) -> TokenSet {
        self.state().current.tokens.clone()
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }
}
