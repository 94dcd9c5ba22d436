//! The logins that go through a browser or another device, end to end against the reference server:
//! authorization code with PKCE (two steps, and the loopback redirect) and device authorization. Every
//! failure is a typed error, and stores no session.

use std::time::Duration;

use oauth_sdk::{AuthorizationError, Client, Error, Grant, MemoryStore, PendingLogin, TokenStore};
use taskboard_server::{Config, DEMO_CLIENT, DEMO_USER, Server};

use crate::support::reference;

/// A redirect URI the reference server accepts (a loopback one, on any port).
const REDIRECT_URI: &str = "http://127.0.0.1:8765/callback";

/// The browser: follow the authorization URL to the redirect it answers with, and return where it
/// redirects to (the callback URL), without going there.
async fn browse(url: &oauth_sdk::Url) -> String {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = browser
        .get(url.clone())
        .send()
        .await
        .expect("the authorization endpoint answers");
    assert_eq!(response.status(), 302, "{:?}", response.text().await);
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// The pending login as a web server keeps it in its session: serialised, then read back.
fn through_a_session(pending: &PendingLogin) -> PendingLogin {
    serde_json::from_str(&serde_json::to_string(pending).unwrap()).unwrap()
}

/// The pending login with one field of its stored form changed.
fn tampered(pending: &PendingLogin, field: &str, value: &str) -> PendingLogin {
    let mut stored = serde_json::to_value(pending).unwrap();
    stored[field] = value.into();
    serde_json::from_value(stored).unwrap()
}

async fn nothing_stored(store: &MemoryStore) {
    assert!(store.load().await.unwrap().is_none(), "a failed login stored a session");
}

#[tokio::test]
async fn the_authorization_code_login_works_across_a_process_boundary_and_renews() {
    let (server, client) = reference(Config::default()).await;
    let request = client.authorization_request(REDIRECT_URI, &["tasks.read"]).unwrap();
    let (url, pending) = request.into_parts();
    let pending = through_a_session(&pending);
    let callback = browse(&url).await;
    assert!(callback.starts_with(REDIRECT_URI), "{callback}");

    let store = MemoryStore::new();
    let api = client
        .login_authorization_code(store.clone(), &pending, &callback)
        .await
        .expect("logged in");
    assert_eq!(api.get_me().await.unwrap().username, DEMO_USER.0);
    let stored = store.load().await.unwrap().and_then(|v| v.tokens).expect("stored");
    assert_eq!(stored.grant(), Grant::AuthorizationCode);
    assert_eq!(stored.scopes(), ["tasks.read"]);
    api.refresh().await.expect("renewed with its refresh token");
    assert_eq!(api.get_me().await.unwrap().username, DEMO_USER.0);
    let counters = server.counters();
    assert_eq!(
        (counters.authorization_code_grants, counters.refreshes_accepted),
        (1, 1)
    );
}

#[tokio::test]
async fn the_loopback_login_hands_out_the_url_and_takes_the_callback() {
    let (server, client) = reference(Config::default()).await;
    let browser = std::sync::Arc::new(tokio::sync::Mutex::new(None));
    let opened = browser.clone();
    let api = client
        .login_authorization_code_loopback(MemoryStore::new(), &[], move |url| {
            // The user's browser: follows the redirect to the loopback listener, shows its page.
            let url = url.clone();
            let page = tokio::spawn(async move { reqwest::get(url).await?.text().await });
            *opened.try_lock().unwrap() = Some(page);
        })
        .await
        .expect("logged in");
    assert_eq!(api.get_me().await.unwrap().username, DEMO_USER.0);
    let page = browser
        .lock()
        .await
        .take()
        .expect("the URL was opened")
        .await
        .unwrap()
        .unwrap();
    assert!(page.contains("close this window"), "{page}");
    assert_eq!(server.counters().authorization_code_grants, 1);
}

#[tokio::test]
async fn a_callback_with_another_state_is_refused_before_its_code_is_used() {
    let (server, client) = reference(Config::default()).await;
    let (url, pending) = client.authorization_request(REDIRECT_URI, &[]).unwrap().into_parts();
    let callback = browse(&url).await;
    // An attacker's callback: its own code, the victim's pending login.
    let (other_url, _) = client.authorization_request(REDIRECT_URI, &[]).unwrap().into_parts();
    let forged = browse(&other_url).await;
    let store = MemoryStore::new();
    for wrong in [forged.as_str(), &callback.replace("state=", "state=x"), "code=abc"] {
        let outcome = client
            .clone()
            .login_authorization_code(store.clone(), &pending, wrong)
            .await;
        assert!(
            matches!(outcome, Err(Error::Authorization(AuthorizationError::StateMismatch))),
            "{outcome:?}"
        );
    }
    nothing_stored(&store).await;
    assert_eq!(server.counters().authorization_code_grants, 0, "no code was presented");
}

#[tokio::test]
async fn a_wrong_verifier_a_replayed_code_and_another_redirect_uri_are_refused() {
    let (server, client) = reference(Config::default()).await;
    let store = MemoryStore::new();
    let refused = |outcome: Result<_, Error>| match outcome {
        Err(Error::LoginRejected(oauth)) => assert_eq!(oauth.code(), "invalid_grant"),
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("logged in"),
    };

    // A verifier that is not the one the challenge was made from.
    let (url, pending) = client.authorization_request(REDIRECT_URI, &[]).unwrap().into_parts();
    let callback = browse(&url).await;
    let wrong = tampered(
        &pending,
        "verifier",
        "a-verifier-that-is-long-enough-but-not-the-right-one",
    );
    refused(
        client
            .clone()
            .login_authorization_code(store.clone(), &wrong, &callback)
            .await,
    );

    // Another redirect URI than the authorization request named.
    let (url, pending) = client.authorization_request(REDIRECT_URI, &[]).unwrap().into_parts();
    let callback = browse(&url).await;
    let elsewhere = tampered(&pending, "redirect_uri", "http://127.0.0.1:8766/callback");
    refused(
        client
            .clone()
            .login_authorization_code(store.clone(), &elsewhere, &callback)
            .await,
    );
    nothing_stored(&store).await;

    // A code used twice: refused, and the session it was redeemed for is revoked with it.
    let (url, pending) = client.authorization_request(REDIRECT_URI, &[]).unwrap().into_parts();
    let callback = browse(&url).await;
    let first = client
        .clone()
        .login_authorization_code(MemoryStore::new(), &pending, &callback)
        .await
        .expect("the first use logs in");
    refused(
        client
            .clone()
            .login_authorization_code(store.clone(), &pending, &callback)
            .await,
    );
    nothing_stored(&store).await;
    assert_eq!(server.counters().codes_replayed, 1);
    assert!(matches!(first.get_me().await, Err(Error::SessionEnded(_))));
}

#[tokio::test]
async fn a_declined_login_and_a_callback_from_another_issuer_are_typed_errors() {
    let (server, client) = reference(Config::default()).await;
    let store = MemoryStore::new();
    server.deny_logins(true);
    let (url, pending) = client.authorization_request(REDIRECT_URI, &[]).unwrap().into_parts();
    let callback = browse(&url).await;
    match client
        .clone()
        .login_authorization_code(store.clone(), &pending, &callback)
        .await
    {
        Err(Error::Authorization(AuthorizationError::Denied { code, .. })) => assert_eq!(code, "access_denied"),
        other => panic!("{other:?}"),
    }
    server.deny_logins(false);

    let expecting_another = Client::builder(server.base_url(), DEMO_CLIENT.0)
        .client_secret(DEMO_CLIENT.1.into())
        .issuer("https://id.example.com")
        .build()
        .unwrap();
    let (url, pending) = expecting_another
        .authorization_request(REDIRECT_URI, &[])
        .unwrap()
        .into_parts();
    let callback = browse(&url).await;
    match expecting_another
        .login_authorization_code(store.clone(), &pending, &callback)
        .await
    {
        Err(Error::Authorization(AuthorizationError::IssuerMismatch { expected, received })) => {
            assert_eq!(
                (expected.as_str(), received),
                ("https://id.example.com", server.base_url())
            );
        }
        other => panic!("{other:?}"),
    }
    nothing_stored(&store).await;
    assert_eq!(server.counters().authorization_code_grants, 0);
}

fn device_config(change: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config {
        device_interval: Duration::from_secs(1),
        ..Config::default()
    };
    change(&mut config);
    config
}

/// The user, on their phone: waits until the device has polled, opens the verification page with the
/// code, and approves or declines.
async fn user(server: &Server, complete_uri: Option<&str>, approve: bool) {
    while server.counters().device_code_grants < 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let uri = complete_uri.expect("the server gives a complete verification URI");
    let uri = if approve {
        uri.to_owned()
    } else {
        format!("{uri}&deny=1")
    };
    let page = reqwest::get(uri).await.unwrap();
    assert_eq!(page.status(), 200, "{:?}", page.text().await);
}

#[tokio::test]
async fn the_device_login_polls_until_the_user_approves() {
    let (server, client) = reference(device_config(|_| {})).await;
    let authorization = client
        .device_authorization(&["tasks.read"])
        .await
        .expect("a device code");
    assert_eq!(authorization.user_code().len(), 8);
    assert!(authorization.verification_uri().ends_with("/device"));
    assert!(format!("{authorization:?}").contains("device_code: \"[REDACTED]\""));
    let unknown = reqwest::get(format!("{}?user_code=NOPE", authorization.verification_uri())).await;
    assert_eq!(unknown.unwrap().status(), 404);

    let store = MemoryStore::new();
    let (outcome, ()) = tokio::join!(
        client.login_device(store.clone(), &authorization),
        user(&server, authorization.verification_uri_complete(), true),
    );
    let api = outcome.expect("logged in");
    assert_eq!(api.get_me().await.unwrap().username, DEMO_USER.0);
    let stored = store.load().await.unwrap().and_then(|v| v.tokens).expect("stored");
    assert_eq!(stored.grant(), Grant::DeviceCode);
    assert_eq!(stored.scopes(), ["tasks.read"]);
    api.refresh().await.expect("renewed with its refresh token");
    let counters = server.counters();
    assert!(counters.device_code_grants >= 2, "it polled until approved");
    assert_eq!(counters.device_slow_downs, 0, "it polled no faster than asked");
}

#[tokio::test]
async fn slow_down_lengthens_the_interval_for_good() {
    let (server, client) = reference(device_config(|c| c.device_slow_down = true)).await;
    let authorization = client.device_authorization(&[]).await.unwrap();
    let (outcome, ()) = tokio::join!(
        client.login_device(MemoryStore::new(), &authorization),
        user(&server, authorization.verification_uri_complete(), true),
    );
    outcome.expect("logged in after slowing down");
    // One `slow_down`, for the first poll; a poll sooner than the lengthened interval would get
    // another.
    assert_eq!(server.counters().device_slow_downs, 1);
}

#[tokio::test]
async fn a_declined_or_expired_device_login_is_a_typed_error_and_stores_nothing() {
    let (server, client) = reference(device_config(|_| {})).await;
    let store = MemoryStore::new();
    let authorization = client.device_authorization(&[]).await.unwrap();
    let (outcome, ()) = tokio::join!(
        client.clone().login_device(store.clone(), &authorization),
        user(&server, authorization.verification_uri_complete(), false),
    );
    match outcome {
        Err(Error::Authorization(AuthorizationError::Denied { code, .. })) => assert_eq!(code, "access_denied"),
        other => panic!("{other:?}"),
    }

    let (_expiring, client) = reference(device_config(|c| c.device_code_lifetime = Duration::from_secs(2))).await;
    let authorization = client.device_authorization(&[]).await.unwrap();
    let outcome = client.login_device(store.clone(), &authorization).await;
    assert!(
        matches!(outcome, Err(Error::Authorization(AuthorizationError::Expired))),
        "{outcome:?}"
    );
    nothing_stored(&store).await;
}

#[tokio::test]
async fn dropping_the_device_login_stops_its_polling() {
    let (server, client) = reference(device_config(|_| {})).await;
    let authorization = client.device_authorization(&[]).await.unwrap();
    let store = MemoryStore::new();
    let login = client.login_device(store.clone(), &authorization);
    // Given up after its first poll at the latest (the interval is one second).
    let gave_up = tokio::time::timeout(Duration::from_millis(1500), login).await;
    assert!(
        gave_up.is_err(),
        "the user never approved, so the login cannot have finished"
    );
    let polls = server.counters().device_code_grants;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // A poll in flight as the login was dropped may still reach the server; polling on would have
    // sent at least two more in three seconds.
    let after = server.counters().device_code_grants;
    assert!(
        after <= polls + 1,
        "a dropped login went on polling: {polls} polls, then {after}"
    );
    nothing_stored(&store).await;
}
