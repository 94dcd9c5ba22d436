//! `cargo run -p oauth-sdk-runtime --example custom_store`
//!
//! A `TokenStore` of your own, here over a table in your application's database (a `Mutex` stands in
//! for the table and its row lock). Its contract is three calls: `load`, a compare-and-set `store`,
//! and a `clear` that leaves a tombstone; versions only grow. The locking and change feed are
//! optional: without them, sessions in different processes still never overwrite each other, they
//! just learn of each other's renewals later. The program then plays the contract through.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use oauth_sdk_runtime::{
    Expect, Grant, SecretString, StoreError, Swap, TokenSet, TokenStore, Version, Versioned, version_floor,
};

/// One session's row: what it holds and the highest version it ever gave out.
#[derive(Clone, Default)]
struct SessionRow {
    table: Arc<Mutex<Row>>,
}

#[derive(Default)]
struct Row {
    current: Option<Versioned>,
    last_version: Version,
}

impl Row {
    /// A version above every earlier one, even after the row was lost and recreated.
    fn next_version(&mut self) -> Version {
        self.last_version = (self.last_version + 1).max(version_floor());
        self.last_version
    }
}

impl SessionRow {
    fn row(&self) -> Result<std::sync::MutexGuard<'_, Row>, StoreError> {
        // A real database error would be `StoreError::new` (unavailable: it may pass).
        self.table
            .lock()
            .map_err(|_| StoreError::invalid("session table", "a writer panicked"))
    }
}

impl TokenStore for SessionRow {
    async fn load(&self) -> Result<Option<Versioned>, StoreError> {
        Ok(self.row()?.current.clone())
    }

    async fn store(&self, expect: Expect, tokens: &TokenSet) -> Result<Swap, StoreError> {
        let mut row = self.row()?;
        // The one compare-and-set decision every store shares.
        if !expect.matches(row.current.as_ref()) {
            return Ok(Swap::Conflict(row.current.clone()));
        }
        let version = row.next_version();
        row.current = Some(Versioned::live(version, tokens.clone()));
        Ok(Swap::Stored(version))
    }

    async fn clear(&self) -> Result<(), StoreError> {
        let mut row = self.row()?;
        let version = row.next_version();
        row.current = Some(Versioned { version, tokens: None });
        Ok(())
    }
}

fn session(access: &str) -> TokenSet {
    TokenSet::new(
        SecretString::from(access.to_owned()),
        Grant::Password,
        SystemTime::now(),
    )
    .with_refresh_token(SecretString::from(format!("{access}-refresh")))
    .with_lifetime(Duration::from_secs(3600))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), StoreError> {
    let store = SessionRow::default();

    let Swap::Stored(first) = store.store(Expect::Empty, &session("a")).await? else {
        unreachable!("an empty store takes a first session");
    };
    println!("logged in: version {first}");

    // Two processes renew from the same version: one wins, the other is told what is there now.
    let renewed = store.store(Expect::Version(first), &session("b")).await?;
    let late = store.store(Expect::Version(first), &session("c")).await?;
    match (renewed, late) {
        (Swap::Stored(second), Swap::Conflict(Some(current))) => {
            println!(
                "renewed: version {second}; the late writer sees version {}",
                current.version
            );
        }
        other => panic!("the contract is broken: {other:?}"),
    }

    // Logout leaves a tombstone, which no renewal in flight can overwrite.
    store.clear().await?;
    let revived = store.store(Expect::Empty, &session("d")).await?;
    let loaded = store.load().await?;
    println!(
        "logged out: the store holds a tombstone ({}), a late write is refused ({})",
        loaded.as_ref().is_some_and(Versioned::is_logged_out),
        matches!(revived, Swap::Conflict(_))
    );
    Ok(())
}
