//! Configuration: the builder and what it resolves to.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use secrecy::SecretString;
use url::Url;

use crate::backoff::Backoff;
use crate::clock::{Clock, SystemClock};
use crate::error::{ConfigError, Error};
use crate::protocol::{ClientAuth, Retry, TokenClient};
use crate::token::{Grant, TokenSet};

/// How long before expiry a token is renewed, by default.
///
/// The margin must cover the time between taking a token and the API checking it (a slow request, a
/// retry) plus clock drift between client and server. golang.org/x/oauth2 and the AWS SDKs use 10 s,
/// Azure and MSAL 5 minutes for hour-long tokens; 30 s covers a request at the end of a typical 30 s
/// timeout. It is never more than half a token's lifetime, so short-lived tokens are not renewed on
/// every request.
pub const DEFAULT_REFRESH_SKEW: Duration = Duration::from_secs(30);

/// The statuses that mean "this access token is no longer good", by default: 401 (RFC 6750) and 403
/// (what many APIs answer).
pub const DEFAULT_TRIGGER_STATUSES: [StatusCode; 2] = [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN];

/// How long an API call may take, and how long connecting may take, by default (progenitor's own
/// constructor uses the same). Applies to the HTTP client the builder makes; one given with
/// [`ClientBuilder::http_client`] keeps its own timeouts.
pub const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(15);

/// How long one token-endpoint request may take, by default.
pub const DEFAULT_REFRESH_TIMEOUT: Duration = Duration::from_secs(10);

/// How many times a token-endpoint request is tried when it fails transiently, by default.
pub const DEFAULT_REFRESH_ATTEMPTS: u32 = 3;

/// The wait before the first retry of a token-endpoint request, doubled for each further one, by
/// default.
pub const DEFAULT_REFRESH_BACKOFF: Duration = Duration::from_millis(200);

/// How long one token-store call around a renewal may take, by default: a store that takes longer
/// counts as unavailable. The renewal lock lives for this on top of the refresh's own time budget, so
/// a holder that is paused (a GC pause, SIGSTOP) past it notices and does not send the refresh.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a session does when its shared token store cannot be reached at renewal time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StoreOutage {
    /// Do not refresh: keep sending the access token while it is valid, and past its expiry fail
    /// with a transient [`Error::Store`] (`is_transient()`), until the store answers. The default:
    /// a process that refreshed alone could present a refresh token that another process, which can
    /// reach the store, has already spent.
    #[default]
    FailPastExpiry,
    /// Refresh from this process's copy of the session and write the result back when the store
    /// answers. Only for a deployment that knows it is the one process using the session.
    RefreshAlone,
}

/// An OAuth flow as the spec declares it (from `components.securitySchemes`).
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct SpecFlow {
    /// The flow's `tokenUrl`, possibly relative to the base URL.
    pub token_url: &'static str,
    /// The flow's `refreshUrl`, if any.
    pub refresh_url: Option<&'static str>,
    /// Where the user is sent to approve the login: the authorization-code flow's
    /// `authorizationUrl`, or the device flow's `deviceAuthorizationUrl`.
    pub authorization_url: Option<&'static str>,
    /// Every scope the flow declares.
    pub scopes: &'static [&'static str],
}

/// The flows the spec declares.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct SpecFlows {
    /// The resource-owner password flow.
    pub password: Option<SpecFlow>,
    /// The client-credentials flow.
    pub client_credentials: Option<SpecFlow>,
    /// The authorization-code flow (with PKCE); its token URL also renews sessions started from
    /// tokens obtained elsewhere.
    pub authorization_code: Option<SpecFlow>,
    /// The device authorization flow (RFC 8628; OpenAPI 3.2's `deviceAuthorization`, or declared in
    /// the generator's options).
    pub device: Option<SpecFlow>,
}

/// Where one grant's tokens come from and are renewed.
#[derive(Debug, Clone)]
pub(crate) struct FlowEndpoints {
    pub token: Url,
    pub refresh: Url,
    /// The authorization endpoint (authorization code) or device authorization endpoint.
    pub authorization: Option<Url>,
    pub scopes: Vec<String>,
}

