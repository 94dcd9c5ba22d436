//! A logged-in session: the current token in memory, renewed once however many requests (and, with a
//! shared store, however many processes) need it.
//!
//! The store is the one source of truth, and the token this process holds is a cache of it. A
//! renewal ([`Session::renewed`]):
//! 1. takes the store's renewal lock, waiting while another process holds it (and adopting what that
//!    process stores);
//! 2. reads the store (in the same step as 1, where the store can) and starts from the session it
//!    holds: never from this process's copy, unless the store holds nothing (it lost its data) or an
//!    older renewal of this very session;
//! 3. adopts that session if it is good for why the renewal was started;
//! 4. else claims the session's refresh token in the store (a compare-and-set, so that no other
//!    process presents it, even one that took a lock this process lost) and, unless the claim has
//!    run out meanwhile (a paused process), presents it;
//! 5. stores the result (compare-and-set, releasing the lock in the same step where the store can),
//!    or keeps it in memory and writes it back, the claim still standing, until the store takes it.
//!
//! With Redis, a renewal is three round trips: the lock and the read, the claim, the result and the
//! unlock.
//!
//! A logout leaves a tombstone in the store, which every later renewal, here or in another process,
//! reads as the end of the session.
//!
//! A token is renewed ahead of its expiry, in two halves of the renewal window (the skew): in the
//! first, the call that finds the token due goes on with the token, which is still good, and the
//! renewal starts once a call has its answer (or is dropped), so that no call waits for a renewal in
//! the steady state and a server that revokes the old access token at renewal does not reject the
//! call that found it due; in the second, calls wait for it, as they do once the token has expired.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use reqwest::header::HeaderValue;
use secrecy::ExposeSecret;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::config::{Config, StoreOutage};
use crate::error::{AuthError, ConfigError, SessionEnd};
use crate::metrics::{Counters, SessionState};
use crate::protocol::{GrantRequest, TokenFailure};
use crate::store::{DynStore, Expect, LockToken, Locked, StoreError, Swap, Version, Versioned};
use crate::token::{Grant, TokenSet};

mod strays;

use strays::Strays;

/// How often a process waiting for another one's renewal looks at the store, when the store pushes
/// no change notifications (or one is missed).
const LOCK_POLL: Duration = Duration::from_millis(50);

/// The first wait before writing back a renewed session the store did not take; doubled up to
/// [`WRITE_BACK_MAX_DELAY`]. Short: the claim in the store keeps other processes waiting until it
/// lapses, and the write must land before that.
const WRITE_BACK_FIRST_DELAY: Duration = Duration::from_millis(50);
const WRITE_BACK_MAX_DELAY: Duration = Duration::from_secs(2);

/// After a renewal failed, how long calls in the first half of the renewal window go on without
/// starting another one (calls that must wait for a renewal start one whenever they come).
const BACKGROUND_RETRY: Duration = Duration::from_secs(1);

/// A token as it is sent: the tokens, the header made once, and when to renew.
pub(crate) struct Token {
    tokens: TokenSet,
    /// The store version it was last seen as; 0 while it is not in the store.
    version: AtomicU64,
    /// Set once another token took its place as the session's current one: a token being written
    /// back is written until then, also before it first becomes current (its renewal still ending).
    replaced: AtomicBool,
    header: HeaderValue,
    renew_at: Option<SystemTime>,
    /// From when a call waits for the renewal instead of starting it and going on: half way from
    /// `renew_at` to expiry.
    wait_at: Option<SystemTime>,
}

impl Token {
    fn new(tokens: TokenSet, version: Option<Version>, skew: Duration) -> Result<Self, AuthError> {
        let mut header = HeaderValue::try_from(format!("Bearer {}", tokens.access_token().expose_secret()))
            .map_err(|_| AuthError::Config(ConfigError::TokenNotAHeader))?;
        header.set_sensitive(true);
        let renewable = tokens.refresh_token().is_some() || tokens.grant() == Grant::ClientCredentials;
        // Renew `skew` before expiry, but never earlier than half-way through the token's life. A
        // token that cannot be renewed is used until it expires.
        let window = tokens.expires_at().map(|expires| {
            let lifetime = expires.duration_since(tokens.issued_at()).unwrap_or_default();
            let skew = if renewable {
                skew.min(lifetime / 2)
            } else {
                Duration::ZERO
            };
            (expires - skew, expires - skew / 2)
        });
        Ok(Self {
            tokens,
            version: AtomicU64::new(version.unwrap_or(0)),
            replaced: AtomicBool::new(false),
            header,
            renew_at: window.map(|(renew_at, _)| renew_at),
            wait_at: window.map(|(_, wait_at)| wait_at),
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

    /// Due, and close enough to expiry that a call waits for the renewal.
    fn is_pressing(&self, now: SystemTime) -> bool {
        self.wait_at.is_some_and(|at| now >= at)
    }

    fn is_expired(&self, now: SystemTime) -> bool {
        self.tokens.expires_at().is_some_and(|at| now >= at)
    }
}

/// Why a renewal was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// The token is within the skew of its expiry, or past it.
    Due,
    /// The API rejected it.
    Rejected,
    /// The store says another process stored something: look, adopt it, refresh nothing.
    StoreChanged,
    /// The application asked for a new token.
    Forced,
}

type Renewal = Shared<BoxFuture<'static, Result<Arc<Token>, AuthError>>>;

struct State {
    current: Arc<Token>,
    /// The renewal in flight, which every caller joins, and why it was started.
    renewal: Option<(Renewal, Reason)>,
    /// Set once the session is over; every later call fails with it.
    ended: Option<SessionEnd>,
    /// Until when no renewal is started in the background, after one failed (by the session's clock).
    quiet_until: Option<SystemTime>,
}

/// Publishes a renewal's outcome and clears the renewal slot when the renewal task ends, also if it
/// panicked or was cancelled (then the current token stays, and the next caller starts afresh).
struct Finish<'a> {
    session: &'a Session,
    reason: Reason,
    outcome: Option<Result<Arc<Token>, AuthError>>,
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        let mut state = self.session.state();
        state.renewal = None;
        // Whatever it ends in, `flush` may be waiting for it (a write-back it starts is counted
        // before this).
        self.session.saved.notify_waiters();
        if state.ended.is_some() {
            // Logged out meanwhile: nothing a renewal brings back revives the session. But the token
            // it renewed is spent: its own write-back, if one is pending, gives way to the renewal's.
            if let Some(Ok(token)) = &self.outcome
                && !Arc::ptr_eq(&state.current, token)
            {
                state.current.replaced.store(true, Relaxed);
            }
            return;
        }
        if self.reason == Reason::Due {
            state.quiet_until = match &self.outcome {
                Some(Ok(_)) => None,
                _ => Some(self.session.config.clock().now() + BACKGROUND_RETRY),
            };
        }
        match &self.outcome {
            Some(Ok(token)) if !Arc::ptr_eq(&state.current, token) => self.session.replace(&mut state, token),
            Some(Err(AuthError::SessionEnded(end))) => {
                state.ended = Some(end.clone());
                self.session.publish(SessionState::Ended(end.clone()));
            }
            Some(_) | None => {}
        }
    }
}

