//! What the executor does with the API's answers: send again once after a rejected token, never
//! after a permissions answer, never a stream, and never a token to a public operation.

use futures::stream;
use httpmock::Method::{GET, PUT};
use oauth_sdk::Error;
use serde_json::json;

use crate::support::Harness;

async fn rejected_token_is_renewed_and_the_request_sent_again(status: u16) {
    let h = Harness::start().await;
    let api = h.logged_in().await;
    let old = h.mock_me("at-1", status).await;
    let refresh = h.mock_refresh("rt-1", "at-2", "rt-2").await;
    let new = h.mock_me("at-2", 200).await;

    let me = api.get_me().await.expect("the retry succeeds");
    assert_eq!(me.username, "ada");
    old.assert_calls_async(1).await;
    refresh.assert_calls_async(1).await;
    new.assert_calls_async(1).await;
}

#[tokio::test]
async fn forbidden_renews_and_retries_once() {
    rejected_token_is_renewed_and_the_request_sent_again(403).await;
}

#[tokio::test]
async fn unauthorized_renews_and_retries_once() {
    rejected_token_is_renewed_and_the_request_sent_again(401).await;
}

#[tokio::test]
async fn insufficient_scope_is_a_permissions_answer_not_a_renewal() {
    let h = Harness::start().await;
    let api = h.logged_in().await;
    let me = h
        .server
        .mock_async(|when, then| {
            when.method(GET).path("/v1/me");
            then.status(403)
                .header(
                    "www-authenticate",
                    r#"Bearer realm="taskboard", error="insufficient_scope", scope="admin""#,
                )
                .json_body(json!({"error": "insufficient_scope", "message": "needs admin"}));
        })
        .await;
    let refresh = h.mock_refresh("rt-1", "at-2", "rt-2").await;

    match api.get_me().await {
        Err(Error::Api(response)) => {
            assert_eq!(response.status(), 403);
            assert_eq!(response.error, "insufficient_scope");
        }
        other => panic!("expected the API's 403, got {other:?}"),
    }
    me.assert_calls_async(1).await;
    refresh.assert_calls_async(0).await;
}

#[tokio::test]
async fn a_status_that_is_not_a_trigger_is_returned_as_is() {
    let h = Harness::start().await;
    let login = h.mock_password_grant().await;
    let client = h
        .builder()
        .trigger_statuses([reqwest::StatusCode::UNAUTHORIZED])
        .build()
        .unwrap();
    let api = client
        .login_password(h.store.clone(), "ada", "correct horse".into())
        .await
        .unwrap();
    login.assert_calls_async(1).await;
    let me = h.mock_me("at-1", 403).await;
    let refresh = h.mock_refresh("rt-1", "at-2", "rt-2").await;

    let error = api.get_me().await.unwrap_err();
    assert_eq!(error.status(), Some(reqwest::StatusCode::FORBIDDEN));
    me.assert_calls_async(1).await;
    refresh.assert_calls_async(0).await;
}

#[tokio::test]
async fn a_second_rejection_is_returned_not_looped() {
    let h = Harness::start().await;
    let api = h.logged_in().await;
    let old = h.mock_me("at-1", 403).await;
    let refresh = h.mock_refresh("rt-1", "at-2", "rt-2").await;
    let new = h.mock_me("at-2", 403).await;

    let error = api.get_me().await.unwrap_err();
    assert_eq!(error.status(), Some(reqwest::StatusCode::FORBIDDEN));
    assert!(matches!(error, Error::Api(_)), "{error:?}");
    old.assert_calls_async(1).await;
    refresh.assert_calls_async(1).await;
    new.assert_calls_async(1).await;
}

#[tokio::test]
async fn a_streamed_upload_is_not_sent_twice_and_says_so() {
    let h = Harness::start().await;
    let api = h.logged_in().await;
    let upload = h
        .server
        .mock_async(|when, then| {
            when.method(PUT)
                .path("/v1/tasks/t-1/attachment")
                .header("authorization", "Bearer at-1");
            then.status(403)
                .json_body(json!({"error": "invalid_token", "message": "expired"}));
        })
        .await;
    let refresh = h.mock_refresh("rt-1", "at-2", "rt-2").await;
    let retried = h
        .server
        .mock_async(|when, then| {
            when.method(PUT)
                .path("/v1/tasks/t-1/attachment")
                .header("authorization", "Bearer at-2");
            then.status(200).json_body(json!({"task_id": "t-1", "size": 5}));
        })
        .await;

    let chunks = stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"hello"))]);
    let error = api
        .put_attachment("t-1", reqwest::Body::wrap_stream(chunks))
        .await
        .unwrap_err();
    match &error {
        Error::NotRetried { status } => assert_eq!(*status, 403),
        other => panic!("expected NotRetried, got {other:?}"),
    }
    assert!(error.to_string().contains("not sent again"), "{error}");
    upload.assert_calls_async(1).await;
    refresh.assert_calls_async(1).await;
    retried.assert_calls_async(0).await;

    // The token was renewed: sending the upload again goes through with it, without another refresh.
    let chunks = stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"hello"))]);
    api.put_attachment("t-1", reqwest::Body::wrap_stream(chunks))
        .await
        .expect("second upload");
    retried.assert_calls_async(1).await;
    refresh.assert_calls_async(1).await;
}

