//! The Taskboard SDK: a typed client for the Taskboard API, generated from `openapi/taskboard.json`
//! by `build.rs`, running on [`oauth_sdk_runtime`].
//!
//! This crate is one user of the two SDK crates, as yours would be: `oauth-sdk-runtime` in
//! `[dependencies]`, `oauth-sdk-codegen` in `[build-dependencies]`, a two-line `build.rs` and the one
//! line below that includes the generated module. It re-exports the runtime, so its own users need
//! this crate alone.
//!
//! - **Typestate.** A [`Client`] can call only the operations the spec makes public, and log in.
//!   Logging in (or resuming a stored session) gives an [`Authenticated`], which has every operation.
//!   Calling a protected operation before login does not compile.
//! - **Tokens renewed once, ahead of expiry**, however many requests and processes need it; a refresh
//!   token is never presented twice. See [`oauth_sdk_runtime`] for the session, the stores and the
//!   errors.
//!
//! ```no_run
//! use oauth_sdk::{Client, MemoryStore};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::builder("https://taskboard.example.com", "my-app").build()?;
//! println!("{}", client.clone().health().await?.status); // public: no login needed
//!
//! let api = client.login_password(MemoryStore::new(), "ada", "correct horse".into()).await?;
//! let me = api.get_me().await?;
//! println!("logged in as {}", me.username);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

oauth_sdk_runtime::include_api!(
    /// The generated Taskboard API: its `Client`, `Authenticated<S>`, `types` and `scopes`.
    pub api,
    "taskboard.rs"
);

pub use api::{Authenticated, Client, scopes, types};
#[doc(no_inline)]
pub use oauth_sdk_runtime::*;

/// The client types are cheap to clone and can be shared across tasks and threads.
#[allow(dead_code)]
fn _assert_impls() {
    fn send_sync_clone<T: Send + Sync + Clone>() {}
    send_sync_clone::<Client>();
    send_sync_clone::<Authenticated<MemoryStore>>();
}

/// The README's examples are compiled as doctests, so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
