//! What a generated call puts on the wire and hands back, now that codegen rewrites progenitor's
//! per-request work: the operation's own headers and no `api-version`; path parameters encoded into
//! the joined URL; response headers kept on success, on an empty success and on an API error; a body
//! read whole however many chunks it comes in, and one that is not the documented JSON reported with
//! its bytes.

use httpmock::Method::{DELETE, GET};
use oauth_sdk::Error;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{CLIENT_ID, CLIENT_SECRET, Harness, PASSWORD, USERNAME, user};

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

/// A server of the test's own that answers one request with `body`, in chunks of `chunk` bytes.
async fn chunked_server(body: Vec<u8>, chunk: usize) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut request = vec![0u8; 8192];
        let _ = socket.read(&mut request).await.expect("read the request");
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
        socket.write_all(head.as_bytes()).await.expect("write");
        for piece in body.chunks(chunk) {
            let framed = [format!("{:x}\r\n", piece.len()).as_bytes(), piece, b"\r\n"].concat();
            socket.write_all(&framed).await.expect("write");
            socket.flush().await.expect("flush");
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        socket.write_all(b"0\r\n\r\n").await.expect("write");
    });
    format!("http://{address}")
}

/// Logged in at the harness's token endpoint, calling the API at `base_url`.
async fn logged_in_at(h: &Harness, base_url: String) -> oauth_sdk::Authenticated<oauth_sdk::MemoryStore> {
    let _login = h.mock_password_grant().await;
    oauth_sdk::Client::builder(base_url, CLIENT_ID)
        .client_secret(CLIENT_SECRET.into())
        .token_url(format!("{}/oauth/token", h.server.base_url()))
        .build()
        .expect("client")
        .login_password(oauth_sdk::MemoryStore::new(), USERNAME, PASSWORD.into())
        .await
        .expect("login")
}

#[tokio::test]
async fn a_body_in_many_chunks_is_read_whole() {
    let h = Harness::start().await;
    let items: Vec<_> = (0..2000)
        .map(|i| json!({"id": format!("p-{i}"), "name": "x".repeat(40), "created_at": "2026-11-26T10:00:00Z"}))
        .collect();
    let body = serde_json::to_vec(&json!({"items": items})).expect("JSON");
    assert!(body.len() > 100_000);
    let api = logged_in_at(&h, chunked_server(body, 1000).await).await;

    let page = api.list_projects(None, None).await.expect("the whole page");
    assert_eq!(page.items.len(), 2000);
    assert_eq!(page.items[1999].id, "p-1999");
}

#[tokio::test]
async fn a_body_that_is_not_the_documented_json_is_reported_with_its_bytes() {
    let h = Harness::start().await;
    let body = br#"{"id": "u-1", "username": 42}"#.to_vec();
    let api = logged_in_at(&h, chunked_server(body.clone(), 7).await).await;

    match api.get_me().await {
        Err(Error::InvalidResponse { body: got, .. }) => assert_eq!(&got[..], &body[..]),
        other => panic!("expected an invalid response, got {other:?}"),
    }
}