/// What a [`ClientBuilder`] resolves to; shared by a client and its sessions.
#[derive(Debug)]
pub(crate) struct Config {
    pub base_url: String,
    pub tokens: TokenClient,
    pub password: Option<FlowEndpoints>,
    pub client_credentials: Option<FlowEndpoints>,
    pub authorization_code: Option<FlowEndpoints>,
    pub device: Option<FlowEndpoints>,
    /// Where sessions started from tokens obtained elsewhere are renewed.
    pub external: Option<FlowEndpoints>,
    /// The authorization server's issuer identifier, checked against a callback's `iss` (RFC 9207).
    pub issuer: Option<String>,
    /// Sent in the authorization request only (after the extra parameters).
    pub authorization_parameters: Vec<(String, String)>,
    /// Plain `http` allowed beyond loopback (redirect URIs are checked at login).
    pub allow_http: bool,
    pub revocation: Option<Url>,
    pub skew: Duration,
    /// Calls in the first half of the renewal window go on while the token is renewed.
    pub background_renewal: bool,
    pub triggers: Vec<StatusCode>,
    pub store_timeout: Duration,
    pub store_outage: StoreOutage,
}

impl Config {
    pub fn clock(&self) -> &dyn Clock {
        &*self.tokens.clock
    }

    /// The longest a refresh can take: every attempt at its timeout, and every backoff.
    pub fn refresh_budget(&self) -> Duration {
        let Retry { attempts, backoff } = self.tokens.retry;
        let waits = Backoff::new(backoff, Duration::MAX).take(attempts.saturating_sub(1) as usize);
        self.tokens.timeout.saturating_mul(attempts) + waits.sum::<Duration>()
    }

    /// The renewal lock's time to live: the store calls before the refresh, the refresh, and the
    /// write after it.
    pub fn lock_ttl(&self) -> Duration {
        self.refresh_budget() + self.store_timeout.saturating_mul(2)
    }

    /// Refuse a stored session issued to another client or by another token endpoint: two
    /// applications sharing a key prefix, or staging and production sharing a store.
    pub fn check_origin(&self, tokens: &TokenSet, store: &'static str) -> Result<(), crate::StoreError> {
        if let Some(client) = tokens.client_id()
            && client != self.tokens.client_id
        {
            return Err(crate::StoreError::invalid(
                store,
                format!(
                    "the stored session belongs to OAuth client `{client}`, not `{}`",
                    self.tokens.client_id
                ),
            ));
        }
        let expected = self.flow(tokens.grant()).ok().map(|flow| flow.token.as_str());
        if let (Some(endpoint), Some(expected)) = (tokens.token_endpoint(), expected)
            && endpoint != expected
        {
            return Err(crate::StoreError::invalid(
                store,
                format!("the stored session was issued by `{endpoint}`, not by `{expected}`"),
            ));
        }
        Ok(())
    }

    pub fn flow(&self, grant: Grant) -> Result<&FlowEndpoints, ConfigError> {
        let (flow, name) = match grant {
            Grant::Password => (&self.password, "password"),
            Grant::ClientCredentials => (&self.client_credentials, "client credentials"),
            Grant::AuthorizationCode => (&self.authorization_code, "authorization code"),
            Grant::DeviceCode => (&self.device, "device authorization"),
            Grant::External => (&self.external, "authorization code (or other)"),
        };
        flow.as_ref().ok_or(ConfigError::NoFlow(name))
    }
}

