//! `cargo run --example service`
//!
//! A web service that calls the API on behalf of its signed-in users: an axum app whose users sign in
//! with the authorization-code flow, and whose handlers find each user's session in a
//! `SessionRegistry` backed by one `RedisSessions` handle (two Redis connections for every user),
//! with the sessions sealed at rest. The example starts the reference server, a `redis-server` of its
//! own and the app, then plays two users' browsers against it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use oauth_sdk::{Client, PendingLogin, RedisSessions, RedisStore, SealingKeys, SessionRegistry};
use taskboard_server::{DEMO_CLIENT, RedisServer};

/// What the app keeps per browser between the redirect and the callback: its web session.
#[derive(Default)]
struct WebSessions {
    /// By the `sid` cookie: who is signing in, and the pending login.
    pending: Mutex<HashMap<String, (String, PendingLogin)>>,
    /// By the `sid` cookie: who is signed in.
    signed_in: Mutex<HashMap<String, String>>,
}

struct App {
    client: Client,
    redirect_uri: String,
    users: SessionRegistry<Client, RedisStore>,
    web: WebSessions,
}

fn sid(headers: &HeaderMap) -> Option<String> {
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    cookies
        .split(';')
        .find_map(|c| c.trim().strip_prefix("sid="))
        .map(str::to_owned)
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, message.to_string()).into_response()
}

/// `GET /login?user=NAME`: start the authorization-code login, keep the pending login in the web
/// session, and send the browser to the authorization server.
async fn login(State(app): State<Arc<App>>, Query(query): Query<HashMap<String, String>>) -> Response {
    let Some(user) = query.get("user") else {
        return error(StatusCode::BAD_REQUEST, "who?");
    };
    let request = match app.client.authorization_request(&app.redirect_uri, &["tasks.read"]) {
        Ok(request) => request,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let (url, pending) = request.into_parts();
    let sid = uuid::Uuid::new_v4().simple().to_string();
    app.web
        .pending
        .lock()
        .unwrap()
        .insert(sid.clone(), (user.clone(), pending));
    let cookie = format!("sid={sid}; HttpOnly; SameSite=Lax; Path=/");
    ([(header::SET_COOKIE, cookie)], Redirect::to(url.as_str())).into_response()
}

/// `GET /callback?code=…&state=…`: finish the login, and hold the user's session in the registry.
async fn callback(State(app): State<Arc<App>>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let Some(sid) = sid(&headers) else {
        return error(StatusCode::BAD_REQUEST, "no web session");
    };
    let Some((user, pending)) = app.web.pending.lock().unwrap().remove(&sid) else {
        return error(StatusCode::BAD_REQUEST, "no login is pending");
    };
    let query = query.unwrap_or_default();
    let login = app
        .users
        .login(&user, |client, store| async move {
            client.login_authorization_code(store, &pending, &query).await
        })
        .await;
    match login {
        Ok(_) => {
            app.web.signed_in.lock().unwrap().insert(sid, user.clone());
            Redirect::to("/me").into_response()
        }
        Err(e) => error(StatusCode::UNAUTHORIZED, e),
    }
}

/// `GET /me`: call the API as the signed-in user.
async fn me(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let user = sid(&headers).and_then(|sid| app.web.signed_in.lock().unwrap().get(&sid).cloned());
    let Some(user) = user else {
        return error(StatusCode::UNAUTHORIZED, "sign in first");
    };
    let api = match app.users.get(&user).await {
        Ok(api) => api,
        Err(e) if e.is_session_ended() => return error(StatusCode::UNAUTHORIZED, "sign in again"),
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e),
    };
    match api.get_me().await {
        // The reference server signs every browser in as its demo user.
        Ok(me) => format!(
            "app user {user}: the API answers for {}, with scopes {}",
            me.username,
            me.scopes.join(" ")
        )
        .into_response(),
        Err(e) if e.is_transient() => error(StatusCode::SERVICE_UNAVAILABLE, e),
        Err(e) => error(StatusCode::BAD_GATEWAY, e),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let api_server = taskboard_server::start(taskboard_server::Config::default()).await?;
    let redis = RedisServer::start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let app_url = format!("http://{}", listener.local_addr()?);

    // One handle for every user's session; sealed with a key from the secret manager (here: fixed).
    let keys = SealingKeys::new("2026-12", &[7; 32])?;
    let redis_sessions = RedisSessions::connect(&redis.url(), "service")
        .await?
        .with_sealing(keys);
    let client = Client::builder(api_server.base_url(), DEMO_CLIENT.0)
        .client_secret(DEMO_CLIENT.1.into())
        .build()?;
    let users = SessionRegistry::new(client.clone(), move |user: &str| redis_sessions.session(user))
        .max_sessions(10_000)
        .idle_timeout(std::time::Duration::from_secs(15 * 60));
    let app = Arc::new(App {
        client,
        redirect_uri: format!("{app_url}/callback"),
        users,
        web: WebSessions::default(),
    });
    let router = axum::Router::new()
        .route("/login", get(login))
        .route("/callback", get(callback))
        .route("/me", get(me))
        .with_state(app.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    println!("The app is at {app_url}; the API at {}.", api_server.base_url());

    for user in ["ada", "grace"] {
        println!("{}", browse(&format!("{app_url}/login?user={user}")).await?);
    }
    println!(
        "Registry: {:?}; the authorization server redeemed {} codes.",
        app.users.metrics(),
        api_server.counters().authorization_code_grants
    );
    Ok(())
}

/// A browser: follows redirects, keeping the app's cookie, and returns the last page.
async fn browse(start: &str) -> Result<String, Box<dyn std::error::Error>> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let (mut url, mut cookie) = (start.to_owned(), None::<String>);
    for _ in 0..10 {
        let mut request = http.get(&url);
        if let Some(cookie) = &cookie {
            request = request.header(header::COOKIE, cookie);
        }
        let response = request.send().await?;
        if let Some(set) = response.headers().get(header::SET_COOKIE) {
            cookie = set.to_str()?.split(';').next().map(str::to_owned);
        }
        match response.headers().get(header::LOCATION) {
            Some(location) => {
                let location = location.to_str()?;
                url = reqwest::Url::parse(&url)?.join(location)?.to_string();
            }
            None => return Ok(response.text().await?),
        }
    }
    Err("too many redirects".into())
}
