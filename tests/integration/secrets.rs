//! Known sentinel secrets go through every path; no `Debug`, `Display`, error or trace may show them.

use std::time::Duration;

use httpmock::Method::{GET, POST};
use oauth_sdk::{Client, Error, ManualClock, MemoryStore, TokenStore};
use serde_json::json;

use crate::support::t0;

const PASSWORD: &str = "PASSWORD-SENTINEL-7f3a";
const CLIENT_SECRET: &str = "CLIENT-SECRET-SENTINEL-91bd";
const ACCESS: &str = "ACCESS-SENTINEL-c0ffee";
const ACCESS_2: &str = "ACCESS-SENTINEL-2-c0ffee";
const REFRESH: &str = "REFRESH-SENTINEL-beef";
const REFRESH_2: &str = "REFRESH-SENTINEL-2-beef";
const SENTINELS: [&str; 6] = [PASSWORD, CLIENT_SECRET, ACCESS, ACCESS_2, REFRESH, REFRESH_2];

#[tokio::test(flavor = "current_thread")]
async fn no_output_of_the_sdk_ever_contains_a_secret() {
    let traces = crate::support::Traces::capture(tracing::Level::TRACE);
    let mut seen: Vec<String> = Vec::new();

    let server = httpmock::MockServer::start_async().await;
    let clock = ManualClock::new(t0());
    let client = Client::builder(server.base_url(), "sentinel-app")
        .client_secret(CLIENT_SECRET.into())
        .clock(clock.clone())
        .refresh_retries(2, Duration::from_millis(1))
        .revocation_url("/oauth/revoke")
        .build()
        .unwrap();
    seen.push(format!("{client:?}"));

    // A refused login, then a good one.
    let refused = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/oauth/token")
                .form_urlencoded_tuple("username", "mallory");
            then.status(401).json_body(json!({"error": "invalid_client"}));
        })
        .await;
    let error = client
        .clone()
        .login_password(MemoryStore::new(), "mallory", PASSWORD.into())
        .await
        .unwrap_err();
    seen.extend([format!("{error:?}"), error.to_string()]);
    refused.assert_calls_async(1).await;
    server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/oauth/token")
                .form_urlencoded_tuple("grant_type", "password");
            then.status(200).json_body(
                json!({"access_token": ACCESS, "refresh_token": REFRESH, "token_type": "bearer", "expires_in": 60}),
            );
        })
        .await;
    let store = MemoryStore::new();
    let api = client
        .clone()
        .login_password(store.clone(), "ada", PASSWORD.into())
        .await
        .unwrap();
    seen.extend([
        format!("{api:?}"),
        format!("{store:?}"),
        format!("{:?}", store.load().await.unwrap()),
    ]);

    // A rejected token and a renewal, then an unusable token answer, an outage and a refusal.
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/v1/me")
                .header("authorization", format!("Bearer {ACCESS}"));
            then.status(403)
                .header("www-authenticate", r#"Bearer error="invalid_token""#);
        })
        .await;
    let renewal = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/oauth/token")
                .form_urlencoded_tuple("refresh_token", REFRESH);
            then.status(200)
                .json_body(json!({"access_token": ACCESS_2, "refresh_token": REFRESH_2, "expires_in": 60}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/v1/me")
                .header("authorization", format!("Bearer {ACCESS_2}"));
            then.status(500)
                .json_body(json!({"error": "boom", "message": "server error"}));
        })
        .await;
    let error = api.get_me().await.unwrap_err();
    seen.extend([format!("{error:?}"), error.to_string()]);

    clock.advance(Duration::from_secs(120));
    let outage = server
        .mock_async(|when, then| {
            when.method(POST).path("/oauth/token");
            then.status(502);
        })
        .await;
    let error = api.get_me().await.unwrap_err();
    assert!(matches!(error, Error::Transient(_)), "{error:?}");
    seen.extend([format!("{error:?}"), error.to_string()]);
    outage.delete_async().await;

    // A success that cannot be used ends the session (the refresh token may be spent).
    let broken = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/oauth/token")
                .form_urlencoded_tuple("refresh_token", REFRESH_2);
            then.status(200)
                .json_body(json!({"access_token": ACCESS, "token_type": 17}));
        })
        .await;
    let error = api.get_me().await.unwrap_err();
    assert!(
        matches!(error, Error::SessionEnded(oauth_sdk::SessionEnd::UnusableRenewal(_))),
        "{error:?}"
    );
    seen.extend([format!("{error:?}"), error.to_string()]);
    broken.delete_async().await;
    renewal.delete_async().await;

    // A new session, whose refresh the server refuses, quoting the token it refuses.
    let api = client
        .login_password(MemoryStore::new(), "ada", PASSWORD.into())
        .await
        .unwrap();
    server
        .mock_async(|when, then| {
            when.method(POST).path("/oauth/token");
            then.status(400).json_body(
                json!({"error": "invalid_grant", "error_description": format!("Invalid refresh token: {REFRESH}")}),
            );
        })
        .await;
    let error = api.get_me().await.unwrap_err();
    assert!(error.is_session_ended(), "{error:?}");
    assert!(
        error.to_string().contains("Invalid refresh token: [redacted]"),
        "{error}"
    );
    seen.extend([format!("{error:?}"), error.to_string()]);

    let traces = traces.text();
    assert!(
        traces.contains("renewing the access token"),
        "tracing was captured:\n{traces}"
    );
    seen.push(traces);
    for text in &seen {
        for secret in SENTINELS {
            assert!(!text.contains(secret), "a secret leaked into:\n{text}");
        }
    }
}