/// Builds a client of a generated API: the generated module's `Client::builder` starts one. Every
/// setting but the base URL and client id has a default; errors are reported by
/// [`build`](ClientBuilder::build).
///
/// ```ignore
/// // `my_api` is the module generated from your spec; `login_password` exists when the spec
/// // declares a password flow.
/// # async fn example() -> Result<(), oauth_sdk_runtime::Error> {
/// use my_api::Client;
/// use oauth_sdk_runtime::MemoryStore;
///
/// let client = Client::builder("https://taskboard.example.com", "my-app")
///     .client_secret("s3cret".into())
///     .build()?;
/// let api = client.login_password(MemoryStore::new(), "ada", "correct horse".into()).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct ClientBuilder<A> {
    api: std::marker::PhantomData<fn() -> A>,
    base_url: String,
    client_id: String,
    client_secret: Option<SecretString>,
    client_auth: ClientAuth,
    token_url: Option<String>,
    refresh_url: Option<String>,
    revocation_url: Option<String>,
    authorization_url: Option<String>,
    device_authorization_url: Option<String>,
    issuer: Option<String>,
    parameters: Vec<(String, String)>,
    authorization_parameters: Vec<(String, String)>,
    #[cfg(feature = "jwt")]
    client_assertion_key: Option<crate::assertion::ClientAssertionKey>,
    scopes: Option<Vec<String>>,
    http: Option<reqwest::Client>,
    token_http: Option<reqwest::ClientBuilder>,
    skew: Duration,
    background_renewal: bool,
    triggers: Vec<StatusCode>,
    clock: Arc<dyn Clock>,
    refresh_timeout: Duration,
    retry: Retry,
    allow_http: bool,
    store_timeout: Duration,
    store_outage: StoreOutage,
    api_timeout: Duration,
}

impl<A> ClientBuilder<A> {
    /// Start configuring a client for the API at `base_url`, as OAuth client `client_id`. The
    /// generated `Client::builder` calls this.
    pub fn new(base_url: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self {
            api: std::marker::PhantomData,
            base_url: base_url.into(),
            client_id: client_id.into(),
            api_timeout: DEFAULT_API_TIMEOUT,
            client_secret: None,
            client_auth: ClientAuth::default(),
            token_url: None,
            refresh_url: None,
            revocation_url: None,
            authorization_url: None,
            device_authorization_url: None,
            issuer: None,
            parameters: Vec::new(),
            authorization_parameters: Vec::new(),
            #[cfg(feature = "jwt")]
            client_assertion_key: None,
            scopes: None,
            http: None,
            token_http: None,
            skew: DEFAULT_REFRESH_SKEW,
            background_renewal: true,
            triggers: DEFAULT_TRIGGER_STATUSES.to_vec(),
            clock: Arc::new(SystemClock),
            refresh_timeout: DEFAULT_REFRESH_TIMEOUT,
            allow_http: false,
            store_timeout: DEFAULT_STORE_TIMEOUT,
            store_outage: StoreOutage::default(),
            retry: Retry {
                attempts: DEFAULT_REFRESH_ATTEMPTS,
                backoff: DEFAULT_REFRESH_BACKOFF,
            },
        }
    }

    /// The client secret. Default: none (a public client, which sends only its id).
    pub fn client_secret(mut self, secret: SecretString) -> Self {
        self.client_secret = Some(secret);
        self
    }

