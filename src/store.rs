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

pub use self::file::FileStore;
#[cfg(feature = "redis")]
pub use self::redis::RedisStore;

use crate::token::TokenSet;

/// A version a store gives each session it writes; it only ever grows.
pub type Version = u64;

/// A session as a store holds it.
#[derive(Debug, Clone)]
pub struct Versioned {
    /// The version of this write.
    pub version: Version,
    /// The tokens.
    pub tokens: TokenSet,
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

/// The outcome of a compare-and-set write.
#[derive(Debug, Clone)]
pub enum Swap {
    /// Written, as this version.
    Stored(Version),
    /// Not written: the store held something else, which is returned.
    Conflict(Option<Versioned>),
}

/// The answer to a request for a session's renewal lock.
#[derive(Debug)]
pub enum LockAttempt {
    /// Taken: renew, store the result, then [`unlock`](TokenStore::unlock).
    Acquired(LockToken),
    /// Another process holds it and is renewing: wait for its result to reach the store.
    Busy,
    /// The store is not shared between processes: the session's in-process single flight suffices.
    NotShared,
}

/// Proof of holding a renewal lock: the owner token the store checks when it is released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockToken(String);

impl LockToken {
    /// A lock token with this owner value.
    pub fn new(owner: impl Into<String>) -> Self {
        Self(owner.into())
    }

    /// The owner value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A token store failed (unreachable, or holding something unreadable).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{store} token store: {message}")]
pub struct StoreError {
    store: &'static str,
    message: String,
}

impl StoreError {
    /// `store` names the kind of store ("redis", "file"); `cause` must not contain secrets.
    pub fn new(store: &'static str, cause: impl std::fmt::Display) -> Self {
        Self {
            store,
            message: cause.to_string(),
        }
    }

    /// The kind of store that failed.
    pub fn store(&self) -> &'static str {
        self.store
    }
}

/// Keeps one session's tokens.
///
/// Implementations must be safe for concurrent use from many tasks (and, for shared stores, many
/// processes): [`store`](TokenStore::store) is a compare-and-set, atomic with respect to every other
/// write of the same session.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a token store",
    label = "this type does not implement `oauth_sdk::TokenStore`",
    note = "use `oauth_sdk::MemoryStore` (the default), or implement `TokenStore` for your type"
)]
pub trait TokenStore: Send + Sync + 'static {
    /// The session, with its version; `None` when there is none.
    fn load(&self) -> impl Future<Output = Result<Option<Versioned>, StoreError>> + Send;

    /// Write `tokens` if the store holds what `expect` says; otherwise change nothing and return what
    /// it holds.
    fn store(&self, expect: Expect, tokens: &TokenSet) -> impl Future<Output = Result<Swap, StoreError>> + Send;

    /// Remove the session.
    fn clear(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Take the session's renewal lock for `ttl`, so that one process renews while the others wait
    /// for its result. The lock must expire by itself after `ttl`, so a holder that dies delays the
    /// others by at most that. Default: [`LockAttempt::NotShared`].
    fn try_lock(&self, ttl: Duration) -> impl Future<Output = Result<LockAttempt, StoreError>> + Send {
        let _ = ttl;
        async { Ok(LockAttempt::NotShared) }
    }

    /// Release a lock taken with [`try_lock`](TokenStore::try_lock), if it is still this owner's.
    fn unlock(&self, lock: LockToken) -> impl Future<Output = Result<(), StoreError>> + Send {
        drop(lock);
        async { Ok(()) }
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

    fn try_lock(&self, ttl: Duration) -> impl Future<Output = Result<LockAttempt, StoreError>> + Send {
        (**self).try_lock(ttl)
    }

    fn unlock(&self, lock: LockToken) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).unlock(lock)
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
        let current = slot.session.as_ref().map(|s| s.version);
        let matches = match expect {
            Expect::Any => true,
            Expect::Empty => current.is_none(),
            Expect::Version(version) => current == Some(version),
        };
        if !matches {
            return Ok(Swap::Conflict(slot.session.clone()));
        }
        slot.last_version += 1;
        let version = slot.last_version;
        slot.session = Some(Versioned {
            version,
            tokens: tokens.clone(),
        });
        Ok(Swap::Stored(version))
    }

    async fn clear(&self) -> Result<(), StoreError> {
        self.slot().session = None;
        Ok(())
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`TokenStore`] as an object, so the session and the generated client need not be generic.
pub(crate) trait DynStore: Send + Sync {
    fn load(&self) -> BoxFuture<'_, Result<Option<Versioned>, StoreError>>;
    fn store<'a>(&'a self, expect: Expect, tokens: &'a TokenSet) -> BoxFuture<'a, Result<Swap, StoreError>>;
    fn try_lock(&self, ttl: Duration) -> BoxFuture<'_, Result<LockAttempt, StoreError>>;
    fn unlock(&self, lock: LockToken) -> BoxFuture<'_, Result<(), StoreError>>;
    fn versions(&self) -> Option<watch::Receiver<Version>>;
}

impl<S: TokenStore> DynStore for S {
    fn load(&self) -> BoxFuture<'_, Result<Option<Versioned>, StoreError>> {
        Box::pin(TokenStore::load(self))
    }

    fn store<'a>(&'a self, expect: Expect, tokens: &'a TokenSet) -> BoxFuture<'a, Result<Swap, StoreError>> {
        Box::pin(TokenStore::store(self, expect, tokens))
    }

    fn try_lock(&self, ttl: Duration) -> BoxFuture<'_, Result<LockAttempt, StoreError>> {
        Box::pin(TokenStore::try_lock(self, ttl))
    }

    fn unlock(&self, lock: LockToken) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(TokenStore::unlock(self, lock))
    }

    fn versions(&self) -> Option<watch::Receiver<Version>> {
        TokenStore::versions(self)
    }
}
