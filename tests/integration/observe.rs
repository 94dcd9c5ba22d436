//! What the application can watch: the session's state as it changes, and counters.

use std::time::Duration;

use httpmock::Method::{GET, POST};
use oauth_sdk::{ExposeSecret, SessionEnd, SessionState};
use serde_json::json;

use crate::support::{Harness, LIFETIME};

#[tokio::test]
async fn counters_follow_requests_resends_and_renewals() {
    let h = Harness::start().await;
    let api = h.logged_in().await;
    h.mock_me("at-1", 403).await;
    h.mock_refresh("rt-1", "at-2", "rt-2").await;
    h.mock_me("at-2", 200).await;
    api.get_me().await.unwrap();
    let after_rejection = api.metrics();
    assert_eq!(
        (
            after_rejection.requests,
            after_rejection.resent,
            after_rejection.renewals_after_rejection,
            after_rejection.refreshes
        ),
        (2, 1, 1, 1),
        "{after_rejection:?}"
    );

    h.mock_refresh("rt-2", "at-3", "rt-3").await;
    h.mock_me("at-3", 200).await;
    h.clock.advance(Duration::from_secs(LIFETIME + 1));
    api.get_me().await.unwrap();
    let after_expiry = api.metrics();
    assert_eq!(
        (
            after_expiry.renewals_ahead_of_expiry,
            after_expiry.renewals_after_expiry,
            after_expiry.refreshes,
            after_expiry.requests
        ),
        (0, 1, 2, 3)
    );
    assert_eq!(after_expiry.refresh_refused, 0);
}

/// A call that finds its token due in the first half of the renewal window starts the renewal when
/// it has its answer. If the token expired meanwhile (the call took longer than the rest of the
/// window), that renewal counts as one after expiry, not ahead of it.
#[tokio::test]
async fn a_renewal_that_starts_after_expiry_is_not_counted_as_ahead_of_it() {
    let h = Harness::start().await;
    let api = h.logged_in().await;
    let slow = h
        .server
        .mock_async(|when, then| {
            when.method(GET).path("/v1/me").header("authorization", "Bearer at-1");
            then.status(200)
                .header("content-type", "application/json")
                .json_body(crate::support::user())
                .delay(Duration::from_secs(2));
        })
        .await;
    let refresh = h.mock_refresh("rt-1", "at-2", "rt-2").await;
    let skew = oauth_sdk::DEFAULT_REFRESH_SKEW.as_secs();
    h.clock.advance(Duration::from_secs(LIFETIME - skew + 1));
    let call = tokio::spawn({
        let api = api.clone();
        async move { api.get_me().await.map(drop) }
    });
    // Sent with the old token; the clock passes its expiry before the answer comes.
    crate::support::eventually("the call never reached the server", async || {
        slow.calls_async().await > 0
    })
    .await;
    h.clock.advance(Duration::from_secs(skew));
    call.await.unwrap().expect("answered");
    api.flush(Duration::from_secs(30)).await.expect("the renewal ends");
    refresh.assert_calls_async(1).await;
    let counted = api.metrics();
    assert_eq!(
        (
            counted.renewals_ahead_of_expiry,
            counted.renewals_after_expiry,
            counted.requests
        ),
        (0, 1, 1),
        "{counted:?}"
    );
}

#[tokio::test]
async fn the_application_can_force_a_renewal() {
    let h = Harness::start().await;
    let api = h.logged_in().await;
    let refresh = h.mock_refresh("rt-1", "at-2", "rt-2").await;
    let me = h.mock_me("at-2", 200).await;
    api.refresh().await.expect("renewed on request");
    api.get_me().await.expect("sent with the new token");
    refresh.assert_calls_async(1).await;
    me.assert_calls_async(1).await;
    assert_eq!(api.metrics().renewals_forced, 1);
}

#[tokio::test]
async fn session_changes_publish_each_renewal_and_the_end() {
    let h = Harness::start().await;
    let api = h.logged_in().await;
    let mut changes = api.session_changes();
    match &*changes.borrow_and_update() {
        SessionState::Active(tokens) => assert_eq!(tokens.access_token().expose_secret(), "at-1"),
        other => panic!("{other:?}"),
    }
    h.mock_refresh("rt-1", "at-2", "rt-2").await;
    h.mock_me("at-2", 200).await;
    h.clock.advance(Duration::from_secs(LIFETIME + 1));
    api.get_me().await.unwrap();
    assert!(changes.has_changed().unwrap());
    match &*changes.borrow_and_update() {
        SessionState::Active(tokens) => assert_eq!(tokens.access_token().expose_secret(), "at-2"),
        other => panic!("{other:?}"),
    }
    api.clone().logout().await.unwrap();
    assert!(matches!(
        &*changes.borrow_and_update(),
        SessionState::Ended(SessionEnd::LoggedOut)
    ));
}

#[tokio::test]
async fn a_refused_renewal_is_counted_and_published() {
    let h = Harness::start().await;
    let api = h.logged_in().await;
    let changes = api.session_changes();
    h.server
        .mock_async(|when, then| {
            when.method(POST).path("/oauth/token");
            then.status(400).json_body(json!({"error": "invalid_grant"}));
        })
        .await;
    h.clock.advance(Duration::from_secs(LIFETIME + 1));
    assert!(api.get_me().await.unwrap_err().is_session_ended());
    assert_eq!(api.metrics().refresh_refused, 1);
    assert!(matches!(&*changes.borrow(), SessionState::Ended(SessionEnd::Refused(e)) if e.code() == "invalid_grant"));
}

/// Each attempt at a call runs in a `call` span with the operation, the attempt and the API's status;
/// the renewal a rejected token starts runs inside the first attempt's span.
#[tokio::test(flavor = "current_thread")]
async fn each_attempt_of_a_call_has_a_span_with_its_operation_attempt_and_status() {
    let traces = crate::support::Traces::capture(tracing::Level::DEBUG);

    let h = Harness::start().await;
    let api = h.logged_in().await;
    h.mock_me("at-1", 403).await;
    h.mock_refresh("rt-1", "at-2", "rt-2").await;
    h.mock_me("at-2", 200).await;
    api.get_me().await.unwrap();

    let text = traces.text();
    let closed: Vec<&str> = text.lines().filter(|l| l.contains("close")).collect();
    let first = closed
        .iter()
        .find(|l| l.contains("call{operation=\"get_me\" attempt=First status=403}"));
    let resend = closed
        .iter()
        .find(|l| l.contains("call{operation=\"get_me\" attempt=Resend status=200}"));
    assert!(first.is_some() && resend.is_some(), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("call{operation=\"get_me\" attempt=First status=403}:renewal{")),
        "the renewal runs inside the rejected attempt's span: {text}"
    );
}
