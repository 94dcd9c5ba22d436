//! What a generated call puts on the wire and hands back, now that codegen trims progenitor's
//! per-request work: the operation's own headers and no `api-version`; path parameters encoded into
//! the joined URL; response headers kept on success, on an empty success and on an API error.

use httpmock::Method::{DELETE, GET};
use oauth_sdk::Error;
use serde_json::json;

use crate::support::{Harness, user};

#[tokio::test]
async fn a_call_sends_its_token_and_accept_header_and_no_api_version() {
    let h = Harness::start().await;
    let api = h.logged_in().await;
    let me = h
        .server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/v1/me")
                .header("authorization", "Bearer at-1")
                .header("accept", "application/json")
                .header_missing("api-version");
            then.status(200)
                .header("content-type", "application/json")
                .header("x-request-id", "req-7")
                .json_body(user());
        })
        .await;

    let response = api.get_me().await.expect("the mock matches the request");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get("x-request-id").map(|v| v.as_bytes()),
        Some(&b"req-7"[..])
    );
    assert_eq!(response.username, "ada");
    me.assert_calls_async(1).await;
}

#[tokio::test]
async fn path_parameters_are_encoded_into_the_url() {
    let h = Harness::start().await;
    let api = h.logged_in().await;
    let project = h
        .server
        .mock_async(|when, then| {
            when.method(GET).path("/v1/projects/a%20b%2Fc%3F");
            then.status(200).json_body(json!({
                "id": "a b/c?", "name": "odd", "created_at": "2026-11-26T10:00:00Z"
            }));
        })
        .await;

    let response = api.get_project("a b/c?").await.expect("the encoded path matches");
    assert_eq!(response.id, "a b/c?");
    project.assert_calls_async(1).await;
}

#[tokio::test]
async fn empty_answers_and_api_errors_keep_their_headers() {
    let h = Harness::start().await;
    let api = h.logged_in().await;
    h.server
        .mock_async(|when, then| {
            when.method(DELETE).path("/v1/tasks/t-1");
            then.status(204).header("x-request-id", "req-8");
        })
        .await;
    h.server
        .mock_async(|when, then| {
            when.method(GET).path("/v1/projects/missing");
            then.status(404)
                .header("x-request-id", "req-9")
                .json_body(json!({"error": "not_found", "message": "no such project"}));
        })
        .await;

    let deleted = api.delete_task("t-1").await.expect("204");
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        deleted.headers().get("x-request-id").map(|v| v.as_bytes()),
        Some(&b"req-8"[..])
    );

    match api.get_project("missing").await {
        Err(Error::Api(response)) => {
            assert_eq!(response.status(), 404);
            assert_eq!(response.error, "not_found");
            assert_eq!(
                response.headers().get("x-request-id").map(|v| v.as_bytes()),
                Some(&b"req-9"[..])
            );
        }
        other => panic!("expected the API's 404, got {other:?}"),
    }
}
