//! Many sessions in one service: a [`SessionRegistry`] finds a user's (or tenant's) live session by
//! key, resumes it from its store on first use, and keeps at most so many, evicting the least
//! recently used and the idle, but never one whose renewed tokens still wait to reach the store.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::api::Api;
use crate::client::WeakAuthenticated;
use crate::error::Error;
use crate::store::TokenStore;

/// The live sessions of a service, by key, each in the store `stores` makes for its key.
///
/// ```ignore
/// // `my_api` is the module generated from your spec.
/// use oauth_sdk_runtime::{RedisSessions, SessionRegistry};
///
/// let redis = RedisSessions::connect("redis://127.0.0.1:6379/", "my-app").await?;
/// let sessions = SessionRegistry::new(client, move |user: &str| redis.session(user))
///     .max_sessions(10_000)
///     .idle_timeout(Duration::from_secs(15 * 60));
/// // At sign-in:
/// sessions.login("user-42", |client, store| client.login_authorization_code(store, &pending, &callback)).await?;
/// // In a request handler:
/// let api = sessions.get("user-42").await?; // resumed from Redis if this process has not seen it
/// let me = api.get_me().await?;
/// ```
pub struct SessionRegistry<A: Api, S: TokenStore> {
    client: A,
    stores: Box<dyn Fn(&str) -> S + Send + Sync>,
    max_sessions: usize,
    idle_timeout: Option<Duration>,
    entries: RwLock<Entries<A, S>>,
    counters: RegistryCounters,
    /// What `last_used` and `last_sweep` count from.
    epoch: Instant,
    /// When idle sessions were last looked for, in nanoseconds since `epoch`.
    last_sweep: AtomicU64,
}

struct Entries<A: Api, S: TokenStore> {
    by_key: HashMap<String, Entry<A, S>>,
    /// Sessions let go, as long as something else (a request in flight, a caller's clone) still
    /// holds them: found again by `get`, rather than resumed a second time beside themselves.
    let_go: HashMap<String, WeakAuthenticated<A, S>>,
}

struct Entry<A: Api, S: TokenStore> {
    /// Filled once, by the first `get` (a resume) or a `login`; concurrent `get`s share the resume.
    slot: Arc<OnceCell<A::Authenticated<S>>>,
    /// In nanoseconds since the registry's epoch: set under the read lock, by every `get`.
    last_used: AtomicU64,
}

/// What a [`SessionRegistry`] has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegistryMetrics {
    /// Sessions held now.
    pub live: usize,
    /// Sessions resumed from their store.
    pub resumed: u64,
    /// Sessions let go but still in use elsewhere, found again rather than resumed.
    pub found_again: u64,
    /// Sessions started by [`SessionRegistry::login`].
    pub logged_in: u64,
    /// Sessions let go: beyond `max_sessions`, or idle.
    pub evictions: u64,
    /// Evictions put off because the session's renewed tokens had not reached the store yet.
    pub evictions_deferred: u64,
}

#[derive(Default)]
struct RegistryCounters {
    resumed: AtomicU64,
    found_again: AtomicU64,
    logged_in: AtomicU64,
    evictions: AtomicU64,
    evictions_deferred: AtomicU64,
}

