//! The typestate: a logged-out [`Client`] becomes an [`Authenticated`] one only by logging in or by
//! resuming a stored session, and only `Authenticated` has the protected operations.
//!
//! These are the runtime's halves of the generated `Client` and `Authenticated<S>`: the generated
//! types wrap them, add the spec's operations and logins, and dereference to them for the rest.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use crate::api::Api;
use crate::authorization_code::{AuthorizationRequest, PendingLogin, RequestParts};
use crate::config::{ClientBuilder, Config};
use crate::device::DeviceAuthorization;
use crate::error::{ConfigError, Error, SessionEnd};
use crate::executor::{Attempt, Executor};
use crate::loopback::LoopbackRedirect;
use crate::protocol::{GrantRequest, TokenFailure};
use crate::session::Session;
use crate::store::{DynStore, Expect, Swap, TokenStore, Version, Versioned};
use crate::token::{Grant, TokenSet};

/// A client that is not logged in: the generated `Client` of API `A` wraps it, and adds the
/// operations the spec makes public and the logins the spec declares.
///
/// Cheap to clone (everything is behind an `Arc`): log in from a clone to keep the client for a
/// retry after a failed login.
pub struct Client<A: Api> {
    api: A::Raw,
    http: reqwest::Client,
    config: Arc<Config>,
    timeout: Option<Duration>,
}

impl<A: Api> Clone for Client<A> {
    fn clone(&self) -> Self {
        Self {
            api: self.api.clone(),
            http: self.http.clone(),
            config: self.config.clone(),
            timeout: self.timeout,
        }
    }
}

impl<A: Api> fmt::Debug for Client<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.config.base_url)
            .finish_non_exhaustive()
    }
}

/// progenitor's client for a call's attempt, for the generated forwarders. A trait (exported only
/// through `__private`) rather than a method, so that the generated `Authenticated`'s `Deref` does
/// not offer it.
#[doc(hidden)]
pub trait ApiFor<A: Api> {
    /// The client for `attempt`.
    fn api_for(&self, attempt: Attempt) -> &A::Raw;
}

/// Logged out, there is no token to be rejected: the one client serves every attempt.
impl<A: Api> ApiFor<A> for Client<A> {
    fn api_for(&self, _: Attempt) -> &A::Raw {
        &self.api
    }
}

impl<A: Api, S: TokenStore> ApiFor<A> for Authenticated<A, S> {
    fn api_for(&self, attempt: Attempt) -> &A::Raw {
        self.0.apis.get(attempt)
    }
}

impl<A: Api> ClientBuilder<A> {
    /// Check the configuration and build the client.
    pub fn build(self) -> Result<A, Error> {
        let (config, http) = self.resolve(A::FLOWS)?;
        Ok(A::client(Client::new(http, Arc::new(config), None)))
    }
}

/// Logging in and resuming.
impl<A: Api> Client<A> {
    pub(crate) fn new(http: reqwest::Client, config: Arc<Config>, timeout: Option<Duration>) -> Self {
        let api = A::raw(&config.base_url, http.clone(), Executor::logged_out(A::access, timeout));
        Self {
            api,
            http,
            config,
            timeout,
        }
    }

