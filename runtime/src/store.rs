//! Where sessions live between requests and between processes.
//!
//! The SDK keeps the current token in memory and goes to the store only to log in, to resume, around
//! a refresh and to log out, so a store's latency is never on the request path. Writes are
//! compare-and-set on a version the store assigns: a writer that read an older session can never
//! overwrite a newer one, which is what makes a store safe to share between processes.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

mod file;
#[cfg(feature = "redis")]
mod redis;
mod sealing;

pub use self::file::FileStore;
#[cfg(feature = "redis")]
pub use self::redis::{RedisOptions, RedisSessions, RedisStore};
#[cfg(feature = "encryption")]
pub use self::sealing::SealingKeys;

use crate::token::TokenSet;

/// A version a store gives each write of a session. It only ever grows, also across a loss of the
/// store's data (a Redis restarted without persistence, a deleted file): a store that finds its
/// counter gone starts the new one from [`version_floor`], so a version is never given twice.
pub type Version = u64;

/// Where a store whose version counter is gone starts a new one: the wall clock in microseconds,
/// which is above every version given before, as long as the store wrote fewer than a million
/// versions a second and the clock did not go back.
pub fn version_floor() -> Version {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Version::try_from(now.as_micros()).unwrap_or(Version::MAX / 2)
}

/// A session as a store holds it.
#[derive(Debug, Clone)]
pub struct Versioned {
    /// The version of this write.
    pub version: Version,
    /// The tokens; `None` once the session was logged out. The store keeps that tombstone (with a
    /// version of its own) so that every process still holding the session ends it, rather than
    /// renewing it, and so that a renewal in flight cannot write it back.
    pub tokens: Option<TokenSet>,
}

impl Versioned {
    /// A live session.
    pub fn live(version: Version, tokens: TokenSet) -> Self {
        Self {
            version,
            tokens: Some(tokens),
        }
    }

    /// True for the tombstone a logout leaves.
    pub fn is_logged_out(&self) -> bool {
        self.tokens.is_none()
    }
}

/// What a write expects to find, so that it cannot overwrite a session it has not seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The store holds no session.
    Empty,
    /// The store still holds this version.
    Version(Version),
    /// Anything: a fresh login replaces whatever was there.
    Any,
}

impl Expect {
    /// Whether a store holding `current` (`None`: nothing at all, not even a tombstone) takes the
    /// write: the one compare-and-set decision, shared by the stores written in Rust.
    pub fn matches(self, current: Option<&Versioned>) -> bool {
        match self {
            Expect::Any => true,
            Expect::Empty => current.is_none(),
            Expect::Version(version) => current.is_some_and(|c| c.version == version),
        }
    }
}

/// The outcome of a compare-and-set write.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per store write, around a renewal: boxing would cost every store implementation an allocation for nothing"
)]
pub enum Swap {
    /// Written, as this version.
    Stored(Version),
    /// Not written: the store held something else, which is returned.
    Conflict(Option<Versioned>),
}

/// The answer to a request for a session's renewal lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockAttempt {
    /// Taken under the owner asked for: renew, store the result, then
    /// [`unlock`](TokenStore::unlock).
    Acquired,
    /// Another owner holds it and is renewing: wait for its result to reach the store.
    Busy,
    /// The store is not shared between processes: the session's in-process single flight suffices.
    NotShared,
}

/// The answer to [`TokenStore::try_lock_and_load`].
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per renewal, as Swap: boxing would cost every store an allocation for nothing"
)]
pub enum Locked {
    /// Another owner holds the lock and is renewing; nothing was read.
    Busy,
    /// The lock is taken under the owner asked for, and the session as read under it. A read that
    /// failed leaves the lock taken, to be released.
    Taken(Result<Option<Versioned>, StoreError>),
    /// The store is not shared ([`LockAttempt::NotShared`]): no lock, and the session as read.
    NotShared(Result<Option<Versioned>, StoreError>),
}