impl<A: Api, S: TokenStore> std::fmt::Debug for SessionRegistry<A, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRegistry")
            .field("metrics", &self.metrics())
            .field("max_sessions", &self.max_sessions)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl<A: Api, S: TokenStore> SessionRegistry<A, S> {
    /// A registry of `client`'s sessions, each in the store `stores` makes for its key (for
    /// example `move |user| redis.session(user)` with a [`RedisSessions`](crate::RedisSessions)).
    /// Unbounded and never idle until [`max_sessions`](Self::max_sessions) and
    /// [`idle_timeout`](Self::idle_timeout) say otherwise.
    pub fn new(client: A, stores: impl Fn(&str) -> S + Send + Sync + 'static) -> Self {
        Self {
            client,
            stores: Box::new(stores),
            max_sessions: usize::MAX,
            idle_timeout: None,
            entries: RwLock::new(Entries {
                by_key: HashMap::new(),
                let_go: HashMap::new(),
            }),
            counters: RegistryCounters::default(),
            epoch: Instant::now(),
            last_sweep: AtomicU64::new(0),
        }
    }

    /// Hold at most `max` sessions: past it, the least recently used is let go (it stays in its
    /// store, and the next [`get`](Self::get) resumes it).
    pub fn max_sessions(mut self, max: usize) -> Self {
        self.max_sessions = max.max(1);
        self
    }

    /// Let go of a session unused for `idle`.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = Some(idle);
        self
    }

    fn entries(&self) -> RwLockWriteGuard<'_, Entries<A, S>> {
        self.entries.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read_entries(&self) -> RwLockReadGuard<'_, Entries<A, S>> {
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Now, in nanoseconds since the registry's epoch.
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The session of `key`: the one held, or else resumed from its store (concurrent calls for one
    /// key resume it once). Fails with [`Error::NoSession`] if the store holds none: log in first.
    pub async fn get(&self, key: &str) -> Result<A::Authenticated<S>, Error> {
        let now = self.now();
        self.sweep_idle_if_due(now);
        if let Some(session) = self.held(key, now) {
            return Ok(session);
        }
        let slot = {
            let mut entries = self.entries();
            if let Some(entry) = entries.by_key.get(key) {
                entry.last_used.store(now, Relaxed);
                entry.slot.clone()
            } else {
                // A session let go but still in use elsewhere is the one to use.
                let found = entries.let_go.remove(key).and_then(|weak| weak.upgrade());
                if found.is_some() {
                    self.counters.found_again.fetch_add(1, Relaxed);
                }
                let slot = Arc::new(OnceCell::new_with(found.map(A::authenticated)));
                let entry = Entry {
                    slot: slot.clone(),
                    last_used: AtomicU64::new(now),
                };
                entries.by_key.insert(key.to_owned(), entry);
                slot
            }
        };
        let resumed = slot
            .get_or_try_init(|| async {
                let session = self.client.runtime().clone().resume((self.stores)(key)).await?;
                self.counters.resumed.fetch_add(1, Relaxed);
                Ok::<_, Error>(session)
            })
            .await;
        let mut entries = self.entries();
        match resumed {
            Ok(session) => {
                let session = session.clone();
                // Only now, so that asking for keys that have no session lets no session go.
                self.evict_beyond_max(&mut entries, key);
                Ok(session)
            }
            Err(error) => {
                // Not kept, unless another caller is still resuming it: the next call tries again.
                let ours = entries
                    .by_key
                    .get(key)
                    .is_some_and(|e| Arc::ptr_eq(&e.slot, &slot) && Arc::strong_count(&slot) == 2);
                if ours && !slot.initialized() {
                    entries.by_key.remove(key);
                }
                Err(error)
            }
        }
    }

    /// The session held for `key`, if it is resumed already: nearly every call, under the read lock.
    fn held(&self, key: &str, now: u64) -> Option<A::Authenticated<S>> {
        let entries = self.read_entries();
        let entry = entries.by_key.get(key)?;
        let session = entry.slot.get()?.clone();
        entry.last_used.store(now, Relaxed);
        Some(session)
    }

    /// Log `key` in with `login`, given a clone of the client and `key`'s store, and hold the
    /// session, replacing any held for `key`:
    /// `registry.login("user-42", |client, store| client.login_password(store, "ada", password))`.
    pub async fn login<F, Fut>(&self, key: &str, login: F) -> Result<A::Authenticated<S>, Error>
    where
        F: FnOnce(A, S) -> Fut,
        Fut: Future<Output = Result<A::Authenticated<S>, Error>>,
    {
        let session = login(self.client.clone(), (self.stores)(key)).await?;
        self.counters.logged_in.fetch_add(1, Relaxed);
        let now = self.now();
        let mut entries = self.entries();
        entries.let_go.remove(key);
        entries.by_key.insert(
            key.to_owned(),
            Entry {
                slot: Arc::new(OnceCell::new_with(Some(session.clone()))),
                last_used: AtomicU64::new(now),
            },
        );
        self.evict_beyond_max(&mut entries, key);
        Ok(session)
    }

    /// Let go of `key`'s session (it stays in its store; log it out to end it), returning it if one
    /// was held.
    pub fn remove(&self, key: &str) -> Option<A::Authenticated<S>> {
        let mut entries = self.entries();
        entries.let_go.remove(key);
        let entry = entries.by_key.remove(key)?;
        entry.slot.get().cloned()
    }

    /// What the registry holds and has done.
    pub fn metrics(&self) -> RegistryMetrics {
        RegistryMetrics {
            live: self.read_entries().by_key.len(),
            resumed: self.counters.resumed.load(Relaxed),
            found_again: self.counters.found_again.load(Relaxed),
            logged_in: self.counters.logged_in.load(Relaxed),
            evictions: self.counters.evictions.load(Relaxed),
            evictions_deferred: self.counters.evictions_deferred.load(Relaxed),
        }
    }

    /// Beyond `max_sessions`, let go of the least recently used (never `keep`) whose renewed tokens,
    /// if any, have reached the store.
    fn evict_beyond_max(&self, entries: &mut Entries<A, S>, keep: &str) {
        while entries.by_key.len() > self.max_sessions {
            let mut oldest: Option<(&String, u64)> = None;
            let mut passed_over = false;
            for (key, entry) in &entries.by_key {
                let used = entry.last_used.load(Relaxed);
                if key == keep || oldest.is_some_and(|(_, oldest)| oldest <= used) {
                    continue;
                }
                if unsaved(entry) {
                    passed_over = true;
                } else {
                    oldest = Some((key, used));
                }
            }
            if passed_over {
                self.counters.evictions_deferred.fetch_add(1, Relaxed);
            }
            let Some(oldest) = oldest.map(|(key, _)| key.clone()) else {
                return;
            };
            if let Some(entry) = entries.by_key.remove(&oldest) {
                let_go(&mut entries.let_go, oldest, &entry);
            }
            self.counters.evictions.fetch_add(1, Relaxed);
        }
    }

    /// Let go of the sessions idle for longer than `idle_timeout`; looked at no more often than
    /// every quarter of it.
    fn sweep_idle_if_due(&self, now: u64) {
        let Some(idle) = self.idle_timeout else {
            return;
        };
        let idle = u64::try_from(idle.as_nanos()).unwrap_or(u64::MAX);
        let last = self.last_sweep.load(Relaxed);
        if now.saturating_sub(last) < idle / 4 || self.last_sweep.compare_exchange(last, now, Relaxed, Relaxed).is_err()
        {
            return;
        }
        let mut entries = self.entries();
        let (mut evicted, mut deferred) = (0, 0);
        let Entries { by_key, let_go: gone } = &mut *entries;
        gone.retain(|_, weak| !weak.is_gone());
        by_key.retain(|key, entry| {
            if now.saturating_sub(entry.last_used.load(Relaxed)) < idle {
                return true;
            }
            let keep = unsaved(entry);
            if keep {
                deferred += 1;
            } else {
                evicted += 1;
                let_go(gone, key.clone(), entry);
            }
            keep
        });
        self.counters.evictions.fetch_add(evicted, Relaxed);
        self.counters.evictions_deferred.fetch_add(deferred, Relaxed);
    }
}

/// Keep a weak handle of a session let go, and forget those nothing holds any more.
fn let_go<A: Api, S: TokenStore>(
    let_go: &mut HashMap<String, WeakAuthenticated<A, S>>,
    key: String,
    entry: &Entry<A, S>,
) {
    if let Some(session) = entry.slot.get() {
        let weak = session.downgrade();
        if !weak.is_gone() {
            let_go.insert(key, weak);
        }
    }
    if let_go.len() > 64 && let_go.len().is_power_of_two() {
        let_go.retain(|_, weak| !weak.is_gone());
    }
}

/// Whether `entry`'s session has renewed tokens that have not reached its store yet: letting it go
/// would leave the store with a refresh token the server may already have rotated.
fn unsaved<A: Api, S: TokenStore>(entry: &Entry<A, S>) -> bool {
    entry.slot.get().is_some_and(|session| session.has_unsaved())
}
