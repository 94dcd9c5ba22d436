//! Renewal: ahead of expiry, once for any number of requests, rotation-safe, and typed when it fails.

use std::time::Duration;

use httpmock::Method::POST;
use oauth_sdk::{Error, ExposeSecret, SessionEnd, SessionState, TokenStore};
use serde_json::json;

use crate::support::{Harness, LIFETIME, token_body};

const SKEW: u64 = oauth_sdk::DEFAULT_REFRESH_SKEW.as_secs();

#[tokio::test]
async fn a_token_near_expiry_is_renewed_ahead_and_calls_wait_only_once_expiry_is_close() {
    let h = Harness::start().await;
    let api = h.logged_in().await;
    let old = h.mock_me("at-1", 200).await;
    let refresh = h.mock_refresh("rt-1", "at-2", "rt-2").await;
    let new = h.mock_me("at-2", 200).await;

    h.clock.advance(Duration::from_secs(LIFETIME - SKEW - 1));
    api.get_me().await.expect("still fresh");
    old.assert_calls_async(1).await;
    refresh.assert_calls_async(0).await;

    // Within the skew of expiry, first half: the call starts the renewal and goes on with its token.
    h.clock.advance(Duration::from_secs(2));
    let mut changes = api.session_changes();
    api.get_me().await.expect("sent with the token, still good");
    old.assert_calls_async(2).await;
    tokio::time::timeout(
        Duration::from_secs(30),
        changes.wait_for(
            |state| matches!(state, SessionState::Active(tokens) if tokens.access_token().expose_secret() == "at-2"),
        ),
    )
    .await
    .expect("renewed in the background")
    .unwrap();
    refresh.assert_calls_async(1).await;
    api.get_me().await.expect("sent with the new token");
    new.assert_calls_async(1).await;
    assert_eq!(api.metrics().renewals_ahead_of_expiry, 1);

    // Second half of the window: the call waits for the renewal, and is sent with its result.
    let again = h.mock_refresh("rt-2", "at-3", "rt-3").await;
    let newest = h.mock_me("at-3", 200).await;
    h.clock.advance(Duration::from_secs(LIFETIME - SKEW / 2 + 1));
    api.get_me().await.expect("renewed first");
    again.assert_calls_async(1).await;
    newest.assert_calls_async(1).await;
    new.assert_calls_async(1).await;
}

/// A renewal started in the background that fails is not started again by every call that follows:
/// calls go on with the token (still good) and try again a second later, by the session's clock.
#[tokio::test]
async fn a_failed_background_renewal_is_not_retried_by_every_call() {
    let h = Harness::start().await;
    let api = h.logged_in().await;
    let old = h.mock_me("at-1", 200).await;
    let unavailable = h
        .server
        .mock_async(|when, then| {
            when.method(POST).path("/oauth/token");
            then.status(503);
        })
        .await;
    h.clock.advance(Duration::from_secs(LIFETIME - SKEW + 1));
    api.get_me().await.expect("sent with the token, still good");
    crate::support::eventually("the background renewal never ended", async || {
        api.metrics().refresh_transient > 0
    })
    .await;
    let attempts = unavailable.calls_async().await;
    for _ in 0..5 {
        api.get_me().await.expect("sent with the token, still good");
    }
    assert_eq!(api.metrics().renewals_ahead_of_expiry, 1);
    assert_eq!(unavailable.calls_async().await, attempts);

    h.clock.advance(Duration::from_secs(2));
    api.get_me().await.expect("sent with the token, still good");
    assert_eq!(api.metrics().renewals_ahead_of_expiry, 2);
    old.assert_calls_async(7).await;
}

