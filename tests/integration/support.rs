//! A mock API and token endpoint (httpmock), and a client pointed at them with a clock the test moves.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use httpmock::Method::{GET, POST};
use httpmock::{Mock, MockServer};
use oauth_sdk::{Authenticated, Client, ManualClock, MemoryStore, TokenStore};
use serde_json::{Value, json};

pub const CLIENT_ID: &str = "test-client";
pub const CLIENT_SECRET: &str = "test-secret";
pub const USERNAME: &str = "ada";
pub const PASSWORD: &str = "correct horse";
/// Token lifetime the mock token endpoint gives, in seconds.
pub const LIFETIME: u64 = 3600;

/// Wait until `done` holds, looking every 5 ms; fail the test with `what` after 30 s.
pub async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// When every test's clock starts.
pub fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

pub struct Harness {
    pub server: MockServer,
    pub clock: ManualClock,
    pub store: MemoryStore,
}

impl Harness {
    pub async fn start() -> Self {
        Self {
            server: MockServer::start_async().await,
            clock: ManualClock::new(t0()),
            store: MemoryStore::new(),
        }
    }

    /// A client for the mock server, with fast retries so transient-failure tests do not wait.
    pub fn client(&self) -> Client {
        self.builder().build().expect("valid configuration")
    }

    pub fn builder(&self) -> oauth_sdk::ClientBuilder<oauth_sdk::Client> {
        Client::builder(self.server.base_url(), CLIENT_ID)
            .client_secret(CLIENT_SECRET.into())
            .clock(self.clock.clone())
            .refresh_retries(3, Duration::from_millis(1))
    }

    /// The token endpoint answers the password grant with `at-1` / `rt-1`.
    pub async fn mock_password_grant(&self) -> Mock<'_> {
        self.server
            .mock_async(|when, then| {
                when.method(POST)
                    .path("/oauth/token")
                    .form_urlencoded_tuple("grant_type", "password")
                    .form_urlencoded_tuple("username", USERNAME)
                    .form_urlencoded_tuple("password", PASSWORD);
                then.status(200).json_body(token_body("at-1", Some("rt-1")));
            })
            .await
    }

    /// The token endpoint redeems refresh token `from` for the pair `access` / `refresh`.
    pub async fn mock_refresh(&self, from: &str, access: &str, refresh: &str) -> Mock<'_> {
        self.mock_slow_refresh(from, access, refresh, Duration::ZERO).await
    }

    /// The same, answering after `delay`.
    pub async fn mock_slow_refresh(&self, from: &str, access: &str, refresh: &str, delay: Duration) -> Mock<'_> {
        let body = token_body(access, Some(refresh));
        self.server
            .mock_async(move |when, then| {
                when.method(POST)
                    .path("/oauth/token")
                    .form_urlencoded_tuple("grant_type", "refresh_token")
                    .form_urlencoded_tuple("refresh_token", from);
                then.status(200).json_body(body).delay(delay);
            })
            .await
    }

    /// `GET /v1/me` answers `status` to `token` (200 with a user when `status` is 200).
    pub async fn mock_me(&self, token: &str, status: u16) -> Mock<'_> {
        let bearer = format!("Bearer {token}");
        self.server
            .mock_async(move |when, then| {
                when.method(GET).path("/v1/me").header("authorization", bearer);
                let then = then.status(status).header("content-type", "application/json");
                if status == 200 {
                    then.json_body(user());
                } else {
                    then.json_body(json!({"error": "invalid_token", "message": "token expired"}));
                }
            })
            .await
    }

    /// Log in with the password grant (`at-1` / `rt-1`), then forget the login mock.
    pub async fn logged_in(&self) -> Authenticated<MemoryStore> {
        self.logged_in_to(self.store.clone()).await
    }

    /// The same, with the session in `store`.
    pub async fn logged_in_to<S: TokenStore>(&self, store: S) -> Authenticated<S> {
        let login = self.mock_password_grant().await;
        let api = self
            .client()
            .login_password(store, USERNAME, PASSWORD.into())
            .await
            .expect("login succeeds");
        login.assert_calls_async(1).await;
        login.delete_async().await;
        api
    }
}

