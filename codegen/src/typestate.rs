//! The generated module's own types: `Client` and `Authenticated<S>`, each wrapping the runtime's
//! half, the runtime's `Api` trait for them, and progenitor's `ClientHooks` routed to the runtime's
//! executor. This part is the same for every spec; the operations and logins on these types come
//! from [`forwarders`](crate::forwarders) and [`security`](crate::security).
//!
//! progenitor's own client is kept in a private module (`progenitor`): users see its `types`, never
//! the client itself, whose methods would bypass the typestate.

use proc_macro2::TokenStream;
use quote::quote;

/// The types, the `Api` impl and the hooks, around progenitor's output `progenitor`.
pub fn emit(title: &str, progenitor: &syn::File) -> TokenStream {
    let client_doc = format!(
        "A client of {title} that is not logged in: the operations the spec makes public, the \
         logins it declares, and [`resume`](Self::resume)."
    );
    let authenticated_doc = format!(
        "A logged-in client of {title}: every operation, each sent with a valid access token. The \
         session's own methods (`refresh`, `flush`, `metrics`, `session_changes`, `store`) are those \
         of [`oauth_sdk_runtime::Authenticated`], which it dereferences to."
    );
    quote! {
        /// progenitor's client and types, generated from the spec; its client is reached only through
        /// [`Client`] and [`Authenticated`].
        #[allow(clippy::all, unused_imports, dead_code, missing_docs, unreachable_patterns)]
        mod progenitor {
            #progenitor
        }

        pub use self::progenitor::types;
        #[allow(unused_imports)]
        use ::oauth_sdk_runtime::{ByteStream, ResponseValue};

        #[doc = #client_doc]
        ///
        /// Cheap to clone: log in from a clone to keep the client for a retry after a failed login.
        #[derive(Clone, Debug)]
        pub struct Client {
            inner: ::oauth_sdk_runtime::Client<Client>,
        }

        #[doc = #authenticated_doc]
        ///
        /// There is no way to build one but the logins and [`Client::resume`]. Cheap to clone; clones
        /// share the session, so concurrent requests from all of them renew the token once. `S` is the
        /// [`TokenStore`](::oauth_sdk_runtime::TokenStore) the session lives in.
        pub struct Authenticated<S: ::oauth_sdk_runtime::TokenStore> {
            inner: ::oauth_sdk_runtime::Authenticated<Client, S>,
        }

        impl<S: ::oauth_sdk_runtime::TokenStore> ::std::clone::Clone for Authenticated<S> {
            fn clone(&self) -> Self {
                Self { inner: self.inner.clone() }
            }
        }

        impl<S: ::oauth_sdk_runtime::TokenStore> ::std::fmt::Debug for Authenticated<S> {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Debug::fmt(&self.inner, f)
            }
        }

        impl<S: ::oauth_sdk_runtime::TokenStore> ::std::ops::Deref for Authenticated<S> {
            type Target = ::oauth_sdk_runtime::Authenticated<Client, S>;
            fn deref(&self) -> &Self::Target {
                &self.inner
            }
        }

        /// Configuring, and resuming a stored session.
        impl Client {
            /// Start configuring a client for the API at `base_url`, as OAuth client `client_id`.
            pub fn builder(
                base_url: impl ::std::convert::Into<::std::string::String>,
                client_id: impl ::std::convert::Into<::std::string::String>,
            ) -> ::oauth_sdk_runtime::ClientBuilder<Self> {
                ::oauth_sdk_runtime::ClientBuilder::new(base_url, client_id)
            }

            /// This client, with `timeout` as the total timeout of each of its calls instead of the
            /// HTTP client's (`ClientBuilder::api_timeout`).
            pub fn with_timeout(&self, timeout: ::std::time::Duration) -> Self {
                Self { inner: self.inner.with_timeout(timeout) }
            }

            /// Continue the session already in `store` (a restarted process needs no new login). A
            /// session whose token has expired is renewed on the first request. Fails with
            /// [`Error::NoSession`](::oauth_sdk_runtime::Error::NoSession) if the store holds none.
            pub async fn resume<S: ::oauth_sdk_runtime::TokenStore>(
                self,
                store: S,
            ) -> ::std::result::Result<Authenticated<S>, ::oauth_sdk_runtime::Error> {
                self.inner.resume(store).await
            }

            /// Start a session from tokens obtained by other means (another library's
            /// authorization-code login, a one-off script), written to `store` and renewed like any
            /// session. Give them `Grant::External` unless they came from a grant the SDK knows: an
            /// external session is renewed with its refresh token at `ClientBuilder::token_url`, else
            /// at the token URL of the spec's authorization-code flow (or another flow it declares).
            pub async fn start_session<S: ::oauth_sdk_runtime::TokenStore>(
                self,
                store: S,
                tokens: ::oauth_sdk_runtime::TokenSet,
            ) -> ::std::result::Result<Authenticated<S>, ::oauth_sdk_runtime::Error> {
                self.inner.start_session(store, tokens).await
            }
        }

        /// A call's timeout, and ending the session.
        impl<S: ::oauth_sdk_runtime::TokenStore> Authenticated<S> {
            /// This session, with `timeout` as the total timeout of each of its calls instead of the
            /// HTTP client's: `api.with_timeout(d).operation(..)` for one slow call. The session is
            /// shared: a renewal in one is a renewal in both.
            pub fn with_timeout(&self, timeout: ::std::time::Duration) -> Self {
                Self { inner: self.inner.with_timeout(timeout) }
            }

            /// End the session: see [`oauth_sdk_runtime::Authenticated::logout`].
            pub async fn logout(self) -> ::std::result::Result<(), ::oauth_sdk_runtime::Error> {
                self.inner.logout().await
            }
        }

        impl ::oauth_sdk_runtime::Api for Client {
            type Raw = progenitor::Client;
            type Authenticated<S: ::oauth_sdk_runtime::TokenStore> = Authenticated<S>;
            const FLOWS: ::oauth_sdk_runtime::__private::SpecFlows = SPEC_FLOWS;

            fn access(operation_id: &str) -> ::oauth_sdk_runtime::__private::Access {
                operation_access(operation_id)
            }

            fn raw(
                base_url: &str,
                http: ::oauth_sdk_runtime::__private::reqwest::Client,
                executor: ::oauth_sdk_runtime::__private::Executor,
            ) -> progenitor::Client {
                progenitor::Client::new_with_client(base_url, http, executor)
            }

            fn client(inner: ::oauth_sdk_runtime::Client<Self>) -> Self {
                Self { inner }
            }

            fn runtime(&self) -> &::oauth_sdk_runtime::Client<Self> {
                &self.inner
            }

            fn authenticated<S: ::oauth_sdk_runtime::TokenStore>(
                inner: ::oauth_sdk_runtime::Authenticated<Self, S>,
            ) -> Authenticated<S> {
                Authenticated { inner }
            }
        }

        /// Every request progenitor's client makes goes through the runtime's executor.
        impl ::oauth_sdk_runtime::__private::progenitor_client::ClientHooks<::oauth_sdk_runtime::__private::Executor>
            for progenitor::Client
        {
            async fn pre<E>(
                &self,
                request: &mut ::oauth_sdk_runtime::__private::reqwest::Request,
                info: &::oauth_sdk_runtime::__private::progenitor_client::OperationInfo,
            ) -> ::std::result::Result<(), ::oauth_sdk_runtime::__private::progenitor_client::Error<E>> {
                use ::oauth_sdk_runtime::__private::progenitor_client::ClientInfo;
                ::oauth_sdk_runtime::__private::pre(self.inner(), request, info).await
            }

            fn exec(
                &self,
                request: ::oauth_sdk_runtime::__private::reqwest::Request,
                info: &::oauth_sdk_runtime::__private::progenitor_client::OperationInfo,
            ) -> impl ::std::future::Future<
                Output = ::oauth_sdk_runtime::__private::reqwest::Result<::oauth_sdk_runtime::__private::reqwest::Response>,
            > {
                use ::oauth_sdk_runtime::__private::progenitor_client::ClientInfo;
                ::oauth_sdk_runtime::__private::exec(self.inner(), self.client(), request, info)
            }

            async fn post<E>(
                &self,
                result: &::oauth_sdk_runtime::__private::reqwest::Result<::oauth_sdk_runtime::__private::reqwest::Response>,
                _: &::oauth_sdk_runtime::__private::progenitor_client::OperationInfo,
            ) -> ::std::result::Result<(), ::oauth_sdk_runtime::__private::progenitor_client::Error<E>> {
                ::oauth_sdk_runtime::__private::post(result).await
            }
        }
    }
}