    /// This client, with `timeout` as the total timeout of each of its calls instead of the HTTP
    /// client's (see [`ClientBuilder::api_timeout`]). A session logged in or resumed from it keeps it.
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        Self::new(self.http.clone(), self.config.clone(), Some(timeout))
    }

    /// The password grant; the generated `login_password` calls it when the spec declares the flow.
    #[doc(hidden)]
    pub async fn login_with_password<S: TokenStore>(
        self,
        store: S,
        username: &str,
        password: SecretString,
    ) -> Result<A::Authenticated<S>, Error> {
        let flow = self.config.flow(Grant::Password)?;
        let grant = GrantRequest::Password {
            username,
            password: &password,
            scopes: &flow.scopes,
        };
        self.login(store, &flow.token, grant).await
    }

    /// The client-credentials grant; the generated `login_client_credentials` calls it when the spec
    /// declares the flow.
    #[doc(hidden)]
    pub async fn login_with_client_credentials<S: TokenStore>(
        self,
        store: S,
        scopes: &[&str],
    ) -> Result<A::Authenticated<S>, Error> {
        let flow = self.config.flow(Grant::ClientCredentials)?;
        let scopes = scopes_or(scopes, &flow.scopes);
        self.login(store, &flow.token, GrantRequest::ClientCredentials { scopes: &scopes })
            .await
    }

    /// The first step of the authorization-code login: the URL to send the user to, asking for
    /// `scopes` (empty: the configured scopes, else every scope the spec's flow declares), and the
    /// pending login the callback needs. The generated `authorization_request` calls it.
    #[doc(hidden)]
    pub fn authorization_request(&self, redirect_uri: &str, scopes: &[&str]) -> Result<AuthorizationRequest, Error> {
        let flow = self.config.flow(Grant::AuthorizationCode)?;
        let endpoint = flow
            .authorization
            .as_ref()
            .ok_or(ConfigError::NoFlow("authorization code (no authorization URL)"))?;
        crate::authorization_code::request(RequestParts {
            endpoint,
            client_id: &self.config.tokens.client_id,
            redirect_uri,
            scopes: scopes_or(scopes, &flow.scopes),
            parameters: &[
                &self.config.tokens.parameters[..],
                &self.config.authorization_parameters[..],
            ]
            .concat(),
            allow_http: self.config.allow_http,
        })
    }

    /// The second step: check the callback (its URL or query) against the pending login, redeem
    /// its code, and start the session in `store`. The generated `login_authorization_code` calls it.
    #[doc(hidden)]
    pub async fn login_with_authorization_code<S: TokenStore>(
        self,
        store: S,
        pending: &PendingLogin,
        callback: &str,
    ) -> Result<A::Authenticated<S>, Error> {
        let flow = self.config.flow(Grant::AuthorizationCode)?;
        let code = crate::authorization_code::check_callback(pending, callback, self.config.issuer.as_deref())
            .map_err(Error::Authorization)?;
        tracing::debug!(redirect_uri = pending.redirect_uri(), "redeeming an authorization code");
        let grant = GrantRequest::AuthorizationCode {
            code: &code,
            redirect_uri: pending.redirect_uri(),
            verifier: pending.verifier(),
        };
        let mut tokens = self
            .config
            .tokens
            .token(&flow.token, grant, None)
            .await
            .map_err(login_error)?;
        if tokens.scopes().is_empty() {
            tokens = tokens.with_scopes(pending.scopes().to_vec());
        }
        let url = flow.token.clone();
        self.begin(store, &url, tokens).await
    }

    /// Both steps through a [`LoopbackRedirect`]: `open` is given the URL to send the user to (open
    /// a browser, or print it), and the callback is awaited for at most `timeout`.
    #[doc(hidden)]
    pub async fn login_with_loopback<S: TokenStore>(
        self,
        store: S,
        scopes: &[&str],
        timeout: Duration,
        open: impl FnOnce(&url::Url),
    ) -> Result<A::Authenticated<S>, Error> {
        let loopback = LoopbackRedirect::bind().await?;
        let request = self.authorization_request(loopback.redirect_uri(), scopes)?;
        open(request.url());
        let callback = loopback.wait(request.pending(), timeout).await?;
        self.login_with_authorization_code(store, request.pending(), &callback)
            .await
    }

    /// The first step of the device login (RFC 8628): the user code and verification URI to show.
    /// The generated `device_authorization` calls it.
    #[doc(hidden)]
    pub async fn device_authorization(&self, scopes: &[&str]) -> Result<DeviceAuthorization, Error> {
        let flow = self.config.flow(Grant::DeviceCode)?;
        let endpoint = flow.authorization.as_ref().ok_or(ConfigError::NoFlow(
            "device authorization (no device authorization URL)",
        ))?;
        let scopes = scopes_or(scopes, &flow.scopes);
        let response = self
            .config
            .tokens
            .device_authorization(endpoint, &scopes)
            .await
            .map_err(login_error)?;
        Ok(DeviceAuthorization::new(response, scopes))
    }

    /// The second step: poll until the user approves, and start the session in `store`. The
    /// generated `login_device` calls it.
    #[doc(hidden)]
    pub async fn login_with_device_code<S: TokenStore>(
        self,
        store: S,
        authorization: &DeviceAuthorization,
    ) -> Result<A::Authenticated<S>, Error> {
        let (tokens, url) = crate::device::poll(&self.config, authorization).await?;
        self.begin(store, &url, tokens).await
    }

    /// Ask the token endpoint at `url` for a session, and start it in `store`.
    async fn login<S: TokenStore>(
        &self,
        store: S,
        url: &url::Url,
        grant: GrantRequest<'_>,
    ) -> Result<A::Authenticated<S>, Error> {
        let tokens = self.config.tokens.token(url, grant, None).await.map_err(login_error)?;
        self.begin(store, url, tokens).await
    }

    /// Start a new session (a lineage of its own) with tokens the token endpoint at `url` issued.
    async fn begin<S: TokenStore>(
        &self,
        store: S,
        url: &url::Url,
        tokens: TokenSet,
    ) -> Result<A::Authenticated<S>, Error> {
        let tokens = tokens.first_of_lineage(&self.config.tokens.client_id, url.as_str());
        self.clone().start(store, tokens).await
    }

    /// Continue the session already in `store` (a restarted process needs no new login). A session
    /// whose token has expired is renewed on the first request.
    pub async fn resume<S: TokenStore>(self, store: S) -> Result<A::Authenticated<S>, Error> {
        let stored = TokenStore::load(&store).await?;
        let Some(Versioned {
            version,
            tokens: Some(tokens),
        }) = stored
        else {
            return Err(Error::NoSession);
        };
        self.config
            .check_origin(&tokens, crate::store::short_type_name::<S>())?;
        tracing::info!(version, "resumed a stored session");
        self.authenticated(Arc::new(store), version, tokens)
    }

    /// Start a session from tokens obtained by other means (another library's authorization-code
    /// login, a one-off script): they are written to `store`, replacing what it held, and renewed
    /// like any session. Give them [`Grant::External`](crate::Grant::External) unless they came
    /// from one of the grants the SDK knows; an external session is renewed with its refresh token
    /// (see `Grant::External` for where) and ends at expiry without one. Fails with
    /// [`ConfigError::NoFlow`](crate::ConfigError::NoFlow) if the session could be renewed but
    /// there is nowhere to renew it.
    #[doc(hidden)]
    pub async fn start_session<S: TokenStore>(self, store: S, tokens: TokenSet) -> Result<A::Authenticated<S>, Error> {
        if tokens.refresh_token().is_some() || tokens.grant() == crate::Grant::ClientCredentials {
            self.config.flow(tokens.grant())?;
        }
        self.start(store, tokens).await
    }

    async fn start<S: TokenStore>(self, store: S, tokens: TokenSet) -> Result<A::Authenticated<S>, Error> {
        tracing::info!(grant = ?tokens.grant(), scopes = ?tokens.scopes(), "logged in");
        let version = match TokenStore::store(&store, Expect::Any, &tokens).await? {
            Swap::Stored(version) => version,
            Swap::Conflict(_) => {
                return Err(Error::Store(crate::StoreError::new(
                    crate::store::short_type_name::<S>(),
                    "refused an unconditional write",
                )));
            }
        };
        self.authenticated(Arc::new(store), version, tokens)
    }

    fn authenticated<S: TokenStore>(
        self,
        store: Arc<S>,
        version: Version,
        tokens: TokenSet,
    ) -> Result<A::Authenticated<S>, Error> {
        let dyn_store: Arc<dyn DynStore> = store.clone();
        let session = Session::new(self.config.clone(), dyn_store, version, tokens)?;
        let apis = Attempts::new(&self.http, &session, self.timeout);
        Ok(A::authenticated(Authenticated(Arc::new(Parts {
            apis,
            http: self.http,
            session,
            store,
        }))))
    }
}

