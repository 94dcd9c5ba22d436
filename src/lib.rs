//! A typed client for an OAuth 2-protected HTTP API, generated from its OpenAPI spec.
//!
//! `build.rs` generates one method per operation of the spec in `openapi/` (with
//! [progenitor](https://docs.rs/progenitor)); this crate adds the session around them:
//!
//! - **Typestate.** A [`Client`] can call only the operations the spec makes public, and log in.
//!   Logging in (or resuming a stored session) gives an [`Authenticated`], which has every operation.
//!   Calling a protected operation before login does not compile.
//! - **Tokens renewed once, ahead of expiry.** A token within [`DEFAULT_REFRESH_SKEW`] of expiry is
//!   renewed before the request is sent; a request the API rejects for its token (401/403, but not
//!   `insufficient_scope`) is renewed and sent once more. However many requests need a renewal at
//!   once, there is one, and a refresh token is never presented twice.
//! - **Stores.** The session lives in a [`TokenStore`]: [`MemoryStore`] by default. Writes are
//!   compare-and-set, so a writer with an older session never overwrites a newer one.
//! - **Typed errors.** [`Error`] tells a session that is over ([`Error::SessionEnded`]) from a token
//!   endpoint that is down for now ([`Error::Transient`]) from the API's own answer ([`Error::Api`]).
//! - **Secrets stay secret.** Passwords, client secrets and tokens are [`secrecy`] types; no `Debug`,
//!   `Display`, error or log line shows them.
//!
//! ```ignore
//! // The operations (`health`, `get_me`) are those of the demo spec in `openapi/`.
//! use oauth_sdk::{Client, MemoryStore};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::builder("https://taskboard.example.com", "my-app").build()?;
//! println!("{}", client.health().await?.status); // public: no login needed
//!
//! let api = client.login_password(MemoryStore::new(), "ada", "correct horse".into()).await?;
//! let me = api.get_me().await?;
//! println!("logged in as {}", me.username);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

/// The generated API: progenitor's client and types, the spec's security, and the forwarders that
/// put each operation on [`Client`] or [`Authenticated`]. Nothing hand-written lives here.
#[allow(missing_docs, dead_code, clippy::all)]
mod api {
    include!(concat!(env!("OUT_DIR"), "/api.rs"));
}

mod backoff;
mod challenge;
mod client;
mod clock;
mod config;
mod error;
mod executor;
mod metrics;
mod protocol;
mod response;
mod session;
mod store;
mod token;

pub use api::{scopes, types};
pub use client::{Authenticated, Client};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    ClientAuth, ClientBuilder, DEFAULT_REFRESH_ATTEMPTS, DEFAULT_REFRESH_BACKOFF, DEFAULT_REFRESH_SKEW,
    DEFAULT_REFRESH_TIMEOUT, DEFAULT_STORE_TIMEOUT, DEFAULT_TRIGGER_STATUSES, StoreOutage,
};
pub use error::{Error, InvalidTokenResponse, OAuthError, SessionEnd, TransientError};
pub use metrics::{Metrics, SessionState};
pub use progenitor_client::{ByteStream, ResponseValue};
pub use protocol::MAX_TOKEN_RESPONSE_BYTES;
/// The `redis` crate the [`RedisStore`] is built on, for [`RedisStore::connect_with`].
#[cfg(feature = "redis")]
pub use redis;
pub use secrecy::{ExposeSecret, SecretString};
pub use store::{
    Expect, FileStore, LockAttempt, LockToken, MemoryStore, StoreError, Swap, TokenStore, Version, Versioned,
    version_floor,
};
#[cfg(feature = "redis")]
pub use store::{RedisOptions, RedisStore};
pub use token::{Grant, TokenSet};

/// Entry points for the fuzz targets in `fuzz/` (cargo-fuzz builds with `--cfg fuzzing`); not API.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    use std::time::SystemTime;

    /// Parse a token endpoint's answer; a token set must be usable in a header.
    pub fn token_response(status: u16, body: &[u8]) {
        let Ok(status) = reqwest::StatusCode::from_u16(status) else {
            return;
        };
        if let Ok(tokens) =
            crate::protocol::parse_token_response(status, body, SystemTime::UNIX_EPOCH, crate::Grant::Password)
        {
            let token = secrecy::ExposeSecret::expose_secret(tokens.access_token());
            assert!(!token.is_empty() && reqwest::header::HeaderValue::from_str(token).is_ok());
        }
    }

    /// Parse a `WWW-Authenticate` header value.
    pub fn www_authenticate(header: &[u8]) {
        let _ = crate::challenge::parse(&String::from_utf8_lossy(header));
        let _ = crate::challenge::is_insufficient_scope(std::iter::once(header));
    }
}

/// The client types are cheap to clone and can be shared across tasks and threads.
#[allow(dead_code)]
fn _assert_impls() {
    fn send_sync_clone<T: Send + Sync + Clone>() {}
    send_sync_clone::<Client>();
    send_sync_clone::<Authenticated<MemoryStore>>();
    send_sync_clone::<MemoryStore>();
    #[cfg(feature = "redis")]
    send_sync_clone::<RedisStore>();
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Error<()>>();
}

/// The README's examples (written for the demo spec) are compiled as doctests, so they cannot drift
/// from the API.
#[cfg(all(doctest, demo_spec))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
