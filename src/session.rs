//! A logged-in session: the current token in memory, renewed once however many requests (and, with a
//! shared store, however many processes) need it.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use reqwest::header::HeaderValue;
use secrecy::ExposeSecret;
use tokio::sync::watch;

use crate::config::Config;
use crate::error::{AuthError, SessionEnd};
use crate::metrics::{Counters, SessionState};
use crate::protocol::{GrantRequest, TokenFailure};
use crate::store::{DynStore, Expect, LockAttempt, Swap, Version, Versioned};
use crate::token::{Grant, TokenSet};

/// How often a process waiting for another one's renewal looks at the store, when the store pushes
/// no change notifications (or one is missed).
const LOCK_POLL: Duration = Duration::from_millis(50);

/// The first wait before writing back a renewed session the store did not take; doubled up to
/// [`WRITE_BACK_MAX_DELAY`].
const WRITE_BACK_FIRST_DELAY: Duration = Duration::from_millis(200);
const WRITE_BACK_MAX_DELAY: Duration = Duration::from_secs(5);

/// A token as it is sent: the tokens, the header made once, and when to renew.
pub(crate) struct Token {
    tokens: TokenSet,
    /// The store version it was read or written as; 0 while it is not in the store.
    version: AtomicU64,
    header: HeaderValue,
    renew_at: Option<SystemTime>,
}

impl Token {
    fn new(tokens: TokenSet, version: Option<Version>, skew: Duration) -> Result<Self, AuthError> {
        let mut header = HeaderValue::try_from(format!("Bearer {}", tokens.access_token().expose_secret()))
            .map_err(|_| AuthError::Config("the access token cannot be sent in an HTTP header".into()))?;
        header.set_sensitive(true);
        // Renew `skew` before expiry, but never earlier than half-way through the token's life.
        let renew_at = tokens.expires_at().map(|expires| {
            let lifetime = expires.duration_since(tokens.issued_at()).unwrap_or_default();
            expires - skew.min(lifetime / 2)
        });
        Ok(Self {
            tokens,
            version: AtomicU64::new(version.unwrap_or(0)),
            header,
            renew_at,
        })
    }

    pub(crate) fn header(&self) -> &HeaderValue {
        &self.header
    }

    fn version(&self) -> Option<Version> {
        Some(self.version.load(Relaxed)).filter(|v| *v != 0)
    }

    fn is_due(&self, now: SystemTime) -> bool {
        self.renew_at.is_some_and(|at| now >= at)
    }

    fn is_expired(&self, now: SystemTime) -> bool {
        self.tokens.expires_at().is_some_and(|at| now >= at)
    }
}

/// Why a renewal was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// The token is within the skew of its expiry.
    AheadOfExpiry,
    /// The API rejected it.
    Rejected,
    /// The store says another process stored a newer session: adopt it, refresh nothing.
    StoreChanged,
    /// The application asked for a new token.
    Forced,
}

type Renewal = Shared<BoxFuture<'static, Result<Arc<Token>, AuthError>>>;

struct State {
    current: Arc<Token>,
    /// The renewal in flight, which every caller joins.
    renewal: Option<Renewal>,
    /// Set once the session can no longer be renewed; every later call fails with it.
    ended: Option<SessionEnd>,
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
            Some(Ok(token)) if !Arc::ptr_eq(&state.current, token) => {
                state.current = token.clone();
                self.session
                    .changes
                    .send_replace(SessionState::Active(token.tokens.clone()));
            }
            Some(Err(AuthError::SessionEnded(end))) => {
                state.ended = Some(end.clone());
                self.session.changes.send_replace(SessionState::Ended(end.clone()));
            }
            Some(_) | None => {}
        }
    }
}

