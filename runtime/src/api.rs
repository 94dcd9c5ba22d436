//! What generated code tells the runtime about its API: the [`Api`] trait, which the generator
//! implements for each generated `Client`, and the spec facts it carries.
//!
//! Nothing here is meant to be implemented or called by hand: `oauth-sdk-codegen` writes the impls,
//! and their shape follows the generator's version.

use crate::client::{Authenticated, Client};
use crate::config::SpecFlows;
use crate::executor::{Access, Executor};
use crate::store::TokenStore;

/// One generated API. `oauth-sdk-codegen` implements it for the generated `Client`, so that the
/// runtime's [`ClientBuilder`](crate::ClientBuilder), logins and resume hand back the generated
/// types, whose methods are the spec's operations.
pub trait Api: Clone + Sized + Send + Sync + 'static {
    /// progenitor's client for the API, whose every request goes through the runtime's hooks.
    #[doc(hidden)]
    type Raw: Clone + Send + Sync + 'static;

    /// The generated logged-in client, which dereferences to the runtime's.
    #[doc(hidden)]
    type Authenticated<S: TokenStore>: Clone + Send + Sync + std::ops::Deref<Target = Authenticated<Self, S>>;

    /// The OAuth flows the spec declares.
    #[doc(hidden)]
    const FLOWS: SpecFlows;

    /// How the operation `operation_id` is authorised, from the spec's `security`.
    #[doc(hidden)]
    fn access(operation_id: &str) -> Access;

    /// progenitor's client for `base_url`, sending with `http` through `executor`.
    #[doc(hidden)]
    fn raw(base_url: &str, http: reqwest::Client, executor: Executor) -> Self::Raw;

    /// The generated client around the runtime's.
    #[doc(hidden)]
    fn client(client: Client<Self>) -> Self;

    /// The runtime's client inside the generated one.
    #[doc(hidden)]
    fn runtime(&self) -> &Client<Self>;

    /// The generated logged-in client around the runtime's.
    #[doc(hidden)]
    fn authenticated<S: TokenStore>(session: Authenticated<Self, S>) -> Self::Authenticated<S>;
}
