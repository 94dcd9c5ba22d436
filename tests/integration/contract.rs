//! What every token store must do with a logout, and every store with a lock with its lock, checked
//! the same way for each: the Redis and file modules call these with their stores, and the tests here
//! run them on `MemoryStore` and on the simulation's store.

use std::time::Duration;

use oauth_sdk::{
    Expect, ExposeSecret, LockAttempt, LockToken, Locked, MemoryStore, Swap, TokenSet, TokenStore, Versioned,
    version_floor,
};

use crate::sim_store::SimShared;
use crate::support::t0;

pub fn tokens(access: &str) -> TokenSet {
    TokenSet::new(access.into(), oauth_sdk::Grant::Password, t0())
        .with_refresh_token(format!("{access}-refresh").into())
}

pub fn live(stored: &Versioned) -> &TokenSet {
    stored.tokens.as_ref().expect("a live session, not a tombstone")
}

/// `writer` stores a session and logs it out; what `reader` (a second handle on the same session)
/// then finds. Returns the first write's version.
pub async fn log_out(writer: &impl TokenStore, reader: &impl TokenStore) -> (u64, Versioned) {
    let Swap::Stored(v1) = writer.store(Expect::Empty, &tokens("one")).await.unwrap() else {
        panic!("first write")
    };
    writer.clear().await.unwrap();
    let tombstone = reader.load().await.unwrap().expect("a tombstone, not nothing");
    assert!(tombstone.is_logged_out(), "the tokens are gone");
    assert!(tombstone.version > v1, "{} after {v1}", tombstone.version);
    (v1, tombstone)
}

/// After [`log_out`]: a writer that saw no session, or the version before the logout, cannot revive
/// the session; a fresh login replaces the tombstone; and logging out a session never written
/// leaves a tombstone from the clock's floor too (`empty` is a store of another session).
pub async fn the_tombstone_holds(
    reader: &impl TokenStore,
    writer: &impl TokenStore,
    (v1, tombstone): (u64, Versioned),
    empty: &impl TokenStore,
) {
    match reader.store(Expect::Empty, &tokens("revived")).await.unwrap() {
        Swap::Conflict(Some(current)) => {
            assert!(current.is_logged_out(), "the conflict carries the tombstone");
            assert_eq!(current.version, tombstone.version);
        }
        other => panic!("Expect::Empty must not match a tombstone, got {other:?}"),
    }
    assert!(matches!(
        reader.store(Expect::Version(v1), &tokens("stale")).await.unwrap(),
        Swap::Conflict(Some(Versioned { tokens: None, .. }))
    ));
    let Swap::Stored(v2) = reader.store(Expect::Any, &tokens("two")).await.unwrap() else {
        panic!("Expect::Any takes the place of a tombstone")
    };
    assert!(v2 > tombstone.version);
    let stored = writer.load().await.unwrap().unwrap();
    assert_eq!(live(&stored).access_token().expose_secret(), "two");

    let floor = version_floor();
    empty.clear().await.unwrap();
    let tombstone = empty.load().await.unwrap().expect("a tombstone");
    assert!(tombstone.is_logged_out());
    assert!(
        tombstone.version >= floor,
        "{} below the floor {floor}",
        tombstone.version
    );
}

/// `ada` and `bob`, two handles on one empty session of a store with a renewal lock: the lock is
/// taken with the read under the owner given, taken again by that owner (whose answer may have been
/// lost), kept by a write in conflict and released by a write that stores. Returns the lock `ada`
/// held, now released, and the one `bob` then took.
pub async fn the_lock_comes_with_the_read_and_goes_with_the_write(
    ada: &impl TokenStore,
    bob: &impl TokenStore,
) -> (LockToken, LockToken) {
    let ttl = Duration::from_secs(30);
    let (lock, bobs) = (LockToken::random(), LockToken::random());
    let Locked::Taken(Ok(None)) = ada.try_lock_and_load(&lock, ttl).await.unwrap() else {
        panic!("the lock, and nothing in the store")
    };
    // Busy for another owner, which reads nothing; taken again by its own.
    assert!(matches!(bob.try_lock_and_load(&bobs, ttl).await.unwrap(), Locked::Busy));
    assert!(matches!(
        ada.try_lock_and_load(&lock, ttl).await.unwrap(),
        Locked::Taken(Ok(None))
    ));
    assert_eq!(ada.try_lock(&lock, ttl).await.unwrap(), LockAttempt::Acquired);
    // An unlock in another owner's name leaves it.
    bob.unlock(&bobs).await.unwrap();
    assert_eq!(bob.try_lock(&bobs, ttl).await.unwrap(), LockAttempt::Busy);

    let Swap::Conflict(None) = ada
        .store_and_unlock(Expect::Version(version_floor()), &tokens("one"), &lock)
        .await
        .unwrap()
    else {
        panic!("a conflict with the empty store")
    };
    assert_eq!(bob.try_lock(&bobs, ttl).await.unwrap(), LockAttempt::Busy);
    let Swap::Stored(version) = ada
        .store_and_unlock(Expect::Empty, &tokens("one"), &lock)
        .await
        .unwrap()
    else {
        panic!("stored")
    };
    let Locked::Taken(Ok(Some(stored))) = bob.try_lock_and_load(&bobs, ttl).await.unwrap() else {
        panic!("the lock, released by the write, and the session read under it")
    };
    assert_eq!(stored.version, version);
    assert_eq!(live(&stored).access_token().expose_secret(), "one");
    (lock, bobs)
}

#[tokio::test]
async fn the_simulations_store_takes_the_lock_with_the_read_in_two_calls_or_one_step() {
    let shared = SimShared::new(0);
    the_lock_comes_with_the_read_and_goes_with_the_write(&shared.handle(), &shared.handle()).await;
    let shared = SimShared::new(0);
    the_lock_comes_with_the_read_and_goes_with_the_write(&shared.one_step(), &shared.one_step()).await;
}

#[tokio::test]
async fn memory_store_keeps_a_tombstone() {
    let store = MemoryStore::new();
    let logged_out = log_out(&store, &store).await;
    the_tombstone_holds(&store, &store, logged_out, &MemoryStore::new()).await;
}

#[tokio::test]
async fn the_simulations_store_keeps_a_tombstone() {
    let shared = SimShared::new(0);
    let (writer, reader) = (shared.handle(), shared.handle());
    let logged_out = log_out(&writer, &reader).await;
    the_tombstone_holds(&reader, &writer, logged_out, &SimShared::new(1).handle()).await;
}