/// `scopes`, or when empty the flow's default.
fn scopes_or(scopes: &[&str], default: &[String]) -> Vec<String> {
    match scopes {
        [] => default.to_vec(),
        some => some.iter().map(|s| (*s).to_owned()).collect(),
    }
}

pub(crate) fn login_error(failure: TokenFailure) -> Error {
    match failure {
        TokenFailure::Refused(oauth) => Error::LoginRejected(oauth),
        TokenFailure::Transient(e) => Error::Transient(e),
        TokenFailure::Invalid(e) => Error::InvalidTokenResponse(e),
        TokenFailure::Config(e) => Error::Config(e),
    }
}

/// A logged-in session: the generated `Authenticated<S>` of API `A` wraps it, adds every operation
/// of the API, each sent with a valid access token, and dereferences to it for the session's methods.
///
/// There is no way to build one but the generated logins and [`Client::resume`]. Cheap to clone;
/// clones share the session, so concurrent requests from all of them renew the token once. `S` is
/// the [`TokenStore`] the session lives in.
pub struct Authenticated<A: Api, S: TokenStore>(Arc<Parts<A, S>>);

/// What a session's clients share, in one allocation: cloning one, as a registry does for every call,
/// touches one reference count.
struct Parts<A: Api, S: TokenStore> {
    apis: Attempts<A>,
    http: reqwest::Client,
    session: Arc<Session>,
    store: Arc<S>,
}