pub(crate) struct Session {
    config: Arc<Config>,
    store: Arc<dyn DynStore>,
    state: Mutex<State>,
    /// Versions other processes store, if the store pushes them.
    versions: Option<watch::Receiver<Version>>,
    /// The newest store version this session has looked at.
    acknowledged: AtomicU64,
    /// The session's state, for the application to watch.
    changes: watch::Sender<SessionState>,
    counters: Counters,
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
        let tokens = stored.tokens.ok_or(AuthError::SessionEnded(SessionEnd::LoggedOut))?;
        let current = Arc::new(Token::new(tokens, Some(stored.version), config.skew)?);
        let versions = store.versions();
        let (changes, _) = watch::channel(SessionState::Active(current.tokens.clone()));
        Ok(Arc::new(Self {
            config,
            store,
            state: Mutex::new(State {
                current,
                renewal: None,
                ended: None,
            }),
            versions,
            acknowledged: AtomicU64::new(stored.version),
            changes,
            counters: Counters::default(),
        }))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every critical section is a few assignments that cannot panic half-way.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn current(&self) -> Result<Arc<Token>, AuthError> {
        let state = self.state();
        match &state.ended {
            Some(end) => Err(AuthError::SessionEnded(end.clone())),
            None => Ok(state.current.clone()),
        }
    }

    /// Another process stored a session this one has not looked at.
    fn store_moved_on(&self) -> bool {
        self.versions
            .as_ref()
            .is_some_and(|versions| *versions.borrow() > self.acknowledged.load(Relaxed))
    }

    /// A token to send now. Within the skew of expiry it is renewed first; if that fails for a passing
    /// reason while the token is still valid, the token is used anyway.
    pub(crate) async fn token(self: &Arc<Self>) -> Result<Arc<Token>, AuthError> {
        let current = self.current()?;
        let now = self.config.clock().now();
        let reason = match (current.is_due(now), self.store_moved_on()) {
            (false, false) => return Ok(current),
            (true, _) => Reason::AheadOfExpiry,
            (false, true) => Reason::StoreChanged,
        };
        match self.renew(&current, reason).await {
            Err(AuthError::Transient(_) | AuthError::Store(_)) if !current.is_expired(now) => Ok(current),
            outcome => outcome,
        }
    }

    /// The API rejected the token a request carried (`sent`, its `Authorization` header): a token to
    /// send it again with. Renews only if that token is still the current one.
    pub(crate) async fn rejected(self: &Arc<Self>, sent: Option<&HeaderValue>) -> Result<Arc<Token>, AuthError> {
        let current = self.current()?;
        if sent != Some(&current.header) {
            return Ok(current);
        }
        self.renew(&current, Reason::Rejected).await
    }

    /// Renew now, whatever the token's expiry (joining a renewal already in flight).
    pub(crate) async fn force_renewal(self: &Arc<Self>) -> Result<Arc<Token>, AuthError> {
        let current = self.current()?;
        self.renew(&current, Reason::Forced).await
    }

    /// Renew the session once, however many callers ask: the first starts the renewal, the others
    /// join it, and a caller whose token was already replaced gets the replacement.
    async fn renew(self: &Arc<Self>, seen: &Arc<Token>, reason: Reason) -> Result<Arc<Token>, AuthError> {
        let renewal = {
            let mut state = self.state();
            if let Some(end) = &state.ended {
                return Err(AuthError::SessionEnded(end.clone()));
            }
            if !Arc::ptr_eq(&state.current, seen) {
                return Ok(state.current.clone());
            }
            let start = || {
                match reason {
                    Reason::AheadOfExpiry => Counters::bump(&self.counters.renewals_ahead_of_expiry),
                    Reason::Rejected => Counters::bump(&self.counters.renewals_after_rejection),
                    Reason::Forced => Counters::bump(&self.counters.renewals_forced),
                    Reason::StoreChanged => {}
                }
                // Its own task: a caller that gives up cannot cut a renewal in half (a refresh token
                // spent at the server and its successor never stored).
                let task = tokio::spawn(self.clone().run_renewal(seen.clone(), reason));
                task.map(|joined| {
                    joined.unwrap_or_else(|e| Err(AuthError::Config(format!("renewal task failed: {e}"))))
                })
                .boxed()
                .shared()
            };
            state.renewal.get_or_insert_with(start).clone()
        };
        renewal.await
    }