/// A renewal lock's owner: the value the store keeps in the lock, and checks when it is released.
///
/// The session chooses it (at random, for each attempt to take the lock) and gives it to the store,
/// so that it knows the owner of a lock whose answer it never got (a call that timed out after the
/// store ran it) and can release that lock, rather than leave every process waiting out its TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockToken(String);

impl LockToken {
    /// A lock token with this owner value.
    pub fn new(owner: impl Into<String>) -> Self {
        Self(owner.into())
    }

    /// A new owner, random.
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }

    /// The owner value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A token store failed: unreachable (which may pass), or holding something this SDK cannot use
/// (which will not).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{store} token store: {message}")]
pub struct StoreError {
    store: &'static str,
    message: String,
    unavailable: bool,
    sealing: bool,
}

impl StoreError {
    /// The store could not be used for now (unreachable, timed out). `store` names the kind of store
    /// ("redis", "file"); `cause` must not contain secrets.
    pub fn new(store: &'static str, cause: impl std::fmt::Display) -> Self {
        Self {
            store,
            message: cause.to_string(),
            unavailable: true,
            sealing: false,
        }
    }

    /// The store answered, but with something this SDK cannot use (an unreadable or foreign
    /// session, a wrong format): trying again will not help.
    pub fn invalid(store: &'static str, cause: impl std::fmt::Display) -> Self {
        Self {
            unavailable: false,
            ..Self::new(store, cause)
        }
    }

    /// The stored session is sealed and cannot be opened with the keys given (a key id not given,
    /// a wrong key, an altered session), or is not sealed where it must be: lasting, and the stored
    /// session is left as it is.
    pub(crate) fn sealing(store: &'static str, cause: impl std::fmt::Display) -> Self {
        Self {
            sealing: true,
            ..Self::invalid(store, cause)
        }
    }

    /// True when the stored session could not be opened with the sealing keys given (or was not
    /// sealed where it must be): see `SealingKeys` (feature `encryption`). Never unavailable.
    pub fn is_sealing(&self) -> bool {
        self.sealing
    }

    /// This error, about `what` (a file's path).
    pub(crate) fn about(mut self, what: impl std::fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    /// The kind of store that failed.
    pub fn store(&self) -> &'static str {
        self.store
    }

    /// True when the store could not be reached or did not answer in time: it may pass.
    pub fn is_unavailable(&self) -> bool {
        self.unavailable
    }
}

