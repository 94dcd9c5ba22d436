//! The Taskboard reference server: `openapi/taskboard.json` implemented for real, in memory, behind an
//! OAuth 2 authorisation server that behaves like production ones over time.
//!
//! - `POST /oauth/token`: the password, client-credentials and refresh-token grants (form body; client
//!   authentication by HTTP Basic or in the body), with RFC 6749 error bodies.
//! - Refresh-token rotation (on by default) with reuse detection: presenting a refresh token that was
//!   already rotated revokes its whole token family (RFC 9700 section 4.14.2).
//! - A refresh revokes the previous access token at once (on by default), so requests still in flight
//!   with it are rejected.
//! - `GET /oauth/authorize`: the authorization-code flow with PKCE (S256 only), auto-approving the
//!   demo user; codes are single-use (a replay revokes what the code was redeemed for), short-lived,
//!   and bound to the client, the redirect URI and the challenge. Callbacks carry `iss` (RFC 9207).
//! - `POST /oauth/device_authorization` and the verification page `GET /device` (RFC 8628), with
//!   `slow_down` for polls sooner than the interval.
//! - `POST /oauth/revoke` (RFC 7009).
//! - Rejected tokens get 403 (or 401) with `WWW-Authenticate: Bearer error="invalid_token"`; a missing
//!   scope gets 403 with `error="insufficient_scope"`.
//! - [`Counters`] that tests and benchmarks read.
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! let server = taskboard_server::start(taskboard_server::Config::default()).await?;
//! println!("listening on {}", server.base_url());
//! # Ok(()) }
//! ```

// Handlers answer `Result<Response, Response>`, the axum idiom: the error is itself the response.
#![allow(clippy::result_large_err)]

mod api;
mod authorize;
mod counters;
mod oauth;
mod redis_cluster;
mod redis_server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use tokio::sync::oneshot;

pub use counters::{CounterSnapshot, Counters};
pub use redis_cluster::{RedisCluster, RedisSentinel, SENTINEL_MASTER};
pub use redis_server::{RedisServer, TLS_USER};

/// The demo user every server knows.
pub const DEMO_USER: (&str, &str) = ("ada", "correct horse battery staple");
/// The demo OAuth client every server knows (a confidential client).
pub const DEMO_CLIENT: (&str, &str) = ("taskboard-cli", "taskboard-cli-secret");

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct Config {
    /// Access-token lifetime. Default: 1 hour.
    pub access_token_lifetime: Duration,
    /// Issue a new refresh token at every refresh and treat reuse of an old one as theft. Default: on.
    pub rotate_refresh_tokens: bool,
    /// A refresh revokes the family's previous access tokens at once. Default: on.
    pub revoke_access_on_refresh: bool,
    /// The status for a missing, invalid or expired access token. Default: 403 (401 by configuration).
    pub invalid_token_status: StatusCode,
    /// Users: name and password.
    pub users: Vec<(String, String)>,
    /// OAuth clients: id and secret (`None`: a public client).
    pub clients: Vec<(String, Option<String>)>,
    /// Simulated network latency before each API request is handled (and its token checked).
    /// Default: none.
    pub api_latency: Option<Duration>,
    /// Simulated latency of the token endpoint (real authorisation servers take tens to hundreds of
    /// milliseconds). Default: none.
    pub token_latency: Option<Duration>,
    /// Redirect URIs the authorization endpoint accepts: exactly, or a loopback one on any port (RFC
    /// 8252). Default: `http://127.0.0.1/callback`.
    pub redirect_uris: Vec<String>,
    /// How long an authorization code can be redeemed. Default: 60 s.
    pub authorization_code_lifetime: Duration,
    /// How long a device code lasts. Default: 10 minutes.
    pub device_code_lifetime: Duration,
    /// The device-code polling interval the server asks for (whole seconds). Default: 5 s.
    pub device_interval: Duration,
    /// Answer the first poll of every device code with `slow_down`. Default: off.
    pub device_slow_down: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            access_token_lifetime: Duration::from_secs(3600),
            rotate_refresh_tokens: true,
            revoke_access_on_refresh: true,
            invalid_token_status: StatusCode::FORBIDDEN,
            users: vec![(DEMO_USER.0.into(), DEMO_USER.1.into())],
            clients: vec![(DEMO_CLIENT.0.into(), Some(DEMO_CLIENT.1.into()))],
            api_latency: None,
            token_latency: None,
            redirect_uris: vec!["http://127.0.0.1/callback".into()],
            authorization_code_lifetime: Duration::from_secs(60),
            device_code_lifetime: Duration::from_secs(600),
            device_interval: Duration::from_secs(5),
            device_slow_down: false,
        }
    }
}

/// Shared by every handler.
pub(crate) struct State {
    pub config: Config,
    pub counters: Counters,
    pub tokens: oauth::Registry,
    pub data: api::Data,
    /// While set, the token endpoint answers every request with a redirect to `/oauth/elsewhere`.
    pub redirect_token_requests: std::sync::atomic::AtomicBool,
    /// While set, the user declines every authorization-code and device login.
    pub deny_logins: std::sync::atomic::AtomicBool,
    /// Authorization codes and device codes.
    pub grants: authorize::Grants,
    /// The server's issuer identifier: its base URL.
    pub issuer: String,
}

/// A server running on a loopback port; stops when dropped.
pub struct Server {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
}

impl Server {
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it has counted so far.
    pub fn counters(&self) -> CounterSnapshot {
        self.state.counters.snapshot()
    }

    /// Whether `refresh_token` is one the server would redeem now: issued, not yet rotated, and in a
    /// family that is not revoked.
    pub fn refresh_token_is_current(&self, refresh_token: &str) -> bool {
        self.state.tokens.refresh_token_is_current(refresh_token)
    }

    /// Make the user decline every authorization-code login (the callback carries
    /// `error=access_denied`) and device login (polls get `access_denied`), or stop.
    pub fn deny_logins(&self, deny: bool) {
        self.state.deny_logins.store(deny, std::sync::atomic::Ordering::Relaxed);
    }

    /// Make the token endpoint answer `307 Temporary Redirect` to `/oauth/elsewhere` (a misconfigured
    /// proxy, or an attacker), or stop. `/oauth/elsewhere` counts what reaches it
    /// ([`CounterSnapshot::redirected_token_requests`]) and refuses it.
    pub fn redirect_token_requests(&self, redirect: bool) {
        self.state
            .redirect_token_requests
            .store(redirect, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Start a server on `127.0.0.1`, on a port the system chooses.
pub async fn start(config: Config) -> std::io::Result<Server> {
    start_on(config, "127.0.0.1:0".parse().expect("a valid address")).await
}

/// Start a server on `addr`.
pub async fn start_on(config: Config, addr: SocketAddr) -> std::io::Result<Server> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(State {
        config,
        counters: Counters::default(),
        tokens: oauth::Registry::default(),
        data: api::Data::default(),
        redirect_token_requests: std::sync::atomic::AtomicBool::new(false),
        deny_logins: std::sync::atomic::AtomicBool::new(false),
        grants: authorize::Grants::default(),
        issuer: format!("http://{addr}"),
    });
    let router = axum::Router::new()
        .merge(oauth::routes())
        .merge(authorize::routes())
        .merge(api::routes(state.clone()))
        .with_state(state.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(Server {
        addr,
        state,
        stop: Some(stop),
    })
}