impl<A: Api, S: TokenStore> Clone for Authenticated<A, S> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<A: Api, S: TokenStore> fmt::Debug for Authenticated<A, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticated")
            .field("base_url", &self.0.session.config().base_url)
            .field("store", &std::any::type_name::<S>())
            .finish_non_exhaustive()
    }
}

/// The session.
impl<A: Api, S: TokenStore> Authenticated<A, S> {
    /// This session, with `timeout` as the total timeout of each of its calls instead of the HTTP
    /// client's (see [`ClientBuilder::api_timeout`]): `api.with_timeout(d).upload(..)` for one slow
    /// call. The session is shared: renewals in one are renewals in the other.
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        let parts = &self.0;
        Self(Arc::new(Parts {
            apis: Attempts::new(&parts.http, &parts.session, Some(timeout)),
            http: parts.http.clone(),
            session: parts.session.clone(),
            store: parts.store.clone(),
        }))
    }

    /// The store the session lives in.
    pub fn store(&self) -> &S {
        &self.0.store
    }

    /// The session's state, published whenever it changes: each renewed (or adopted) token set, and
    /// the end of the session. Subscribe to persist tokens elsewhere, or to log out the user
    /// interface when the session ends.
    pub fn session_changes(&self) -> tokio::sync::watch::Receiver<crate::SessionState> {
        self.0.session.changes()
    }

    /// Renew the session now, whatever its token's expiry: after the user's permissions changed, say.
    /// Concurrent requests join this renewal; another process's newer session in a shared store is
    /// adopted rather than refreshed again.
    pub async fn refresh(&self) -> Result<(), Error> {
        self.0.session.force_renewal().await.map(drop).map_err(Error::from)
    }

    /// Wait, for at most `timeout`, until a renewal under way (a call may have started one in the
    /// background) has ended, and a renewed session that the store could not take at the time has
    /// been written to it. Call it before a process exits: a renewed session that never reaches a
    /// shared store leaves there a refresh token the server has already rotated, which the next
    /// process to resume would present. Fails with a (transient) store error if the renewal or the
    /// write is still pending at the timeout.
    pub async fn flush(&self, timeout: Duration) -> Result<(), Error> {
        if self.0.session.flush(timeout).await {
            Ok(())
        } else {
            Err(Error::Store(crate::StoreError::new(
                crate::store::short_type_name::<S>(),
                "a renewal is under way, or a renewed session is still waiting to be written to the store",
            )))
        }
    }

    /// Whether renewed tokens wait to be written to the store, or a renewal is under way (whose
    /// result may have to wait so too).
    pub(crate) fn has_unsaved(&self) -> bool {
        self.0.session.has_unsaved() || self.0.session.is_renewing()
    }

    /// A handle that does not keep the session alive, but finds it again while anything else does.
    pub(crate) fn downgrade(&self) -> WeakAuthenticated<A, S> {
        WeakAuthenticated(Arc::downgrade(&self.0))
    }

    /// Counters since this process logged in or resumed the session.
    pub fn metrics(&self) -> crate::Metrics {
        self.0.session.counters().snapshot()
    }

    /// End the session: revoke the refresh token (or, without one, the access token) at the
    /// revocation URL if one is configured (RFC 7009), and clear the store. Clones of this client fail
    /// with [`SessionEnd::LoggedOut`] from then on.
    ///
    /// The local session ends whatever happens; an error says the server or the store could not be
    /// told. Logout wins over any renewal in flight: the store keeps a tombstone, which a renewal
    /// here or in another process cannot overwrite, and which ends the session in every process
    /// that looks at the store. If the store could not take the tombstone, the other processes go on
    /// with the session, and a renewal this process could not store yet is still written back for
    /// them (it replaces a refresh token spent here), unless a tombstone gets there first.
    pub async fn logout(self) -> Result<(), Error> {
        let held = self.0.session.tokens();
        self.0.session.end(SessionEnd::LoggedOut);
        // Another process may have renewed the session since this one last looked: the store's is
        // the newest, and the one to revoke.
        let stored = TokenStore::load(&*self.0.store)
            .await
            .ok()
            .flatten()
            .and_then(|s| s.tokens);
        let cleared = TokenStore::clear(&*self.0.store).await.map_err(Error::Store);
        if cleared.is_ok() {
            self.0.session.tombstone_stored();
        }
        let config = self.0.session.config();
        let mut revoked = Ok(());
        if let Some(url) = &config.revocation {
            let newest = stored.iter().filter(|stored| !stored.is_same(&held));
            for tokens in std::iter::once(&held).chain(newest) {
                let outcome = config.tokens.revoke_session(url, tokens).await;
                revoked = revoked.and(outcome.map_err(|failure| match failure {
                    TokenFailure::Refused(oauth) => Error::RevocationRefused(oauth),
                    other => login_error(other),
                }));
            }
        }
        revoked.and(cleared)
    }
}