    /// How the client authenticates to the token endpoint. Default: [`ClientAuth::Basic`].
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.client_auth = auth;
        self
    }

    /// The private key that signs client assertions, for [`ClientAuth::PrivateKeyJwt`] (which
    /// [`build`](Self::build) refuses without it). Feature `jwt`.
    #[cfg(feature = "jwt")]
    pub fn client_assertion_key(mut self, key: crate::assertion::ClientAssertionKey) -> Self {
        self.client_assertion_key = Some(key);
        self
    }

    /// The token endpoint, for every grant. Default: the spec's `tokenUrl` for the flow, resolved
    /// against the base URL.
    pub fn token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url = Some(url.into());
        self
    }

    /// Where refresh tokens are redeemed. Default: the spec's `refreshUrl`, else the token URL.
    pub fn refresh_url(mut self, url: impl Into<String>) -> Self {
        self.refresh_url = Some(url.into());
        self
    }

    /// The RFC 7009 revocation endpoint that `logout` calls. Default: none (OpenAPI has no field
    /// for it), and `logout` only clears the store.
    pub fn revocation_url(mut self, url: impl Into<String>) -> Self {
        self.revocation_url = Some(url.into());
        self
    }

    /// The authorization endpoint the authorization-code login sends the user to. Default: the
    /// spec's `authorizationUrl`, resolved against the base URL.
    pub fn authorization_url(mut self, url: impl Into<String>) -> Self {
        self.authorization_url = Some(url.into());
        self
    }

    /// The device authorization endpoint (RFC 8628) the device login starts at. Default: the spec's
    /// `deviceAuthorizationUrl` (OpenAPI 3.2), or the one given to the generator.
    pub fn device_authorization_url(mut self, url: impl Into<String>) -> Self {
        self.device_authorization_url = Some(url.into());
        self
    }

    /// The authorization server's issuer identifier (its metadata's `issuer`). A callback whose `iss`
    /// parameter (RFC 9207) differs is refused. Default: none, and a callback's `iss` must then be
    /// on the authorization endpoint's origin. A server that sends no `iss` is not checked.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// A parameter sent with every token request (logins and renewals), authorization request and
    /// device authorization request: `audience` for Auth0, `resource` (RFC 8707), a provider's own.
    /// May be called more than once. A name the protocol itself uses (`grant_type`, `scope`,
    /// `client_id`...) is refused by [`build`](Self::build).
    pub fn extra_parameter(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.parameters.push((name.into(), value.into()));
        self
    }

    /// A parameter sent only in the authorization request (the URL the user is sent to): `prompt`,
    /// `login_hint`, Google's `access_type=offline`. Names the protocol uses are refused, as with
    /// [`extra_parameter`](Self::extra_parameter).
    pub fn authorization_parameter(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.authorization_parameters.push((name.into(), value.into()));
        self
    }

    /// The scopes a password login asks for. Default: every scope the spec's flow declares.
    pub fn scopes<I: IntoIterator<Item = T>, T: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// The `reqwest::Client` to send API calls with (share one across your application; set
    /// timeouts, proxies and TLS on it). Default: a client with [`DEFAULT_API_TIMEOUT`] as its
    /// connect and total timeouts (see [`api_timeout`](Self::api_timeout)). Token-endpoint requests
    /// do not use it: see [`token_http_client`](Self::token_http_client).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// The connect and total timeout of every API call, for the HTTP client the builder makes.
    /// Default: [`DEFAULT_API_TIMEOUT`]. A call that times out fails with [`Error::Request`], which is
    /// transient. Not used with [`http_client`](Self::http_client): that client keeps its own.
    pub fn api_timeout(mut self, timeout: Duration) -> Self {
        self.api_timeout = timeout;
        self
    }

    /// How to build the HTTP client for the token and revocation endpoints (for a proxy, a private
    /// CA, or a client certificate for mTLS client authentication). Default:
    /// `reqwest::Client::builder()`. Whatever is set here, the SDK then turns redirects off: a
    /// redirected token request would carry the password, the refresh token or the client secret to
    /// an address nobody configured, so a 3xx is an error naming the status.
    pub fn token_http_client(mut self, builder: reqwest::ClientBuilder) -> Self {
        self.token_http = Some(builder);
        self
    }

    /// How long one token-store call around a renewal may take before the store counts as
    /// unavailable. Default: [`DEFAULT_STORE_TIMEOUT`]. The renewal lock lives for the refresh's
    /// budget plus twice this.
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout;
        self
    }

    /// What to do when the shared store cannot be reached at renewal time. Default:
    /// [`StoreOutage::FailPastExpiry`].
    pub fn store_outage(mut self, policy: StoreOutage) -> Self {
        self.store_outage = policy;
        self
    }

    /// How long before expiry a token is renewed. Default: [`DEFAULT_REFRESH_SKEW`], never more than
    /// half a token's lifetime.
    pub fn refresh_skew(mut self, skew: Duration) -> Self {
        self.skew = skew;
        self
    }

    /// Whether a token due for renewal is renewed in the background. Default: yes. In the first
    /// half of the renewal window (the skew before expiry) the call that finds the token due is sent
    /// with the token, still good, and the renewal starts as soon as a call of the session has its
    /// answer or is dropped (with calls one at a time, that call's own); the calls that follow are
    /// sent with the token too until the renewal ends: no call waits for a renewal in the steady
    /// state. In the second half, and once expired, calls wait for it. With `false`, every call from
    /// the start of the window waits.
    ///
    /// Against a server that revokes the old access token when it renews (few do), a call sent with
    /// it that arrives after the renewal is rejected once and sent again with the new token,
    /// without another refresh. With calls one at a time, the call that found the token due is not
    /// among them (the renewal waits for its answer); with calls in flight side by side, any of them
    /// can be: `false` spares those calls the round trip, and makes every call at the start of the
    /// window wait for the renewal instead.
    pub fn background_renewal(mut self, background: bool) -> Self {
        self.background_renewal = background;
        self
    }

    /// The API statuses that mean the access token was rejected, and make the SDK renew it and send
    /// the request once more. Default: [`DEFAULT_TRIGGER_STATUSES`] (401 and 403). A 401 or 403 whose
    /// `WWW-Authenticate` says `insufficient_scope` never does (RFC 6750: it is about permissions).
    pub fn trigger_statuses(mut self, statuses: impl IntoIterator<Item = StatusCode>) -> Self {
        self.triggers = statuses.into_iter().collect();
        self
    }

    /// The clock expiry is measured with. Default: [`SystemClock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How long one token-endpoint request may take. Default: [`DEFAULT_REFRESH_TIMEOUT`].
    pub fn refresh_timeout(mut self, timeout: Duration) -> Self {
        self.refresh_timeout = timeout;
        self
    }

    /// How many times a token-endpoint request is tried when it fails transiently (connection error,
    /// timeout, 408, 429, 5xx), and the wait before the first retry, doubled for each further one.
    /// Default: [`DEFAULT_REFRESH_ATTEMPTS`] and [`DEFAULT_REFRESH_BACKOFF`].
    pub fn refresh_retries(mut self, attempts: u32, backoff: Duration) -> Self {
        self.retry = Retry {
            attempts: attempts.max(1),
            backoff,
        };
        self
    }

    /// Allow plain `http` for the API and the token, refresh and revocation URLs beyond the loopback
    /// interface. Default: `false` (https required, except for `127.0.0.0/8`, `::1` and `localhost`),
    /// since tokens and client secrets would cross the network unencrypted.
    pub fn danger_allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// Check the configuration against the spec's `flows`: the settings, and the HTTP client for
    /// API calls ([`build`](Self::build) makes the client from them).
    pub(crate) fn resolve(self, flows: SpecFlows) -> Result<(Config, reqwest::Client), Error> {
        let allow_http = self.allow_http;
        let base = parse_url("base URL", &self.base_url, None, allow_http)?;
        let resolve = |what, url: &str| parse_url(what, url, Some(&base), allow_http);
        let token_override = self.token_url.as_deref().map(|u| resolve("token URL", u)).transpose()?;
        let refresh_override = self
            .refresh_url
            .as_deref()
            .map(|u| resolve("refresh URL", u))
            .transpose()?;
        let revocation = self
            .revocation_url
            .as_deref()
            .map(|u| resolve("revocation URL", u))
            .transpose()?;
        if let Some(bad) = self.triggers.iter().find(|s| !s.is_client_error()) {
            return Err(Error::Config(ConfigError::TriggerNotClientError(*bad)));
        }
        if let Some((name, _)) = self
            .parameters
            .iter()
            .chain(&self.authorization_parameters)
            .find(|(name, _)| RESERVED_PARAMETERS.contains(&name.as_str()))
        {
            return Err(Error::Config(ConfigError::ReservedParameter(name.clone())));
        }
        let authorization_override = self
            .authorization_url
            .as_deref()
            .map(|u| resolve("authorization URL", u))
            .transpose()?;
        let device_override = self
            .device_authorization_url
            .as_deref()
            .map(|u| resolve("device authorization URL", u))
            .transpose()?;

        let flow = |spec: Option<SpecFlow>, authorization: Option<&Url>| -> Result<Option<FlowEndpoints>, Error> {
            let token = match (&token_override, spec) {
                (Some(url), _) => url.clone(),
                (None, Some(spec)) => resolve("the spec's tokenUrl", spec.token_url)?,
                (None, None) => return Ok(None),
            };
            let refresh = match (&refresh_override, spec.and_then(|s| s.refresh_url)) {
                (Some(url), _) => url.clone(),
                (None, Some(url)) => resolve("the spec's refreshUrl", url)?,
                (None, None) => token.clone(),
            };
            let scopes = match &self.scopes {
                Some(scopes) => scopes.clone(),
                None => spec
                    .map(|s| s.scopes.iter().map(|&s| s.to_owned()).collect())
                    .unwrap_or_default(),
            };
            let authorization = match (authorization, spec.and_then(|s| s.authorization_url)) {
                (Some(url), _) => Some(url.clone()),
                (None, Some(url)) => Some(resolve("the spec's authorization URL", url)?),
                (None, None) => None,
            };
            Ok(Some(FlowEndpoints {
                token,
                refresh,
                authorization,
                scopes,
            }))
        };
        let password = flow(flows.password, None)?;
        let client_credentials = flow(flows.client_credentials, None)?;
        let authorization_code = flow(flows.authorization_code, authorization_override.as_ref())?;
        let device = flow(flows.device, device_override.as_ref())?;
        // Tokens from elsewhere renew where the spec's authorization-code flow says, else where
        // another of its flows does: one server, one token endpoint.
        let external = flow(
            flows
                .authorization_code
                .or(flows.device)
                .or(flows.password)
                .or(flows.client_credentials),
            None,
        )?;

        let http = match self.http {
            Some(http) => http,
            None => reqwest::Client::builder()
                .connect_timeout(self.api_timeout)
                .timeout(self.api_timeout)
                .build()
                .map_err(|e| http_client_error("API's", e))?,
        };
        let token_http = self
            .token_http
            .unwrap_or_default()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| http_client_error("token endpoint's", e))?;
        #[cfg(feature = "jwt")]
        let signer = match self.client_auth {
            ClientAuth::PrivateKeyJwt => Some(crate::assertion::Signer::PrivateKey(
                self.client_assertion_key.ok_or_else(|| {
                    ConfigError::ClientAssertion(
                        "ClientAuth::PrivateKeyJwt needs the key: set ClientBuilder::client_assertion_key".into(),
                    )
                })?,
            )),
            ClientAuth::ClientSecretJwt => Some(crate::assertion::Signer::Secret(
                self.client_secret.clone().ok_or_else(|| {
                    ConfigError::ClientAssertion(
                        "ClientAuth::ClientSecretJwt signs with the client secret: set ClientBuilder::client_secret"
                            .into(),
                    )
                })?,
            )),
            _ => None,
        };
        let base_url = base.as_str().trim_end_matches('/').to_owned();
        let config = Config {
            base_url,
            tokens: TokenClient {
                http: token_http,
                client_id: self.client_id,
                client_secret: self.client_secret,
                client_auth: self.client_auth,
                #[cfg(feature = "jwt")]
                signer,
                parameters: self.parameters,
                timeout: self.refresh_timeout,
                retry: self.retry,
                clock: self.clock,
            },
            password,
            client_credentials,
            authorization_code,
            device,
            external,
            issuer: self.issuer,
            authorization_parameters: self.authorization_parameters,
            allow_http,
            revocation,
            skew: self.skew,
            background_renewal: self.background_renewal,
            triggers: self.triggers,
            store_timeout: self.store_timeout,
            store_outage: self.store_outage,
        };
        Ok((config, http))
    }
}