#[tokio::test]
async fn a_thousand_requests_on_an_expired_token_renew_it_once() {
    let h = Harness::start().await;
    let api = h.logged_in().await;
    let old = h.mock_me("at-1", 403).await;
    let refresh = h.mock_refresh("rt-1", "at-2", "rt-2").await;
    let new = h.mock_me("at-2", 200).await;
    h.clock.advance(Duration::from_secs(LIFETIME + 1));

    let calls: Vec<_> = (0..1000)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move { api.get_me().await.map(|me| me.into_inner().username) })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().expect("every request succeeds"), "ada");
    }
    refresh.assert_calls_async(1).await;
    new.assert_calls_async(1000).await;
    old.assert_calls_async(0).await;
}

#[tokio::test]
async fn a_thousand_requests_rejected_at_once_renew_it_once() {
    // The clock says the token is good; the server has revoked it. Every request is rejected, one
    // renews, and all are sent again with the new token.
    let h = Harness::start().await;
    let api = h.logged_in().await;
    let old = h.mock_me("at-1", 403).await;
    let refresh = h.mock_refresh("rt-1", "at-2", "rt-2").await;
    let new = h.mock_me("at-2", 200).await;

    let calls: Vec<_> = (0..1000)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move { api.get_me().await.map(|_| ()) })
        })
        .collect();
    for call in calls {
        call.await.unwrap().expect("every request succeeds");
    }
    refresh.assert_calls_async(1).await;
    new.assert_calls_async(1000).await;
    assert!(old.calls_async().await <= 1000);
}

#[tokio::test]
async fn a_refused_refresh_ends_the_session_for_every_waiter_after_one_attempt() {
    let h = Harness::start().await;
    let api = h.logged_in().await;
    let refresh = h
        .server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/oauth/token")
                .form_urlencoded_tuple("grant_type", "refresh_token");
            then.status(400)
                .json_body(json!({"error": "invalid_grant", "error_description": "refresh token revoked"}));
        })
        .await;
    h.clock.advance(Duration::from_secs(LIFETIME + 1));

    let calls: Vec<_> = (0..50)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move { api.get_me().await.map(|_| ()) })
        })
        .collect();
    for call in calls {
        match call.await.unwrap() {
            Err(Error::SessionEnded(SessionEnd::Refused(oauth))) => {
                assert_eq!(oauth.code(), "invalid_grant");
                assert_eq!(oauth.status(), 400);
            }
            other => panic!("expected the session to end, got {other:?}"),
        }
    }
    let later = api.get_me().await.unwrap_err();
    assert!(later.is_session_ended(), "{later:?}");
    refresh.assert_calls_async(1).await;
}

#[tokio::test]
async fn a_token_endpoint_outage_is_retried_then_typed_and_the_session_survives() {
    let h = Harness::start().await;
    let api = h.logged_in().await;
    let outage = h
        .server
        .mock_async(|when, then| {
            when.method(POST).path("/oauth/token");
            then.status(503);
        })
        .await;
    let old = h.mock_me("at-1", 200).await;

    // Within the skew but not expired: the renewal fails, and the still-valid token is used.
    h.clock.advance(Duration::from_secs(LIFETIME - 5));
    api.get_me()
        .await
        .expect("the valid token is used while the endpoint is down");
    outage.assert_calls_async(3).await;
    old.assert_calls_async(1).await;

    // Expired: the caller is told, with the attempts made, and the session is not over.
    h.clock.advance(Duration::from_secs(10));
    match api.get_me().await {
        Err(Error::Transient(e)) => {
            assert_eq!(e.attempts(), 3);
            assert_eq!(e.status(), Some(reqwest::StatusCode::SERVICE_UNAVAILABLE));
        }
        other => panic!("expected a transient error, got {other:?}"),
    }
    outage.assert_calls_async(6).await;

    outage.delete_async().await;
    let refresh = h.mock_refresh("rt-1", "at-2", "rt-2").await;
    let new = h.mock_me("at-2", 200).await;
    api.get_me().await.expect("recovered");
    refresh.assert_calls_async(1).await;
    new.assert_calls_async(1).await;
}