/// An [`Authenticated`] that does not keep its session alive: a [`SessionRegistry`] keeps one of each
/// session it let go, so that a session still in use elsewhere is found again rather than resumed a
/// second time beside it.
///
/// [`SessionRegistry`]: crate::SessionRegistry
pub(crate) struct WeakAuthenticated<A: Api, S: TokenStore>(std::sync::Weak<Parts<A, S>>);

impl<A: Api, S: TokenStore> WeakAuthenticated<A, S> {
    /// The session, if anything still holds it.
    pub(crate) fn upgrade(&self) -> Option<Authenticated<A, S>> {
        self.0.upgrade().map(Authenticated)
    }

    /// Whether nothing holds the session any more.
    pub(crate) fn is_gone(&self) -> bool {
        self.0.strong_count() == 0
    }
}

/// A logged-in session's progenitor client, once per [`Attempt`] (they differ only in their
/// [`Executor`]).
pub(crate) struct Attempts<A: Api>([A::Raw; 3]);

impl<A: Api> Attempts<A> {
    pub(crate) fn new(http: &reqwest::Client, session: &Arc<Session>, timeout: Option<Duration>) -> Self {
        let base_url = &session.config().base_url;
        let client = |attempt| {
            let executor = Executor::logged_in(session.clone(), attempt, A::access, timeout);
            A::raw(base_url, http.clone(), executor)
        };
        Self([client(Attempt::First), client(Attempt::Only), client(Attempt::Resend)])
    }

    pub(crate) fn get(&self, attempt: Attempt) -> &A::Raw {
        &self.0[attempt as usize]
    }
}