#[tokio::test]
async fn a_buffered_upload_is_sent_again() {
    let h = Harness::start().await;
    let api = h.logged_in().await;
    let first = h
        .server
        .mock_async(|when, then| {
            when.method(PUT)
                .path("/v1/tasks/t-1/attachment")
                .header("authorization", "Bearer at-1");
            then.status(403)
                .json_body(json!({"error": "invalid_token", "message": "expired"}));
        })
        .await;
    let refresh = h.mock_refresh("rt-1", "at-2", "rt-2").await;
    let second = h
        .server
        .mock_async(|when, then| {
            when.method(PUT)
                .path("/v1/tasks/t-1/attachment")
                .header("authorization", "Bearer at-2")
                .body("hello");
            then.status(200).json_body(json!({"task_id": "t-1", "size": 5}));
        })
        .await;

    let attachment = api
        .put_attachment("t-1", b"hello".to_vec())
        .await
        .expect("retried upload");
    assert_eq!(attachment.size, 5);
    first.assert_calls_async(1).await;
    refresh.assert_calls_async(1).await;
    second.assert_calls_async(1).await;
}

#[tokio::test]
async fn public_operations_never_carry_a_token() {
    let h = Harness::start().await;
    let health = h
        .server
        .mock_async(|when, then| {
            when.method(GET).path("/v1/health").header_missing("authorization");
            then.status(200).json_body(json!({"status": "ok", "version": "1.0.0"}));
        })
        .await;

    let client = h.client();
    assert_eq!(client.health().await.expect("logged out").status, "ok");
    let api = h.logged_in().await;
    assert_eq!(api.health().await.expect("logged in").status, "ok");
    health.assert_calls_async(2).await;
}

/// `is_transient` says what a retry can fix: the API's 429 and 503 are, its 404 and 400 are not.
#[tokio::test]
async fn the_apis_busy_answers_are_transient_and_its_refusals_are_not() {
    let h = Harness::start().await;
    let api = h.logged_in().await;
    for (status, transient) in [(429, true), (503, true), (404, false), (400, false)] {
        let answer = h.mock_me("at-1", status).await;
        let error = api.get_me().await.unwrap_err();
        assert_eq!(error.status().map(|s| s.as_u16()), Some(status), "{error}");
        assert_eq!(error.is_transient(), transient, "{status}: {error}");
        answer.delete_async().await;
    }
}

/// API calls time out by default, the builder sets the timeout, and `with_timeout` sets one call's;
/// a timeout is transient and is not a reason to renew the token.
#[tokio::test]
async fn api_calls_time_out_by_default_settably_and_per_call() {
    use std::time::Duration;

    let h = Harness::start().await;
    let slow = h
        .server
        .mock_async(|when, then| {
            when.method(GET).path("/v1/me");
            then.status(200)
                .delay(Duration::from_secs(30))
                .json_body(crate::support::user());
        })
        .await;

    // The builder's timeout.
    let login = h.mock_password_grant().await;
    let api = h
        .builder()
        .api_timeout(Duration::from_millis(300))
        .build()
        .unwrap()
        .login_password(
            oauth_sdk::MemoryStore::new(),
            crate::support::USERNAME,
            crate::support::PASSWORD.into(),
        )
        .await
        .unwrap();
    match api.get_me().await {
        Err(Error::Request(e)) => assert!(e.is_timeout(), "{e:?}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    login.delete_async().await;

    // One call's, over the default (15 s, longer than this test waits for anything).
    let api = h.logged_in().await;
    let error = api.with_timeout(Duration::from_millis(300)).get_me().await.unwrap_err();
    assert!(matches!(&error, Error::Request(e) if e.is_timeout()), "{error:?}");
    assert!(error.is_transient());
    assert_eq!(api.metrics().refreshes, 0, "a timeout is not a rejected token");
    assert_eq!(slow.calls_async().await, 2);
    assert_eq!(oauth_sdk::DEFAULT_API_TIMEOUT, Duration::from_secs(15));
}