/// The renewal lock as held: its owner token (none for a store not shared between processes).
struct Lease {
    lock: Option<LockToken>,
}

/// What the store holds, measured against the session this process holds.
enum Newest {
    /// Another session, to adopt or to renew: another process's renewal, or a new login.
    Stored(Arc<Token>),
    /// This process's session is the newest: the store holds it, an older renewal of it, or nothing
    /// (it lost its data). `Expect` is what a write must find.
    Ours(Expect),
    /// The tombstone of a logout.
    LoggedOut,
    /// Another process is presenting the stored session's refresh token right now.
    Claimed,
}

/// Where a renewed session ended up.
enum Saved {
    Stored(Version),
    /// The store holds a session that is not an older renewal of this one: a new login.
    Superseded(Arc<Token>),
    /// The store holds a session this process refuses (another client's): a write would clobber
    /// it, and waiting will not change it.
    Refused(StoreError),
    LoggedOut,
}

pub(crate) struct Session {
    /// This session's id in renewal claims: random, per process and session.
    id: String,
    config: Arc<Config>,
    store: Arc<dyn DynStore>,
    state: Mutex<State>,
    /// Versions other processes store, if the store pushes them.
    versions: Option<watch::Receiver<Version>>,
    /// The newest store version whose session this process holds, or holds a later renewal of. A
    /// version read but not taken up (another process's renewal this one failed to renew) is not
    /// acknowledged: the store has moved on from this process's copy, and were the store to lose its
    /// data, that copy must not be put back as the newest.
    acknowledged: AtomicU64,
    /// The session's state, for the application to watch: made when first asked for (most
    /// sessions of a service are never watched, and each costs a copy of its tokens).
    changes: std::sync::OnceLock<watch::Sender<SessionState>>,
    /// Set once this process's logout wrote its tombstone: no write-back goes on after that (were the
    /// store to lose the tombstone, a write-back would bring the session back).
    tombstoned: AtomicBool,
    /// A call found its token due, and the renewal it calls for starts once a call has its answer
    /// ([`Session::call_answered`]).
    renewal_wanted: AtomicBool,
    /// Renewal locks the store may hold for this session without it knowing (an answer lost), or
    /// that it could not release.
    strays: Strays,
    /// How many write-backs of renewed sessions are pending, and the signal that one finished.
    unsaved: std::sync::atomic::AtomicUsize,
    saved: tokio::sync::Notify,
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
        version: Version,
        tokens: TokenSet,
    ) -> Result<Arc<Self>, AuthError> {
        let current = Arc::new(Token::new(tokens.unclaimed(), Some(version), config.skew)?);
        let versions = store.versions();
        let session = Arc::new(Self {
            id: uuid::Uuid::new_v4().simple().to_string(),
            config,
            store,
            state: Mutex::new(State {
                current,
                renewal: None,
                ended: None,
                quiet_until: None,
            }),
            versions,
            acknowledged: AtomicU64::new(version),
            changes: std::sync::OnceLock::new(),
            tombstoned: AtomicBool::new(false),
            renewal_wanted: AtomicBool::new(false),
            strays: Strays::default(),
            unsaved: std::sync::atomic::AtomicUsize::new(0),
            saved: tokio::sync::Notify::new(),
            counters: Counters::default(),
        });
        session.follow_store();
        Ok(session)
    }

    /// Adopt what other processes store as soon as the store says so, not at the next call: a
    /// process that is idle when another renews keeps the newest session all the same, which is
    /// what lets it re-seed a store that lost its data with the newest session, not an older one.
    fn follow_store(self: &Arc<Self>) {
        let Some(mut versions) = self.versions.clone() else {
            return;
        };
        let session = Arc::downgrade(self);
        tokio::spawn(async move {
            while versions.changed().await.is_ok() {
                let Some(session) = session.upgrade() else {
                    return;
                };
                if let Ok(current) = session.current()
                    && session.store_moved_on()
                {
                    let _ = session.renew(&current, Reason::StoreChanged).await;
                }
            }
        });
    }

    /// Make `token` the current one (the state's lock held), and tell whoever watches.
    fn replace(&self, state: &mut State, token: &Arc<Token>) {
        state.current.replaced.store(true, Relaxed);
        state.current = token.clone();
        if let Some(version) = token.version() {
            self.acknowledged.fetch_max(version, Relaxed);
        }
        self.publish(SessionState::Active(token.tokens.clone()));
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

    /// A token to send now. In the first half of the renewal window the token is used, and renewed in
    /// the background once a call has its answer ([`Session::call_answered`]); in the second half
    /// (and once expired) it is renewed first, and if that fails for a passing reason while the token
    /// is still valid, the token is used anyway.
    pub(crate) async fn token(self: &Arc<Self>) -> Result<Arc<Token>, AuthError> {
        let current = match self.current() {
            Err(AuthError::SessionEnded(SessionEnd::Refused(_))) => self.revive().await?,
            other => other?,
        };
        let now = self.config.clock().now();
        let reason = match (current.is_due(now), self.store_moved_on()) {
            (false, false) => return Ok(current),
            // Unless another process stored something since (most likely the renewal, to adopt
            // before sending rather than after).
            (true, false) if self.config.background_renewal && !current.is_pressing(now) => {
                if !self.renewal_wanted.load(Relaxed) {
                    self.renewal_wanted.store(true, Relaxed);
                }
                return Ok(current);
            }
            (true, _) => Reason::Due,
            (false, true) => Reason::StoreChanged,
        };
        match self.renew(&current, reason).await {
            Err(error) if error.is_passing() && !current.is_expired(now) => Ok(current),
            // A look at the store for a token that is not due: only the session's end stops the call
            // (a session there that this client refuses, say, leaves the token as good as it was).
            Err(error) if reason == Reason::StoreChanged && !matches!(error, AuthError::SessionEnded(_)) => {
                tracing::warn!(?error, "looking at the token store failed; the token is used as it is");
                Ok(current)
            }
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
    /// join it, and a caller whose token was already replaced gets the replacement. A caller that
    /// joined a renewal started only to look at the store, and got its own token back or a passing
    /// error, starts one for its own reason (once).
    async fn renew(self: &Arc<Self>, seen: &Arc<Token>, reason: Reason) -> Result<Arc<Token>, AuthError> {
        let mut joined_a_look = false;
        loop {
            let (renewal, started_for) = {
                let mut state = self.state();
                if let Some(end) = &state.ended {
                    return Err(AuthError::SessionEnded(end.clone()));
                }
                if !Arc::ptr_eq(&state.current, seen) {
                    return Ok(state.current.clone());
                }
                state
                    .renewal
                    .get_or_insert_with(|| (self.start_renewal(seen, reason), reason))
                    .clone()
            };
            let outcome = renewal.clone().await;
            if let Err(AuthError::Aborted) = &outcome {
                // The renewal's task was dropped before it could clear its slot (a runtime shut down
                // before running it): clear it, or every later caller would join it.
                let mut state = self.state();
                if state.renewal.as_ref().is_some_and(|(slot, _)| slot.ptr_eq(&renewal)) {
                    state.renewal = None;
                }
            }
            let looked_only = started_for == Reason::StoreChanged && reason != Reason::StoreChanged;
            match &outcome {
                Ok(token) if looked_only && !joined_a_look && Arc::ptr_eq(token, seen) => joined_a_look = true,
                // A look that failed (begun, say, while the store was slow) is not this caller's
                // renewal failing: it makes one attempt of its own.
                Err(error) if looked_only && !joined_a_look && !matches!(error, AuthError::SessionEnded(_)) => {
                    joined_a_look = true;
                }
                _ => return outcome,
            }
        }
    }

    /// A call of this session has its answer, failed, or was dropped: start the renewal a call found
    /// due, if one did. Not before: a server that revokes the previous access token when it renews
    /// would reject the call that found its token due, outrun by its own renewal (against a fast
    /// store, most times), and the call would have to be sent again. With calls one at a time, the
    /// answer is that call's own; with several in flight, the first to come. One atomic load on every
    /// call that finds nothing wanted.
    pub(crate) fn call_answered(self: &Arc<Self>) {
        if !self.renewal_wanted.load(Relaxed) {
            return;
        }
        let now = self.config.clock().now();
        let mut state = self.state();
        // Cleared under the state's lock, as the renewal's slot is filled: to the registry, the
        // session is renewing all along (`is_renewing`).
        self.renewal_wanted.store(false, Relaxed);
        // Outside a Tokio runtime (a call dropped there) nothing can be spawned: the next call that
        // finds the token due asks again.
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let current = state.current.clone();
        if current.is_due(now) {
            self.start_in_background(&mut state, &current, now);
        }
    }

    /// Start renewing `seen` without waiting for it, unless a renewal is under way already or one
    /// failed a moment ago (the state's lock held).
    fn start_in_background(self: &Arc<Self>, state: &mut State, seen: &Arc<Token>, now: SystemTime) {
        let quiet = state.quiet_until.is_some_and(|until| now < until);
        if state.ended.is_none() && state.renewal.is_none() && !quiet && Arc::ptr_eq(&state.current, seen) {
            state.renewal = Some((self.start_renewal(seen, Reason::Due), Reason::Due));
        }
    }

    fn start_renewal(self: &Arc<Self>, seen: &Arc<Token>, reason: Reason) -> Renewal {
        match reason {
            Reason::Due if seen.is_expired(self.config.clock().now()) => {
                Counters::bump(&self.counters.renewals_after_expiry)
            }
            Reason::Due => Counters::bump(&self.counters.renewals_ahead_of_expiry),
            Reason::Rejected => Counters::bump(&self.counters.renewals_after_rejection),
            Reason::Forced => Counters::bump(&self.counters.renewals_forced),
            Reason::StoreChanged => {}
        }
        // Its own task: a caller that gives up cannot cut a renewal in half (a refresh token spent
        // at the server and its successor never stored).
        // Its span is made here, so that it is a child of the call (or other span) that started it.
        let span = tracing::info_span!("renewal", ?reason);
        let task = tokio::spawn(self.clone().run_renewal(seen.clone(), reason, span));
        task.map(|joined| joined.unwrap_or(Err(AuthError::Aborted)))
            .boxed()
            .shared()
    }

    async fn run_renewal(
        self: Arc<Self>,
        seen: Arc<Token>,
        reason: Reason,
        span: tracing::Span,
    ) -> Result<Arc<Token>, AuthError> {
        let mut finish = Finish {
            session: &self,
            reason,
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
                    AuthError::InvalidTokenResponse(_) | AuthError::RenewalRefused(_) | AuthError::Config(_) => {
                        &self.counters.refresh_invalid_response
                    }
                    AuthError::Aborted => &self.counters.refresh_transient,
                    AuthError::Store(_) => &self.counters.refresh_store_failed,
                };
                Counters::bump(counter);
                tracing::warn!(?error, "renewing the access token failed");
            }
        }
        finish.outcome = Some(outcome.clone());
        outcome
    }

    /// The renewal, across processes (the steps in the module's documentation).
    async fn renewed(self: &Arc<Self>, seen: &Arc<Token>, reason: Reason) -> Result<Arc<Token>, AuthError> {
        if reason == Reason::StoreChanged {
            return self.adopt_from_store(seen).await;
        }
        let give_up = Instant::now() + self.config.lock_ttl() + LOCK_POLL;
        // The versions stored from now on, each waking the wait below once.
        let mut versions = self.versions.clone();
        if let Some(versions) = &mut versions {
            versions.borrow_and_update();
        }
        loop {
            if let Some((lease, stored)) = self.lock().await?
                && let Some(outcome) = self.renew_holding(seen, lease, stored).await
            {
                return outcome;
            }
            // Another process is renewing: wait for its result, and adopt it.
            if Instant::now() >= give_up {
                let error = StoreError::new(
                    self.store.name(),
                    "another process held the renewal past its lock's TTL",
                );
                return Err(error.into());
            }
            wait_for_store(versions.as_mut(), LOCK_POLL).await;
            match self.newest(seen, self.load().await?)? {
                Newest::Stored(token) if !token.is_due(self.config.clock().now()) => {
                    Counters::bump(&self.counters.adopted_from_store);
                    return Ok(token);
                }
                Newest::LoggedOut => return Err(logged_out()),
                _ => {}
            }
        }
    }

    /// Steps 2 to 5, holding the lock, from `stored` (read under it); `None` if another process
    /// turns out to be renewing.
    async fn renew_holding(
        self: &Arc<Self>,
        seen: &Arc<Token>,
        mut lease: Lease,
        stored: Result<Option<Versioned>, StoreError>,
    ) -> Option<Result<Arc<Token>, AuthError>> {
        let alone = self.config.store_outage == StoreOutage::RefreshAlone;
        // 2. The newest session.
        let newest = match stored {
            Ok(stored) => self.newest(seen, stored),
            Err(error) if alone => {
                tracing::warn!(%error, "the token store failed; renewing alone, as configured");
                Ok(Newest::Ours(seen.version().map_or(Expect::Empty, Expect::Version)))
            }
            Err(error) => Err(error.into()),
        };
        let (base, expect) = match newest {
            Err(error) => return Some(self.release(lease, Err(error)).await),
            Ok(Newest::LoggedOut) => return Some(self.release(lease, Err(logged_out())).await),
            Ok(Newest::Claimed) => {
                let _ = self.release(lease, Ok(seen.clone())).await;
                return None;
            }
            // 3. Another process renewed it, or a new login replaced it: adopt what is still good.
            Ok(Newest::Stored(stored)) if !stored.is_due(self.config.clock().now()) => {
                Counters::bump(&self.counters.adopted_from_store);
                return Some(self.release(lease, Ok(stored)).await);
            }
            Ok(Newest::Stored(stored)) => {
                let expect = stored.version().map_or(Expect::Empty, Expect::Version);
                (stored, expect)
            }
            // The store lost this session (a Redis restarted without persistence). Unless this
            // process knows it missed a write, put its copy back under a short claim, which makes the
            // others wait and which a process holding a newer renewal writes over; renew after that.
            Ok(Newest::Ours(Expect::Empty)) if seen.version().is_some() && self.store_moved_on() => {
                // This process was told of a write it never read: its copy may be older than the
                // session the store lost, and its refresh token spent.
                tracing::warn!("the token store lost the session, and this process's copy may be outdated");
                return Some(
                    self.release(lease, Err(AuthError::SessionEnded(SessionEnd::StoreLost)))
                        .await,
                );
            }
            Ok(Newest::Ours(Expect::Empty)) if seen.version().is_some() => {
                tracing::warn!("the token store lost the session; putting it back before renewing");
                let until = SystemTime::now() + self.config.store_timeout;
                if let Err(error) = self.write(Expect::Empty, &seen.tokens.claimed(&self.id, until)).await {
                    return Some(self.release(lease, Err(error.into())).await);
                }
                let _ = self.release(lease, Ok(seen.clone())).await;
                tokio::time::sleep(self.config.store_timeout).await;
                return None;
            }
            Ok(Newest::Ours(expect)) => (seen.clone(), expect),
        };
        let outcome = self.claim_and_refresh(&base, expect, &mut lease).await;
        if let Some(Err(_)) = &outcome
            && !Arc::ptr_eq(&base, seen)
        {
            // Renewing another process's renewal failed: hold that one from now on, not the copy
            // whose refresh token it spent.
            self.take_up(seen, &base);
        }
        match outcome {
            Some(outcome) => Some(self.release(lease, outcome).await),
            None => {
                let _ = self.release(lease, Ok(seen.clone())).await;
                None
            }
        }
    }

    /// Steps 4 and 5 for `base`, found in the store as `expect`: `None` if the store changed since.
    async fn claim_and_refresh(
        self: &Arc<Self>,
        base: &Arc<Token>,
        expect: Expect,
        lease: &mut Lease,
    ) -> Option<Result<Arc<Token>, AuthError>> {
        let alone = self.config.store_outage == StoreOutage::RefreshAlone;
        // 4. Claim the refresh token in the store (compare-and-set), so that no other process
        //    presents it, even one that took a lock this process lost.
        let claimed_at = Instant::now();
        let ttl = self.config.lock_ttl();
        let claimed = base.tokens.claimed(&self.id, SystemTime::now() + ttl);
        let claim = match self.write(expect, &claimed).await {
            Ok(Swap::Stored(version)) => Some(Expect::Version(version)),
            // The store changed since it was read: read it again.
            Ok(Swap::Conflict(_)) => return None,
            Err(error) if alone => {
                tracing::warn!(%error, "the token store failed; renewing alone, as configured");
                None
            }
            // The claim may have been stored, its answer lost: then it is this process's all the
            // same, and the others would wait for it to lapse. Go on under it (the check below
            // withdraws it if the wait for the answer used up its margin).
            Err(error) => match self.landed(&claimed).await {
                Some(version) => Some(Expect::Version(version)),
                None => return Some(Err(error.into())),
            },
        };
        // A process paused past the claim's margin may no longer be the only one renewing: it must
        // not send. Every attempt must end before the claim lapses, leaving time to store the result.
        let deadline = claim.map(|_| claimed_at + ttl.saturating_sub(self.config.store_timeout));
        if let Some(claim) = claim
            && claimed_at.elapsed() > self.config.store_timeout
        {
            self.unclaim(&base.tokens, claim).await;
            let error = StoreError::new(
                self.store.name(),
                "the renewal's claim ran out before the refresh was sent",
            );
            return Some(Err(error.into()));
        }
        // 5. Refresh, and store the result.
        Some(
            self.refresh_and_store(&claimed.unclaimed(), claim.unwrap_or(expect), deadline, lease)
                .await,
        )
    }

    /// The version under which the store holds `claimed`, this process's claim, if a write of it
    /// whose answer was lost was stored after all.
    async fn landed(&self, claimed: &TokenSet) -> Option<Version> {
        match self.load().await {
            Ok(Some(Versioned {
                version,
                tokens: Some(stored),
            })) if stored.is_claim(claimed) => {
                tracing::debug!("the renewal's claim was stored, its answer lost");
                self.acknowledge_if_held(version, &stored);
                Some(version)
            }
            _ => None,
        }
    }

    /// Hold `newer`, a later session read from the store, in place of `seen`, without renewing it.
    fn take_up(&self, seen: &Arc<Token>, newer: &Arc<Token>) {
        let mut state = self.state();
        if state.ended.is_none() && Arc::ptr_eq(&state.current, seen) {
            self.replace(&mut state, newer);
        }
    }

    /// Take the renewal lock, and read the store under it (one step, where the store can): `None`
    /// if another process holds it. A store that cannot be reached is a store error, unless
    /// [`StoreOutage::RefreshAlone`].
    async fn lock(self: &Arc<Self>) -> Result<Option<(Lease, Result<Option<Versioned>, StoreError>)>, AuthError> {
        let (owner, orphaned) = self.strays.owner();
        if orphaned {
            self.release_strays();
        }
        match self
            .within_steps(2, self.store.try_lock_and_load(&owner, self.config.lock_ttl()))
            .await
        {
            Ok(Locked::Taken(stored)) => Ok(Some((Lease { lock: Some(owner) }, stored))),
            Ok(Locked::NotShared(stored)) => Ok(Some((Lease { lock: None }, stored))),
            Ok(Locked::Busy) => Ok(None),
            Err(error) => {
                // The store may have taken the lock all the same, its answer lost.
                self.release_later(owner, false);
                if self.config.store_outage != StoreOutage::RefreshAlone {
                    return Err(error.into());
                }
                tracing::warn!(%error, "no renewal lock: the token store failed; renewing alone, as configured");
                // Read all the same: the store may be back, with another process's renewal.
                Ok(Some((Lease { lock: None }, self.load().await)))
            }
        }
    }

    /// Release the lock, and pass `outcome` on.
    async fn release(
        self: &Arc<Self>,
        lease: Lease,
        outcome: Result<Arc<Token>, AuthError>,
    ) -> Result<Arc<Token>, AuthError> {
        if let Some(lock) = lease.lock
            && let Err(error) = self.within(self.store.unlock(&lock)).await
        {
            tracing::warn!(%error, "could not release the renewal lock; trying again while the store fails");
            self.release_later(lock, true);
        }
        outcome
    }

    /// Release `lock`, which the store may hold, in the background (with backoff) until the store
    /// answers or the lock has expired by itself, unless the session's next renewal takes it up
    /// first ([`Strays`]): only if no unlock was sent for it (`unlock_sent`), which might still be
    /// carried out after the renewal took it again.
    fn release_later(self: &Arc<Self>, lock: LockToken, unlock_sent: bool) {
        if self
            .strays
            .keep(lock, Instant::now() + self.config.lock_ttl(), unlock_sent)
        {
            self.release_strays();
        }
    }

    /// The task that releases the strays, one per session. Should the runtime drop it before it is
    /// done (a shutdown), the next stray, or the next attempt to lock, starts another one.
    fn release_strays(self: &Arc<Self>) {
        struct Releasing(Arc<Session>, bool);
        impl Releasing {
            fn done(&mut self) {
                self.1 = true;
            }
        }
        impl Drop for Releasing {
            fn drop(&mut self) {
                if !self.1 {
                    self.0.strays.ended();
                }
            }
        }
        let mut releasing = Releasing(self.clone(), false);
        tokio::spawn(async move {
            let mut waits = Backoff::new(WRITE_BACK_FIRST_DELAY, WRITE_BACK_MAX_DELAY);
            loop {
                tokio::time::sleep(waits.next_delay()).await;
                let session = &releasing.0;
                let Some(strays) = session.strays.take() else {
                    releasing.done();
                    return;
                };
                for (lock, expires) in strays {
                    match session.within(session.store.unlock(&lock)).await {
                        Ok(()) => tracing::debug!("renewal lock released after the store came back"),
                        Err(_) => session.strays.put_back(lock, expires),
                    }
                }
            }
        });
    }

    /// A compare-and-set write, bounded by the store timeout.
    async fn write(&self, expect: Expect, tokens: &TokenSet) -> Result<Swap, StoreError> {
        self.write_releasing(expect, tokens, None).await
    }

    /// [`Session::write`], releasing the renewal lock `lease` holds (if any) in the same step if the
    /// write is stored.
    async fn write_releasing(
        &self,
        expect: Expect,
        tokens: &TokenSet,
        lease: Option<&mut Lease>,
    ) -> Result<Swap, StoreError> {
        let swap = match lease.as_ref().and_then(|lease| lease.lock.as_ref()) {
            Some(lock) => {
                self.within_steps(2, self.store.store_and_unlock(expect, tokens, lock))
                    .await?
            }
            None => self.within(self.store.store(expect, tokens)).await?,
        };
        if let Swap::Stored(version) = swap {
            if let Some(lease) = lease {
                lease.lock = None;
            }
            self.acknowledge_if_held(version, tokens);
        }
        Ok(swap)
    }

    /// Acknowledge `version`, which holds `tokens`, if those are the session this process holds or
    /// a later renewal of it: one this process is renewing, and holds once the renewal ends, whether
    /// it succeeds (its result) or fails ([`Session::take_up`]).
    fn acknowledge_if_held(&self, version: Version, tokens: &TokenSet) {
        let state = self.state();
        if tokens.is_same(&state.current.tokens) || tokens.succeeds(&state.current.tokens) {
            self.acknowledged.fetch_max(version, Relaxed);
        }
    }

    /// Withdraw this process's claim on `base` after a refresh that was not sent or failed before
    /// the server could act on it, so that the next renewal need not wait for the claim to lapse.
    async fn unclaim(&self, base: &TokenSet, claimed: Expect) {
        if let Err(error) = self.write(claimed, &base.unclaimed()).await {
            tracing::debug!(%error, "could not withdraw the renewal claim; it lapses by itself");
        }
    }

    /// End the session in the store after its refresh token was refused or spent for an answer that
    /// cannot be used: no process is to present it again. Only if the store still holds this
    /// process's claim (a new login meanwhile stays).
    async fn retire(&self, claimed: Expect) {
        let still_ours = match self.load().await {
            Ok(Some(stored)) => Expect::Version(stored.version) == claimed,
            _ => false,
        };
        if still_ours && let Err(error) = self.within(self.store.clear()).await {
            tracing::debug!(%error, "could not retire the spent session; its claim lapses by itself");
        }
    }

    /// Only look at the store: adopt a session another process stored, end at a tombstone, and put
    /// this session back if the store lost it or holds an older renewal of it.
    async fn adopt_from_store(&self, seen: &Arc<Token>) -> Result<Arc<Token>, AuthError> {
        match self.newest(seen, self.load().await?)? {
            Newest::Stored(token) => {
                Counters::bump(&self.counters.adopted_from_store);
                Ok(token)
            }
            Newest::LoggedOut => Err(logged_out()),
            // The store lost the session, and this process missed a write: its copy may be an older
            // one, not to be put back (its next renewal ends it, unless another process puts back
            // the newest first).
            Newest::Ours(Expect::Empty) if self.store_moved_on() => Ok(seen.clone()),
            Newest::Ours(expect) if expect != seen.version().map_or(Expect::Empty, Expect::Version) => {
                match self.save(expect, &seen.tokens, None).await? {
                    Saved::Stored(version) => {
                        seen.version.store(version, Relaxed);
                        Ok(seen.clone())
                    }
                    Saved::Superseded(newer) => Ok(newer),
                    Saved::Refused(error) => Err(error.into()),
                    Saved::LoggedOut => Err(logged_out()),
                }
            }
            Newest::Ours(_) | Newest::Claimed => Ok(seen.clone()),
        }
    }

    /// What the store holds, measured against `seen`.
    fn newest(&self, seen: &Arc<Token>, stored: Option<Versioned>) -> Result<Newest, AuthError> {
        let Some(stored) = stored else {
            return Ok(Newest::Ours(Expect::Empty));
        };
        let Some(tokens) = stored.tokens else {
            self.acknowledged.fetch_max(stored.version, Relaxed);
            return Ok(Newest::LoggedOut);
        };
        // An older renewal of this session, claimed or not, is to be written over: its refresh
        // token is spent.
        if seen.tokens.succeeds(&tokens) {
            self.acknowledged.fetch_max(stored.version, Relaxed);
            return Ok(Newest::Ours(Expect::Version(stored.version)));
        }
        // From here on, a version is acknowledged only if it holds this very session: another
        // process's renewal is acknowledged once this process takes it up.
        let same = tokens.is_same(&seen.tokens);
        if same {
            self.acknowledged.fetch_max(stored.version, Relaxed);
        }
        if tokens.claimed_by_other(&self.id, SystemTime::now()) {
            return Ok(Newest::Claimed);
        }
        if same {
            seen.version.store(stored.version, Relaxed);
            return Ok(Newest::Ours(Expect::Version(stored.version)));
        }
        let stored_token = self.stored_token(tokens, stored.version);
        if stored_token.is_err() {
            // Looked at, and refused (another client's session): nothing to take up, and no reason
            // to look again at every call. Were the store to lose it, this process's copy is still
            // the newest of its own session.
            self.acknowledged.fetch_max(stored.version, Relaxed);
        }
        stored_token.map(Newest::Stored)
    }

    /// Another session from the store, as this process would send it; refused if it belongs to
    /// another client or token endpoint.
    fn stored_token(&self, tokens: TokenSet, version: Version) -> Result<Arc<Token>, AuthError> {
        self.config.check_origin(&tokens, self.store.name())?;
        Ok(Arc::new(Token::new(
            tokens.unclaimed(),
            Some(version),
            self.config.skew,
        )?))
    }

    /// Present `base`'s refresh token once (no attempt after `deadline`), and store the result. A
    /// store that fails does not lose the rotated pair: it is used from memory and written back when
    /// the store answers again.
    async fn refresh_and_store(
        self: &Arc<Self>,
        base: &TokenSet,
        claimed: Expect,
        deadline: Option<Instant>,
        lease: &mut Lease,
    ) -> Result<Arc<Token>, AuthError> {
        let tokens = match self.request_renewal(base, deadline).await {
            Ok(tokens) => tokens.succeeding(base),
            Err(error) => {
                // Refused, or answered with a token that cannot be used: the refresh token is spent
                // either way, and nobody may present it again.
                let spent = matches!(
                    &error,
                    AuthError::SessionEnded(SessionEnd::Refused(_) | SessionEnd::UnusableRenewal(_))
                );
                if !spent {
                    self.unclaim(base, claimed).await;
                    return Err(error);
                }
                self.retire(claimed).await;
                // But another process may have stored a newer session (a new login).
                let refused = Arc::new(Token::new(base.clone(), None, self.config.skew)?);
                return match self.load().await.map(|stored| self.newest(&refused, stored)) {
                    Ok(Ok(Newest::Stored(newer))) => Ok(newer),
                    _ => Err(error),
                };
            }
        };
        Counters::bump(&self.counters.refreshes);
        match self.save(claimed, &tokens, Some(lease)).await {
            Ok(Saved::Stored(version)) => Token::new(tokens, Some(version), self.config.skew).map(Arc::new),
            Ok(Saved::Superseded(newer)) => Ok(newer),
            Ok(Saved::LoggedOut) => {
                // A logout won while the refresh was under way: the new tokens must not outlive it.
                self.revoke_quietly(&tokens).await;
                Err(logged_out())
            }
            Ok(Saved::Refused(error)) => {
                // Kept, in this process only: the refresh token they replace is spent.
                tracing::error!(%error, "renewed token kept in memory only: the store holds a session this client refuses");
                Token::new(tokens, None, self.config.skew).map(Arc::new)
            }
            // Whatever the store's error, the renewed tokens are kept: the refresh token they
            // replace is spent, and without them the next renewal would present it again.
            Err(error) => {
                if error.is_unavailable() {
                    tracing::warn!(%error, "renewed token kept in memory: the token store failed; writing it back");
                } else {
                    tracing::error!(%error, "renewed token kept in memory: the token store refused it; writing it back");
                }
                let token = Arc::new(Token::new(tokens, None, self.config.skew)?);
                self.write_back(token.clone(), claimed);
                // The claim in the store, not the lock, keeps other processes off the spent token.
                Ok(token)
            }
        }
    }

    /// Revoke `tokens` at the revocation endpoint, if one is configured; a failure is only logged.
    async fn revoke_quietly(&self, tokens: &TokenSet) {
        let Some(url) = &self.config.revocation else {
            return;
        };
        if self.config.tokens.revoke_session(url, tokens).await.is_err() {
            tracing::warn!("could not revoke the tokens a renewal obtained after the logout");
        }
    }

    /// Store `tokens` expecting `expect`, and settle a conflict: the store lost its data (write into
    /// the empty store), holds an older renewal of this session (write over it), holds exactly these
    /// tokens (an earlier write that timed out landed), or holds a tombstone or a new login (which
    /// win). A renewal lock `lease` holds is released with the write that stores them.
    async fn save(
        &self,
        mut expect: Expect,
        tokens: &TokenSet,
        mut lease: Option<&mut Lease>,
    ) -> Result<Saved, StoreError> {
        for _ in 0..4 {
            let held = match self.write_releasing(expect, tokens, lease.as_deref_mut()).await? {
                Swap::Stored(version) => return Ok(Saved::Stored(version)),
                Swap::Conflict(None) => {
                    expect = Expect::Empty;
                    continue;
                }
                Swap::Conflict(Some(held)) => held,
            };
            match held.tokens {
                None => return Ok(Saved::LoggedOut),
                Some(stored) if stored.is_same(tokens) => {
                    self.acknowledge_if_held(held.version, tokens);
                    return Ok(Saved::Stored(held.version));
                }
                Some(stored) if tokens.succeeds(&stored) => expect = Expect::Version(held.version),
                Some(stored) => {
                    return match self.stored_token(stored, held.version) {
                        Ok(token) => Ok(Saved::Superseded(token)),
                        Err(AuthError::Store(error)) => Ok(Saved::Refused(error)),
                        Err(_) => Ok(Saved::Refused(StoreError::invalid(
                            self.store.name(),
                            "the stored session cannot be used",
                        ))),
                    };
                }
            }
        }
        Err(StoreError::new(
            self.store.name(),
            "the stored session kept changing under the write",
        ))
    }

    /// Keep trying to store `token` (with backoff) until another token replaces it as the current one
    /// (it becomes current only once its renewal has ended, after this starts). The task holds the
    /// session, so it goes on after the application drops its last handle (for as long as the
    /// runtime runs); [`Session::flush`] waits for it.
    ///
    /// A change the store pushes ends a wait at once: the store is back, and another process may be
    /// putting an older copy of the session back (after the store lost its data), which it holds
    /// under a short claim for a process with a newer renewal, such as this one, to write over.
    fn write_back(self: &Arc<Self>, token: Arc<Token>, expect: Expect) {
        self.unsaved.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let session = self.clone();
        tokio::spawn(async move {
            let mut waits = Backoff::new(WRITE_BACK_FIRST_DELAY, WRITE_BACK_MAX_DELAY);
            let mut versions = session.versions.clone();
            if let Some(versions) = &mut versions {
                versions.borrow_and_update();
            }
            while !session.write_back_once(&token, expect).await {
                wait_for_store(versions.as_mut(), waits.next_delay()).await;
            }
            if session.unsaved.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
                session.saved.notify_waiters();
            }
        });
    }

    /// One attempt at the write-back: true once there is nothing left to write.
    async fn write_back_once(&self, token: &Arc<Token>, expect: Expect) -> bool {
        if token.replaced.load(Relaxed) || self.tombstoned.load(Relaxed) {
            // Replaced (by a session adopted from the store, or by its own renewal), or logged out
            // here with the tombstone stored.
            return true;
        }
        // A session ended here otherwise (a logout whose tombstone the store did not take, say) still
        // writes its renewal back: the store holds a claim on the refresh token it spent, and the
        // other processes go on from the renewal, not from that token once the claim lapses. A
        // tombstone in the store stops it (`Saved::LoggedOut`), and so does a store that refuses the
        // write for good, once the session has ended.
        match self.save(expect, &token.tokens, None).await {
            Ok(Saved::Stored(version)) => {
                token.version.store(version, Relaxed);
                tracing::info!(version, "renewed token written back to the token store");
                true
            }
            Ok(Saved::Superseded(_)) => true,
            Ok(Saved::LoggedOut) => {
                // The renewed tokens must not outlive the logout.
                self.revoke_quietly(&token.tokens).await;
                // An earlier end (a refused session, which a new login may revive) stays as it was.
                if self.state().ended.is_none() {
                    self.end(SessionEnd::LoggedOut);
                }
                true
            }
            Ok(Saved::Refused(error)) => {
                tracing::error!(%error, "renewed token kept in memory only: the store holds a session this client refuses");
                true
            }
            Err(error) if !error.is_unavailable() && self.state().ended.is_some() => {
                tracing::warn!(%error, "the store refuses the renewed token of an ended session; not writing it back");
                true
            }
            Err(error) => {
                tracing::debug!(%error, "token store still failing; will write back later");
                false
            }
        }
    }

    /// Whether a renewal is under way.
    pub(crate) fn is_renewing(&self) -> bool {
        let state = self.state();
        state.renewal.is_some() || self.renewal_wanted.load(Relaxed)
    }

    /// Whether a renewed session kept in memory waits to be written to the store.
    pub(crate) fn has_unsaved(&self) -> bool {
        self.unsaved.load(std::sync::atomic::Ordering::SeqCst) > 0
    }

    /// Wait until a renewal under way has ended and a renewed session kept in memory has been written
    /// to the store, for at most `timeout`. Returns whether nothing is left unsaved.
    pub(crate) async fn flush(&self, timeout: Duration) -> bool {
        let all_saved = async {
            loop {
                let saved = self.saved.notified();
                tokio::pin!(saved);
                // Registered before looking, so that a renewal or write-back finishing in between is
                // not missed.
                saved.as_mut().enable();
                if !self.has_unsaved() && self.state().renewal.is_none() {
                    return;
                }
                saved.await;
            }
        };
        tokio::time::timeout(timeout, all_saved).await.is_ok()
    }

    /// A session ended by a refused refresh looks at the store once more on each call: another
    /// process may have logged in again.
    async fn revive(self: &Arc<Self>) -> Result<Arc<Token>, AuthError> {
        let (refused, end) = {
            let state = self.state();
            (state.current.clone(), state.ended.clone())
        };
        let ended = AuthError::SessionEnded(end.unwrap_or(SessionEnd::LoggedOut));
        let Ok(Ok(Newest::Stored(token))) = self.load().await.map(|stored| self.newest(&refused, stored)) else {
            return Err(ended);
        };
        let mut state = self.state();
        if !matches!(state.ended, Some(SessionEnd::Refused(_))) || state.renewal.is_some() {
            return Err(ended);
        }
        tracing::info!("a new session in the store replaces the refused one");
        state.ended = None;
        self.replace(&mut state, &token);
        Ok(token)
    }

    async fn load(&self) -> Result<Option<Versioned>, StoreError> {
        self.within(self.store.load()).await
    }

    /// A store call, bounded by the store timeout: a store that does not answer is unavailable.
    async fn within<T>(&self, call: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        self.within_steps(1, call).await
    }

    /// A store call of up to `steps` calls (the lock and the read are two unless the store makes them
    /// one), bounded by a store timeout for each.
    async fn within_steps<T>(
        &self,
        steps: u32,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.config.store_timeout.saturating_mul(steps), call)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::new(
                    self.store.name(),
                    "the store did not answer within its timeout",
                ))
            })
    }

    /// Redeem the refresh token, or re-acquire a client-credentials token.
    async fn request_renewal(&self, previous: &TokenSet, deadline: Option<Instant>) -> Result<TokenSet, AuthError> {
        let flow = self.config.flow(previous.grant())?;
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
            (None, _) => {
                return Err(AuthError::SessionEnded(SessionEnd::NotRenewable));
            }
        };
        self.config
            .tokens
            .token(url, grant, deadline)
            .await
            .map_err(|failure| match failure {
                // Only `invalid_grant` says the grant is gone; anything else leaves the session.
                TokenFailure::Refused(oauth) if oauth.code() == "invalid_grant" => {
                    AuthError::SessionEnded(SessionEnd::Refused(oauth))
                }
                TokenFailure::Refused(oauth) => AuthError::RenewalRefused(oauth),
                TokenFailure::Transient(e) => AuthError::Transient(e),
                // A success the SDK cannot use: the server may have rotated the refresh token.
                TokenFailure::Invalid(e) if e.status().is_success() => {
                    AuthError::SessionEnded(SessionEnd::UnusableRenewal(e))
                }
                TokenFailure::Invalid(e) => AuthError::InvalidTokenResponse(e),
                TokenFailure::Config(e) => AuthError::Config(e),
            })
    }

    /// This process's logout stored its tombstone.
    pub(crate) fn tombstone_stored(&self) {
        self.tombstoned.store(true, Relaxed);
    }

    /// End the session here: every later call, on any clone, fails with `end`.
    pub(crate) fn end(&self, end: SessionEnd) {
        self.state().ended = Some(end.clone());
        self.publish(SessionState::Ended(end));
    }

    /// Tell whoever watches: called after the state changed (a watcher made in between starts from
    /// the new state, and gets it once more, which is harmless).
    fn publish(&self, state: SessionState) {
        if let Some(changes) = self.changes.get() {
            changes.send_replace(state);
        }
    }

    pub(crate) fn changes(&self) -> watch::Receiver<SessionState> {
        let state = self.state();
        let changes = self.changes.get_or_init(|| {
            let now = match &state.ended {
                Some(end) => SessionState::Ended(end.clone()),
                None => SessionState::Active(state.current.tokens.clone()),
            };
            watch::channel(now).0
        });
        let receiver = changes.subscribe();
        drop(state);
        receiver
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

/// Wait until the store pushes a version `versions` has not seen yet, or for `at_most`. (A receiver
/// cloned afresh for each wait would take every version since the session began as new, and not
/// wait at all.)
async fn wait_for_store(versions: Option<&mut watch::Receiver<Version>>, at_most: Duration) {
    match versions {
        Some(versions) => match tokio::time::timeout(at_most, versions.changed()).await {
            // A new version, or the time gone by.
            Ok(Ok(())) | Err(_) => {}
            // The store stopped pushing: wait the time out.
            Ok(Err(_)) => tokio::time::sleep(at_most).await,
        },
        None => tokio::time::sleep(at_most).await,
    }
}

fn logged_out() -> AuthError {
    AuthError::SessionEnded(SessionEnd::LoggedOut)
}