const CODE: &str = "CODE-SENTINEL-5e1f";
const DEVICE_CODE: &str = "DEVICE-CODE-SENTINEL-a11c";

/// The authorization-code and device logins: the state, the PKCE verifier, the code and the device
/// code are secrets too.
#[tokio::test(flavor = "current_thread")]
async fn the_browser_and_device_logins_never_show_their_secrets() {
    let traces = crate::support::Traces::capture(tracing::Level::TRACE);
    let mut seen: Vec<String> = Vec::new();
    let server = httpmock::MockServer::start_async().await;
    let client = Client::builder(server.base_url(), "sentinel-app")
        .client_secret(CLIENT_SECRET.into())
        .refresh_retries(1, Duration::from_millis(1))
        .build()
        .unwrap();

    let request = client.authorization_request("http://127.0.0.1:1/cb", &[]).unwrap();
    seen.push(format!("{request:?}"));
    let (_, pending) = request.into_parts();
    seen.push(format!("{pending:?}"));
    let stored = serde_json::to_value(&pending).unwrap();
    let (state, verifier) = (stored["state"].as_str().unwrap(), stored["verifier"].as_str().unwrap());

    // A forged callback, then a code the token endpoint refuses, quoting it.
    let forged = client
        .clone()
        .login_authorization_code(MemoryStore::new(), &pending, &format!("code={CODE}&state=guess"))
        .await
        .unwrap_err();
    seen.extend([format!("{forged:?}"), forged.to_string()]);
    let refused = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/oauth/token")
                .form_urlencoded_tuple("grant_type", "authorization_code")
                .form_urlencoded_tuple("code", CODE)
                .form_urlencoded_tuple("code_verifier", verifier);
            then.status(400)
                .json_body(json!({"error": "invalid_grant", "error_description": format!("code {CODE} is spent")}));
        })
        .await;
    let callback = format!("http://127.0.0.1:1/cb?code={CODE}&state={state}");
    let error = client
        .clone()
        .login_authorization_code(MemoryStore::new(), &pending, &callback)
        .await
        .unwrap_err();
    refused.assert_calls_async(1).await;
    assert!(error.to_string().contains("code [redacted] is spent"), "{error}");
    seen.extend([format!("{error:?}"), error.to_string()]);

    // A device login the user declines; the server quotes the device code.
    server
        .mock_async(|when, then| {
            when.method(POST).path("/oauth/device_authorization");
            then.status(200).json_body(json!({
                "device_code": DEVICE_CODE, "user_code": "WDJB-MJHT", "verification_uri": "https://example.com/device",
                "expires_in": 600, "interval": 1
            }));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/oauth/token")
                .form_urlencoded_tuple("device_code", DEVICE_CODE);
            then.status(400).json_body(
                json!({"error": "access_denied", "error_description": format!("{DEVICE_CODE} was declined")}),
            );
        })
        .await;
    let device = client.device_authorization(&[]).await.unwrap();
    seen.push(format!("{device:?}"));
    let error = client.login_device(MemoryStore::new(), &device).await.unwrap_err();
    assert!(error.to_string().contains("[redacted] was declined"), "{error}");
    seen.extend([format!("{error:?}"), error.to_string()]);

    // client_secret_jwt: the assertion (captured as the server saw it) is a secret too.
    let captured = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let seen_by_server = captured.clone();
    server
        .mock_async(move |when, then| {
            when.method(POST)
                .path("/oauth/token")
                .form_urlencoded_tuple("grant_type", "password")
                .is_true(move |request| {
                    let form: std::collections::HashMap<String, String> =
                        form_urlencoded::parse(request.body_ref()).into_owned().collect();
                    *seen_by_server.lock().unwrap() = form.get("client_assertion").cloned().unwrap_or_default();
                    true
                });
            then.status(401).json_body(json!({"error": "invalid_client"}));
        })
        .await;
    let jwt_client = Client::builder(server.base_url(), "sentinel-app")
        .client_secret(CLIENT_SECRET.into())
        .client_auth(oauth_sdk::ClientAuth::ClientSecretJwt)
        .build()
        .unwrap();
    seen.push(format!("{jwt_client:?}"));
    let error = jwt_client
        .login_password(MemoryStore::new(), "ada", PASSWORD.into())
        .await
        .unwrap_err();
    seen.extend([format!("{error:?}"), error.to_string()]);
    let assertion = captured.lock().unwrap().clone();
    assert!(assertion.len() > 50, "the server saw an assertion");

    let traces = traces.text();
    assert!(
        traces.contains("redeeming an authorization code") && traces.contains("device login"),
        "tracing was captured:\n{traces}"
    );
    seen.push(traces);
    for text in &seen {
        for secret in [CLIENT_SECRET, PASSWORD, CODE, DEVICE_CODE, state, verifier, &assertion] {
            assert!(!text.contains(secret), "a secret leaked into:\n{text}");
        }
    }
}