#[tokio::test]
async fn client_credentials_are_presented_again_instead_of_a_refresh_token() {
    let h = Harness::start().await;
    let first = h
        .server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/oauth/token")
                .form_urlencoded_tuple("grant_type", "client_credentials")
                .form_urlencoded_tuple("scope", "tasks.read tasks.write");
            then.status(200).json_body(token_body("cc-1", None));
        })
        .await;
    let api = h
        .client()
        .login_client_credentials(h.store.clone(), &[])
        .await
        .expect("login");
    first.assert_calls_async(1).await;
    first.delete_async().await;

    let again = h
        .server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/oauth/token")
                .form_urlencoded_tuple("grant_type", "client_credentials");
            then.status(200).json_body(token_body("cc-2", None));
        })
        .await;
    let old = h.mock_me("cc-1", 401).await;
    let new = h.mock_me("cc-2", 200).await;
    api.get_me().await.expect("re-acquired");
    old.assert_calls_async(1).await;
    again.assert_calls_async(1).await;
    new.assert_calls_async(1).await;
}

#[tokio::test]
async fn the_newest_refresh_token_is_always_the_one_presented() {
    let h = Harness::start().await;
    let api = h.logged_in().await;
    let first = h.mock_refresh("rt-1", "at-2", "rt-2").await;
    let second = h.mock_refresh("rt-2", "at-3", "rt-3").await;
    let me2 = h.mock_me("at-2", 200).await;
    let me3 = h.mock_me("at-3", 200).await;

    h.clock.advance(Duration::from_secs(LIFETIME + 1));
    api.get_me().await.unwrap();
    h.clock.advance(Duration::from_secs(LIFETIME + 1));
    api.get_me().await.unwrap();

    first.assert_calls_async(1).await;
    second.assert_calls_async(1).await;
    me2.assert_calls_async(1).await;
    me3.assert_calls_async(1).await;
    let stored = h.store.load().await.unwrap().expect("a session");
    assert_eq!(
        stored.tokens.as_ref().unwrap().refresh_token().unwrap().expose_secret(),
        "rt-3"
    );
}

#[tokio::test]
async fn a_refresh_answer_without_a_refresh_token_keeps_the_old_one() {
    let h = Harness::start().await;
    let api = h.logged_in().await;
    let refresh = h
        .server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/oauth/token")
                .form_urlencoded_tuple("refresh_token", "rt-1");
            then.status(200).json_body(token_body("at-2", None));
        })
        .await;
    h.mock_me("at-2", 200).await;
    h.clock.advance(Duration::from_secs(LIFETIME + 1));
    api.get_me().await.unwrap();
    refresh.assert_calls_async(1).await;
    let stored = h.store.load().await.unwrap().unwrap();
    assert_eq!(stored.tokens.as_ref().unwrap().access_token().expose_secret(), "at-2");
    assert_eq!(
        stored.tokens.as_ref().unwrap().refresh_token().unwrap().expose_secret(),
        "rt-1"
    );
}

#[tokio::test]
async fn a_caller_that_gives_up_mid_refresh_does_not_lose_the_rotated_token() {
    let h = Harness::start().await;
    let api = h.logged_in().await;
    let refresh = h
        .mock_slow_refresh("rt-1", "at-2", "rt-2", Duration::from_millis(300))
        .await;
    let new = h.mock_me("at-2", 200).await;
    h.clock.advance(Duration::from_secs(LIFETIME + 1));

    let gave_up = tokio::time::timeout(Duration::from_millis(50), api.get_me()).await;
    assert!(gave_up.is_err(), "the call was cancelled mid-refresh");

    // The renewal finishes on its own; the next request uses its result without refreshing again.
    api.get_me().await.expect("uses the renewed token");
    refresh.assert_calls_async(1).await;
    new.assert_calls_async(1).await;
    let stored = h.store.load().await.unwrap().unwrap();
    assert_eq!(
        stored.tokens.as_ref().unwrap().refresh_token().unwrap().expose_secret(),
        "rt-2"
    );
}
