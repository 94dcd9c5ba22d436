//! Many sessions in one service: a [`SessionRegistry`] finds a user's (or tenant's) live session by
//! key, resumes it from its store on first use, and keeps at most so many, evicting the least
//! recently used and the idle, but never one whose renewed tokens still wait to reach the store.
//!
//! A held session's last use is an atomic, set under the read lock, so the path of nearly every call
//! takes no write lock. Eviction finds the least recently used through a min-heap of (last use as
//! indexed, key), corrected lazily: the top's recorded use is compared with the entry's, and an entry
//! used since goes back in under its newer use. Each eviction costs O(log n) amortised, not a scan
//! of every session.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
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
    /// (last use as indexed, key) of every entry, oldest on top, once the registry is bounded; a
    /// record whose time is not its entry's `indexed` is left over from a removed or replaced entry.
    by_use: BinaryHeap<Reverse<(u64, String)>>,
    /// Sessions let go, as long as something else (a request in flight, a caller's clone) still
    /// holds them: found again by `get`, rather than resumed a second time beside themselves.
    let_go: HashMap<String, WeakAuthenticated<A, S>>,
}

struct Entry<A: Api, S: TokenStore> {
    /// Filled once, by the first `get` (a resume) or a `login`; concurrent `get`s share the resume.
    slot: Arc<OnceCell<A::Authenticated<S>>>,
    /// The slot's session once it is filled: what nearly every call reads, without going through the
    /// slot (a cache line fewer to fetch per call, with thousands of sessions).
    ready: Option<A::Authenticated<S>>,
    /// In nanoseconds since the registry's epoch: set under the read lock, by every `get`.
    last_used: AtomicU64,
    /// The last use under which `by_use` holds it (changed under the write lock only).
    indexed: u64,
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
                by_use: BinaryHeap::new(),
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
                self.insert(&mut entries, key, slot.clone(), now);
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
                if let Some(entry) = entries.by_key.get_mut(key)
                    && Arc::ptr_eq(&entry.slot, &slot)
                {
                    entry.ready.get_or_insert_with(|| session.clone());
                }
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
        let session = entry.ready.clone()?;
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
        let slot = Arc::new(OnceCell::new_with(Some(session.clone())));
        self.insert(&mut entries, key, slot, now);
        self.evict_beyond_max(&mut entries, key);
        Ok(session)
    }

    /// Hold `slot` for `key` (replacing what was held), indexed by its use if the registry is
    /// bounded.
    fn insert(&self, entries: &mut Entries<A, S>, key: &str, slot: Arc<OnceCell<A::Authenticated<S>>>, now: u64) {
        let entry = Entry {
            ready: slot.get().cloned(),
            slot,
            last_used: AtomicU64::new(now),
            indexed: now,
        };
        entries.by_key.insert(key.to_owned(), entry);
        if self.max_sessions == usize::MAX && self.idle_timeout.is_none() {
            return;
        }
        entries.by_use.push(Reverse((now, key.to_owned())));
        // Records left over from removed or replaced entries: rebuild now and then, so that they
        // never outnumber the entries.
        if entries.by_use.len() > 2 * entries.by_key.len() + 64 {
            let by_use = entries
                .by_key
                .iter()
                .map(|(key, entry)| Reverse((entry.indexed, key.clone())))
                .collect();
            entries.by_use = by_use;
        }
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
        let mut passed_over = Vec::new();
        while entries.by_key.len() > self.max_sessions {
            let Some(victim) = least_recently_used(entries, u64::MAX, Some(keep), &mut passed_over) else {
                break;
            };
            evict(entries, victim);
            self.counters.evictions.fetch_add(1, Relaxed);
        }
        self.put_back(entries, passed_over, Some(keep));
    }

    /// Put back the records `least_recently_used` passed over, counting the evictions put off.
    fn put_back(&self, entries: &mut Entries<A, S>, passed_over: Vec<Reverse<(u64, String)>>, keep: Option<&str>) {
        let deferred = passed_over
            .iter()
            .filter(|Reverse((_, key))| Some(key.as_str()) != keep)
            .count();
        self.counters.evictions_deferred.fetch_add(deferred as u64, Relaxed);
        entries.by_use.extend(passed_over);
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
        entries.let_go.retain(|_, weak| !weak.is_gone());
        let mut passed_over = Vec::new();
        while let Some(victim) = least_recently_used(&mut entries, now.saturating_sub(idle), None, &mut passed_over) {
            evict(&mut entries, victim);
            self.counters.evictions.fetch_add(1, Relaxed);
        }
        self.put_back(&mut entries, passed_over, None);
    }
}

/// Let go of `key`'s session.
fn evict<A: Api, S: TokenStore>(entries: &mut Entries<A, S>, key: String) {
    if let Some(entry) = entries.by_key.remove(&key) {
        let_go(&mut entries.let_go, key, &entry);
    }
}

/// The key of the least recently used session last used before `before`, never `keep` nor one with
/// renewed tokens not yet in its store. Pops records off `by_use` until one is current: a leftover
/// is dropped, a session used since goes back under its newer use, and `keep` and the unsaved go to
/// `passed_over`, for the caller to put back once done.
fn least_recently_used<A: Api, S: TokenStore>(
    entries: &mut Entries<A, S>,
    before: u64,
    keep: Option<&str>,
    passed_over: &mut Vec<Reverse<(u64, String)>>,
) -> Option<String> {
    let Entries { by_key, by_use, .. } = entries;
    while let Some(Reverse((indexed, key))) = by_use.pop() {
        let Some(entry) = by_key.get_mut(&key) else {
            continue;
        };
        if entry.indexed != indexed {
            continue;
        }
        let used = entry.last_used.load(Relaxed);
        if used > indexed {
            entry.indexed = used;
            by_use.push(Reverse((used, key)));
            continue;
        }
        if used >= before {
            by_use.push(Reverse((indexed, key)));
            return None;
        }
        if Some(key.as_str()) == keep || unsaved(entry) {
            passed_over.push(Reverse((indexed, key)));
            continue;
        }
        return Some(key);
    }
    None
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

/// Whether `entry`'s session has renewed tokens that have not reached its store yet, or is renewing
/// (in the background, perhaps with no handle left but the registry's): letting it go would leave
/// the store with a refresh token the server may already have rotated, and the next `get` would
/// resume a second session beside it.
fn unsaved<A: Api, S: TokenStore>(entry: &Entry<A, S>) -> bool {
    entry.slot.get().is_some_and(|session| session.has_unsaved())
}