/// Tokens obtained as another library would: a password grant sent to the reference server's token
/// endpoint with plain reqwest. Its JSON answer.
pub async fn token_answer_from_elsewhere(server: &taskboard_server::Server) -> Value {
    use taskboard_server::{DEMO_CLIENT, DEMO_USER};
    reqwest::Client::new()
        .post(format!("{}/oauth/token", server.base_url()))
        .basic_auth(DEMO_CLIENT.0, Some(DEMO_CLIENT.1))
        .form(&[
            ("grant_type", "password"),
            ("username", DEMO_USER.0),
            ("password", DEMO_USER.1),
        ])
        .send()
        .await
        .expect("the token endpoint answers")
        .json()
        .await
        .expect("a token response")
}

pub fn token_body(access: &str, refresh: Option<&str>) -> Value {
    let mut body = json!({"access_token": access, "token_type": "Bearer", "expires_in": LIFETIME, "scope": "tasks.read tasks.write"});
    if let Some(refresh) = refresh {
        body["refresh_token"] = json!(refresh);
    }
    body
}

pub fn user() -> Value {
    json!({"id": "u-1", "username": USERNAME, "scopes": ["tasks.read", "tasks.write"]})
}

/// Everything `tracing` writes on this thread while it lives, as text.
pub struct Traces {
    written: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    _default: tracing::subscriber::DefaultGuard,
    _second: tracing::Dispatch,
}

impl Traces {
    /// Capture events at `level` and above, and each span's close (with its fields).
    pub fn capture(level: tracing::Level) -> Self {
        let written = std::sync::Arc::<std::sync::Mutex<Vec<u8>>>::default();
        let sink = written.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_writer(move || Writer(sink.clone()))
            .finish();
        let default = tracing::subscriber::set_default(subscriber);
        // With one scoped subscriber alive, tracing-core computes a callsite's interest from the
        // default of whichever thread hits it first: another test's thread, with no subscriber, would
        // cache "never" for the SDK's callsites. A second registered subscriber makes it ask each.
        let second = tracing::Dispatch::new(tracing_subscriber::fmt().with_writer(std::io::sink).finish());
        tracing::callsite::rebuild_interest_cache();
        Self {
            written,
            _default: default,
            _second: second,
        }
    }

    /// What was written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.written.lock().unwrap()).into_owned()
    }
}

struct Writer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The reference server with `config`, and a client of it as its demo OAuth client, configured
/// further by `configure`.
pub async fn reference_with(
    config: taskboard_server::Config,
    configure: impl FnOnce(oauth_sdk::ClientBuilder<Client>) -> oauth_sdk::ClientBuilder<Client>,
) -> (taskboard_server::Server, Client) {
    let server = taskboard_server::start(config)
        .await
        .expect("the reference server starts");
    let builder = Client::builder(server.base_url(), taskboard_server::DEMO_CLIENT.0)
        .client_secret(taskboard_server::DEMO_CLIENT.1.into());
    let client = configure(builder).build().expect("a valid configuration");
    (server, client)
}

/// [`reference_with`] (tokens living the default hour), the client on a clock the test moves, from
/// now: [`into_renewal_window`] makes its token due.
pub async fn reference_on_clock(config: taskboard_server::Config) -> (taskboard_server::Server, Client, ManualClock) {
    let clock = ManualClock::new(SystemTime::now());
    let (server, client) = reference_with(config, |builder| builder.clock(clock.clone())).await;
    (server, client, clock)
}

/// Move the clock of [`reference_on_clock`] a quarter into the renewal window of a token it issued:
/// due, and not close enough to expiry for a call to wait for the renewal.
pub fn into_renewal_window(clock: &ManualClock) {
    let lifetime = taskboard_server::Config::default().access_token_lifetime;
    clock.advance(lifetime - oauth_sdk::DEFAULT_REFRESH_SKEW * 3 / 4);
}

/// [`reference_with`], the client as it is.
pub async fn reference(config: taskboard_server::Config) -> (taskboard_server::Server, Client) {
    reference_with(config, |builder| builder).await
}