/// Keeps one session's tokens.
///
/// Implementations must be safe for concurrent use from many tasks (and, for shared stores, many
/// processes): [`store`](TokenStore::store) is a compare-and-set, atomic with respect to every other
/// write of the same session.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a token store",
    label = "this type does not implement `oauth_sdk_runtime::TokenStore`",
    note = "use `oauth_sdk_runtime::MemoryStore` (the default), or implement `TokenStore` for your type"
)]
pub trait TokenStore: Send + Sync + 'static {
    /// The session, with its version; a tombstone after logout; `None` when the store holds nothing.
    fn load(&self) -> impl Future<Output = Result<Option<Versioned>, StoreError>> + Send;

    /// Write `tokens` as a new [`Version`] if the store holds what `expect` says
    /// ([`Expect::matches`]); otherwise change nothing and return what it holds.
    fn store(&self, expect: Expect, tokens: &TokenSet) -> impl Future<Output = Result<Swap, StoreError>> + Send;

    /// Log the session out: replace it, whatever it is, with a tombstone of a new version
    /// ([`Versioned::tokens`] `None`), which [`load`](TokenStore::load) returns until a new login.
    fn clear(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Take the session's renewal lock for `ttl` under `lock`'s owner, so that one process renews
    /// while the others wait for its result. The lock must expire by itself after `ttl`, so a holder
    /// that dies delays the others by at most that. A lock this owner holds already is taken again
    /// (its TTL starting over): the session may ask again under the owner of a call whose answer it
    /// lost. Default: [`LockAttempt::NotShared`].
    fn try_lock(
        &self,
        lock: &LockToken,
        ttl: Duration,
    ) -> impl Future<Output = Result<LockAttempt, StoreError>> + Send {
        let _ = (lock, ttl);
        async { Ok(LockAttempt::NotShared) }
    }

    /// Release the lock if `lock`'s owner holds it; otherwise change nothing.
    fn unlock(&self, lock: &LockToken) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = lock;
        async { Ok(()) }
    }

    /// [`try_lock`](TokenStore::try_lock) and, unless the lock is busy,
    /// [`load`](TokenStore::load), in one step where the store can (Redis: one script, one round
    /// trip), as a renewal starts with both. Default: the two calls one after the other.
    ///
    /// The SDK bounds the whole call with two store timeouts (one per call) and drops it if it takes
    /// longer. After a call that failed or was dropped, it releases the lock under the owner it gave,
    /// in the background until the store answers, in case the store took it.
    fn try_lock_and_load(
        &self,
        lock: &LockToken,
        ttl: Duration,
    ) -> impl Future<Output = Result<Locked, StoreError>> + Send {
        async move {
            match self.try_lock(lock, ttl).await? {
                LockAttempt::Busy => Ok(Locked::Busy),
                LockAttempt::Acquired => Ok(Locked::Taken(self.load().await)),
                LockAttempt::NotShared => Ok(Locked::NotShared(self.load().await)),
            }
        }
    }

    /// [`store`](TokenStore::store) and, if the write is stored, [`unlock`](TokenStore::unlock)
    /// `lock`, in one step where the store can (Redis: one script), as a renewal ends with both. A
    /// conflict leaves the lock as it was; so does an error, unless the write was stored after all
    /// (its answer lost), when the lock may be released too. Default: the two calls one after the
    /// other; an unlock that fails after the write was stored is this call's error, so that the
    /// session releases the lock later rather than leave it to its TTL (it then takes the write for
    /// one whose answer was lost, and finds it stored when it writes it back). Bounded by two store
    /// timeouts, as [`try_lock_and_load`](TokenStore::try_lock_and_load).
    fn store_and_unlock(
        &self,
        expect: Expect,
        tokens: &TokenSet,
        lock: &LockToken,
    ) -> impl Future<Output = Result<Swap, StoreError>> + Send {
        async move {
            let swap = self.store(expect, tokens).await?;
            if let Swap::Stored(_) = swap {
                self.unlock(lock).await?;
            }
            Ok(swap)
        }
    }

    /// The newest version anyone has stored, pushed by the store (Redis pub/sub, say), so that each
    /// process adopts a session another one renewed without asking the store on every request.
    /// Default: `None` (the session then learns of it on its next renewal or rejected token).
    fn versions(&self) -> Option<watch::Receiver<Version>> {
        None
    }
}

impl<S: TokenStore> TokenStore for Arc<S> {
    fn load(&self) -> impl Future<Output = Result<Option<Versioned>, StoreError>> + Send {
        (**self).load()
    }

    fn store(&self, expect: Expect, tokens: &TokenSet) -> impl Future<Output = Result<Swap, StoreError>> + Send {
        (**self).store(expect, tokens)
    }

    fn clear(&self) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).clear()
    }

    fn try_lock(
        &self,
        lock: &LockToken,
        ttl: Duration,
    ) -> impl Future<Output = Result<LockAttempt, StoreError>> + Send {
        (**self).try_lock(lock, ttl)
    }

    fn unlock(&self, lock: &LockToken) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).unlock(lock)
    }

    fn try_lock_and_load(
        &self,
        lock: &LockToken,
        ttl: Duration,
    ) -> impl Future<Output = Result<Locked, StoreError>> + Send {
        (**self).try_lock_and_load(lock, ttl)
    }

    fn store_and_unlock(
        &self,
        expect: Expect,
        tokens: &TokenSet,
        lock: &LockToken,
    ) -> impl Future<Output = Result<Swap, StoreError>> + Send {
        (**self).store_and_unlock(expect, tokens, lock)
    }

    fn versions(&self) -> Option<watch::Receiver<Version>> {
        (**self).versions()
    }
}

/// The in-process store, the default: sessions last as long as the process.
///
/// Cheap to clone; clones share the session.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    slot: Arc<Mutex<Slot>>,
}