    async fn run_renewal(self: Arc<Self>, seen: Arc<Token>, reason: Reason) -> Result<Arc<Token>, AuthError> {
        let span = tracing::info_span!("renewal", ?reason);
        let mut finish = Finish {
            session: &self,
            outcome: None,
        };
        let outcome = tracing::Instrument::instrument(self.renewed(&seen, reason), span.clone()).await;
        let _entered = span.enter();
        match &outcome {
            Ok(token) if Arc::ptr_eq(token, &seen) => tracing::debug!("nothing newer in the store"),
            Ok(_) => tracing::debug!("access token renewed"),
            Err(error) => {
                let counter = match error {
                    AuthError::SessionEnded(_) => &self.counters.refresh_refused,
                    AuthError::Transient(_) => &self.counters.refresh_transient,
                    AuthError::InvalidTokenResponse(_) | AuthError::Config(_) => {
                        &self.counters.refresh_invalid_response
                    }
                    AuthError::Store(_) => &self.counters.refresh_store_failed,
                };
                Counters::bump(counter);
                tracing::warn!(?error, "renewing the access token failed");
            }
        }
        finish.outcome = Some(outcome.clone());
        outcome
    }

    /// The renewal, across processes: adopt a session another process stored; else take the store's
    /// renewal lock (waiting while another process holds it), look once more, and only then redeem
    /// the refresh token and store the result. One refresh per expiry, however many processes.
    async fn renewed(self: &Arc<Self>, seen: &Arc<Token>, reason: Reason) -> Result<Arc<Token>, AuthError> {
        let ttl = self.config.lock_ttl();
        let give_up = tokio::time::Instant::now() + ttl + LOCK_POLL;
        let lock = loop {
            if let Some(newer) = self.newer_in_store(seen).await {
                Counters::bump(&self.counters.adopted_from_store);
                return Ok(newer);
            }
            if reason == Reason::StoreChanged {
                return Ok(seen.clone());
            }
            match self.store.try_lock(ttl).await {
                Ok(LockAttempt::Acquired(lock)) => break Some(lock),
                Ok(LockAttempt::NotShared) => break None,
                Ok(LockAttempt::Busy) if tokio::time::Instant::now() < give_up => {
                    tracing::debug!("another process is renewing; waiting for its result");
                    self.wait_for_store().await;
                }
                Ok(LockAttempt::Busy) => {
                    return Err(AuthError::Store(crate::StoreError::new(
                        "shared",
                        "another process held the renewal lock for longer than its TTL",
                    )));
                }
                Err(error) => {
                    // The store is down: renew in this process alone and write back later.
                    tracing::warn!(%error, "no renewal lock: the token store failed");
                    break None;
                }
            }
        };
        let outcome = match &lock {
            // The previous holder may have stored its result just before this process took the lock.
            Some(_) => match self.newer_in_store(seen).await {
                Some(newer) => Ok(newer),
                None => self.refresh_and_store(seen).await,
            },
            None => self.refresh_and_store(seen).await,
        };
        if let Some(lock) = lock
            && let Err(error) = self.store.unlock(lock).await
        {
            tracing::warn!(%error, "could not release the renewal lock; it expires by itself");
        }
        outcome
    }

    /// A session in the store newer than `seen` and not yet due for renewal.
    async fn newer_in_store(&self, seen: &Token) -> Option<Arc<Token>> {
        let pushed = self.versions.as_ref().map_or(0, |v| *v.borrow());
        let stored = match self.store.load().await {
            Ok(stored) => stored?,
            Err(error) => {
                tracing::warn!(%error, "cannot read the token store");
                return None;
            }
        };
        self.acknowledged.fetch_max(pushed.max(stored.version), Relaxed);
        if Some(stored.version) <= seen.version() {
            return None;
        }
        let token = Token::new(stored.tokens?, Some(stored.version), self.config.skew).ok()?;
        (!token.is_due(self.config.clock().now())).then(|| Arc::new(token))
    }