/// The parameters the SDK itself sends: [`ClientBuilder::extra_parameter`] cannot override them.
const RESERVED_PARAMETERS: &[&str] = &[
    "grant_type",
    "response_type",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "scope",
    "state",
    "redirect_uri",
    "code",
    "code_verifier",
    "code_challenge",
    "code_challenge_method",
    "username",
    "password",
    "refresh_token",
    "device_code",
    // They would change where or how the callback arrives.
    "response_mode",
    "request",
    "request_uri",
];

fn http_client_error(which: &'static str, error: reqwest::Error) -> Error {
    Error::Config(ConfigError::HttpClient {
        which,
        source: Arc::new(error),
    })
}

fn parse_url(what: &'static str, url: &str, base: Option<&Url>, allow_http: bool) -> Result<Url, Error> {
    let parsed = match base {
        Some(base) => base.join(url),
        None => Url::parse(url),
    };
    let url = || url.to_owned();
    let parsed = parsed.map_err(|source| ConfigError::InvalidUrl {
        what,
        url: url(),
        source,
    })?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if allow_http || is_loopback(&parsed) => Ok(parsed),
        "http" => Err(Error::Config(ConfigError::PlainHttp { what, url: url() })),
        _ => Err(Error::Config(ConfigError::NotHttp { what, url: url() })),
    }
}

/// `127.0.0.0/8`, `::1` and `localhost`: traffic that never leaves the machine.
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}