#[derive(Debug, Default)]
struct Slot {
    session: Option<Versioned>,
    last_version: Version,
}

impl Slot {
    /// Versions start from the clock's floor, as in every store of this crate, so that versions are
    /// never compared across stores by accident of all starting at one.
    fn next_version(&mut self) -> Version {
        self.last_version = (self.last_version + 1).max(version_floor());
        self.last_version
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        // A panic while holding this lock cannot leave the slot half-written: every write is one
        // assignment.
        self.slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl TokenStore for MemoryStore {
    async fn load(&self) -> Result<Option<Versioned>, StoreError> {
        Ok(self.slot().session.clone())
    }

    async fn store(&self, expect: Expect, tokens: &TokenSet) -> Result<Swap, StoreError> {
        let mut slot = self.slot();
        if !expect.matches(slot.session.as_ref()) {
            return Ok(Swap::Conflict(slot.session.clone()));
        }
        let version = slot.next_version();
        slot.session = Some(Versioned::live(version, tokens.clone()));
        Ok(Swap::Stored(version))
    }

    async fn clear(&self) -> Result<(), StoreError> {
        let mut slot = self.slot();
        let version = slot.next_version();
        slot.session = Some(Versioned { version, tokens: None });
        Ok(())
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A store's type name without its path (`RedisStore`, also for `Arc<RedisStore>`), to name it in
/// errors.
pub(crate) fn short_type_name<S>() -> &'static str {
    let name = std::any::type_name::<S>().trim_end_matches('>');
    name.rsplit(['<', ':']).next().unwrap_or(name)
}

/// [`TokenStore`] as an object, so the session and the generated client need not be generic.
pub(crate) trait DynStore: Send + Sync {
    fn load(&self) -> BoxFuture<'_, Result<Option<Versioned>, StoreError>>;
    fn store<'a>(&'a self, expect: Expect, tokens: &'a TokenSet) -> BoxFuture<'a, Result<Swap, StoreError>>;
    fn clear(&self) -> BoxFuture<'_, Result<(), StoreError>>;
    fn unlock<'a>(&'a self, lock: &'a LockToken) -> BoxFuture<'a, Result<(), StoreError>>;
    fn try_lock_and_load<'a>(&'a self, lock: &'a LockToken, ttl: Duration)
    -> BoxFuture<'a, Result<Locked, StoreError>>;
    fn store_and_unlock<'a>(
        &'a self,
        expect: Expect,
        tokens: &'a TokenSet,
        lock: &'a LockToken,
    ) -> BoxFuture<'a, Result<Swap, StoreError>>;
    fn versions(&self) -> Option<watch::Receiver<Version>>;
    fn name(&self) -> &'static str;
}

impl<S: TokenStore> DynStore for S {
    fn load(&self) -> BoxFuture<'_, Result<Option<Versioned>, StoreError>> {
        Box::pin(TokenStore::load(self))
    }

    fn store<'a>(&'a self, expect: Expect, tokens: &'a TokenSet) -> BoxFuture<'a, Result<Swap, StoreError>> {
        Box::pin(TokenStore::store(self, expect, tokens))
    }

    fn clear(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(TokenStore::clear(self))
    }

    fn unlock<'a>(&'a self, lock: &'a LockToken) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(TokenStore::unlock(self, lock))
    }

    fn try_lock_and_load<'a>(
        &'a self,
        lock: &'a LockToken,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Locked, StoreError>> {
        Box::pin(TokenStore::try_lock_and_load(self, lock, ttl))
    }

    fn store_and_unlock<'a>(
        &'a self,
        expect: Expect,
        tokens: &'a TokenSet,
        lock: &'a LockToken,
    ) -> BoxFuture<'a, Result<Swap, StoreError>> {
        Box::pin(TokenStore::store_and_unlock(self, expect, tokens, lock))
    }

    fn versions(&self) -> Option<watch::Receiver<Version>> {
        TokenStore::versions(self)
    }

    fn name(&self) -> &'static str {
        short_type_name::<S>()
    }
}