    /// Wait until the store pushes a new version, or for one poll interval.
    async fn wait_for_store(&self) {
        match self.versions.clone() {
            Some(mut versions) => {
                let _ = tokio::time::timeout(LOCK_POLL, versions.changed()).await;
            }
            None => tokio::time::sleep(LOCK_POLL).await,
        }
    }

    /// Redeem the refresh token and store the result. A store that fails does not lose the rotated
    /// pair: it is used from memory and written back when the store answers again.
    async fn refresh_and_store(self: &Arc<Self>, seen: &Token) -> Result<Arc<Token>, AuthError> {
        let tokens = self.request_renewal(&seen.tokens).await?;
        Counters::bump(&self.counters.refreshes);
        let expect = seen.version().map_or(Expect::Empty, Expect::Version);
        let token = match self.save(expect, &tokens).await {
            Ok(Saved::Stored(version)) => Token::new(tokens, Some(version), self.config.skew)?,
            Ok(Saved::Newer(newer)) => Token::new(
                newer.tokens.ok_or(AuthError::SessionEnded(SessionEnd::LoggedOut))?,
                Some(newer.version),
                self.config.skew,
            )?,
            Err(error) => {
                tracing::warn!(%error, "renewed token kept in memory: the token store failed; writing it back later");
                let token = Arc::new(Token::new(tokens, None, self.config.skew)?);
                self.write_back(token.clone(), expect);
                return Ok(token);
            }
        };
        Ok(Arc::new(token))
    }

    /// Store `tokens` expecting `expect`; if the store was emptied meanwhile (a restarted Redis
    /// without persistence), store them into the empty store.
    async fn save(&self, expect: Expect, tokens: &TokenSet) -> Result<Saved, crate::StoreError> {
        let saved = match self.store.store(expect, tokens).await? {
            Swap::Conflict(None) if expect != Expect::Empty => self.store.store(Expect::Empty, tokens).await?,
            swap => swap,
        };
        Ok(match saved {
            Swap::Stored(version) => {
                self.acknowledged.fetch_max(version, Relaxed);
                Saved::Stored(version)
            }
            // A newer session was stored meanwhile (a new login): it wins.
            Swap::Conflict(Some(newer)) => Saved::Newer(newer),
            Swap::Conflict(None) => {
                return Err(crate::StoreError::new("shared", "the store refused the write"));
            }
        })
    }

    /// Keep trying to store `token` (with backoff) while it is the current token.
    fn write_back(self: &Arc<Self>, token: Arc<Token>, expect: Expect) {
        let session: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut delay = WRITE_BACK_FIRST_DELAY;
            loop {
                tokio::time::sleep(delay).await;
                let Some(session) = session.upgrade() else {
                    return;
                };
                if !Arc::ptr_eq(&session.state().current, &token) {
                    return;
                }
                match session.save(expect, &token.tokens).await {
                    Ok(Saved::Stored(version)) => {
                        token.version.store(version, Relaxed);
                        tracing::info!(version, "renewed token written back to the token store");
                        return;
                    }
                    Ok(Saved::Newer(_)) => return,
                    Err(error) => {
                        tracing::debug!(%error, "token store still failing; will write back later");
                        delay = (delay * 2).min(WRITE_BACK_MAX_DELAY);
                    }
                }
            }
        });
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
        self.state().ended = Some(end.clone());
        self.changes.send_replace(SessionState::Ended(end));
    }

    pub(crate) fn changes(&self) -> watch::Receiver<SessionState> {
        self.changes.subscribe()
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The tokens to revoke at logout: the refresh token if there is one, else the access token.
    pub(crate) fn tokens(&self) -> TokenSet {
        self.state().current.tokens.clone()
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }
}

/// Where a renewed session ended up.
enum Saved {
    Stored(Version),
    Newer(Versioned),
}
