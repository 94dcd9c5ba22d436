//! Logging in, resuming, logging out, and configuration mistakes.

use httpmock::Method::POST;
use oauth_sdk::{Client, ClientAuth, ConfigError, Error, MemoryStore, SessionEnd, TokenStore};
use serde_json::json;

use crate::support::{CLIENT_ID, CLIENT_SECRET, Harness, PASSWORD, USERNAME, token_body};

#[tokio::test]
async fn the_password_grant_authenticates_the_client_with_http_basic_by_default() {
    let h = Harness::start().await;
    let login = h
        .server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/oauth/token")
                .header("authorization", "Basic dGVzdC1jbGllbnQ6dGVzdC1zZWNyZXQ=")
                .form_urlencoded_tuple("grant_type", "password")
                .form_urlencoded_tuple("scope", "tasks.read tasks.write");
            then.status(200).json_body(token_body("at-1", Some("rt-1")));
        })
        .await;
    h.client()
        .login_password(MemoryStore::new(), USERNAME, PASSWORD.into())
        .await
        .expect("login");
    login.assert_calls_async(1).await;
}

#[tokio::test]
async fn client_credentials_can_go_in_the_body_instead() {
    let h = Harness::start().await;
    let login = h
        .server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/oauth/token")
                .header_missing("authorization")
                .form_urlencoded_tuple("client_id", CLIENT_ID)
                .form_urlencoded_tuple("client_secret", CLIENT_SECRET)
                .form_urlencoded_tuple("grant_type", "password");
            then.status(200).json_body(token_body("at-1", Some("rt-1")));
        })
        .await;
    let client = h.builder().client_auth(ClientAuth::RequestBody).build().unwrap();
    client
        .login_password(MemoryStore::new(), USERNAME, PASSWORD.into())
        .await
        .expect("login");
    login.assert_calls_async(1).await;
}

#[tokio::test]
async fn a_refused_login_is_typed_and_the_client_can_try_again() {
    let h = Harness::start().await;
    let refused = h
        .server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/oauth/token")
                .form_urlencoded_tuple("password", "wrong");
            then.status(400)
                .json_body(json!({"error": "invalid_grant", "error_description": "bad credentials"}));
        })
        .await;
    let accepted = h.mock_password_grant().await;
    let client = h.client();

    match client
        .clone()
        .login_password(MemoryStore::new(), USERNAME, "wrong".into())
        .await
    {
        Err(Error::LoginRejected(oauth)) => assert_eq!(oauth.code(), "invalid_grant"),
        other => panic!("expected LoginRejected, got {other:?}"),
    }
    client
        .login_password(MemoryStore::new(), USERNAME, PASSWORD.into())
        .await
        .expect("second try");
    refused.assert_calls_async(1).await;
    accepted.assert_calls_async(1).await;
}

#[tokio::test]
async fn a_new_process_resumes_the_stored_session_without_logging_in() {
    let h = Harness::start().await;
    drop(h.logged_in().await);
    let tokens = h
        .server
        .mock_async(|when, then| {
            when.method(POST).path("/oauth/token");
            then.status(500);
        })
        .await;
    let me = h.mock_me("at-1", 200).await;

    let api = h.client().resume(h.store.clone()).await.expect("resumed");
    assert_eq!(api.get_me().await.unwrap().username, "ada");
    me.assert_calls_async(1).await;
    tokens.assert_calls_async(0).await;
}

#[tokio::test]
async fn resuming_an_empty_store_says_there_is_no_session() {
    let h = Harness::start().await;
    match h.client().resume(MemoryStore::new()).await {
        Err(Error::NoSession) => {}
        other => panic!("expected NoSession, got {other:?}"),
    }
}

#[tokio::test]
async fn logout_revokes_the_refresh_token_clears_the_store_and_ends_every_clone() {
    let h = Harness::start().await;
    let login = h.mock_password_grant().await;
    let client = h.builder().revocation_url("/oauth/revoke").build().unwrap();
    let api = client
        .login_password(h.store.clone(), USERNAME, PASSWORD.into())
        .await
        .unwrap();
    login.assert_calls_async(1).await;
    let revoke = h
        .server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/oauth/revoke")
                .header("authorization", "Basic dGVzdC1jbGllbnQ6dGVzdC1zZWNyZXQ=")
                .form_urlencoded_tuple("token", "rt-1")
                .form_urlencoded_tuple("token_type_hint", "refresh_token");
            then.status(200);
        })
        .await;
    let other_handle = api.clone();

    api.logout().await.expect("logged out");
    revoke.assert_calls_async(1).await;
    let stored = h.store.load().await.unwrap().expect("a tombstone");
    assert!(stored.is_logged_out(), "the store holds the logout's tombstone");
    match other_handle.get_me().await {
        Err(Error::SessionEnded(SessionEnd::LoggedOut)) => {}
        other => panic!("expected the session to be over, got {other:?}"),
    }
}

#[tokio::test]
async fn logout_without_a_revocation_url_clears_the_store() {
    let h = Harness::start().await;
    let api = h.logged_in().await;
    api.logout().await.expect("logged out");
    assert!(h.store.load().await.unwrap().expect("a tombstone").is_logged_out());
    assert!(matches!(
        h.client().resume(h.store.clone()).await,
        Err(Error::NoSession)
    ));
}

#[tokio::test]
async fn configuration_mistakes_are_reported_by_build() {
    let bad_url = Client::builder("not a url", "app").build().unwrap_err();
    assert!(
        matches!(&bad_url, Error::Config(ConfigError::InvalidUrl { what: "base URL", url, .. }) if url == "not a url"),
        "{bad_url}"
    );
    assert!(!bad_url.is_transient());
    let plain = Client::builder("http://taskboard.example.com", "app")
        .build()
        .unwrap_err();
    assert!(
        matches!(&plain, Error::Config(ConfigError::PlainHttp { what: "base URL", .. })),
        "{plain:?}"
    );
    assert!(plain.to_string().contains("is plain http"), "{plain}");
    let remote_token = Client::builder("https://taskboard.example.com", "app")
        .token_url("http://auth.example.com/t")
        .build();
    assert!(
        remote_token
            .unwrap_err()
            .to_string()
            .contains("token URL `http://auth.example.com/t` is plain http")
    );
    Client::builder("http://taskboard.example.com", "app")
        .danger_allow_http(true)
        .build()
        .expect("opted out");
    Client::builder("http://localhost:8080", "app")
        .build()
        .expect("loopback is allowed");
    Client::builder("http://[::1]:8080", "app")
        .build()
        .expect("loopback is allowed");
    let bad_scheme = Client::builder("ftp://example.com", "app").build().unwrap_err();
    assert!(
        matches!(&bad_scheme, Error::Config(ConfigError::NotHttp { .. })),
        "{bad_scheme:?}"
    );
    assert!(bad_scheme.to_string().contains("not an http(s) URL"), "{bad_scheme}");
    let bad_trigger = Client::builder("http://127.0.0.1:1", "app")
        .trigger_statuses([reqwest::StatusCode::OK])
        .build()
        .unwrap_err();
    assert!(
        matches!(&bad_trigger, Error::Config(ConfigError::TriggerNotClientError(s)) if *s == reqwest::StatusCode::OK),
        "{bad_trigger:?}"
    );
}

#[tokio::test]
async fn a_token_answer_over_a_mebibyte_is_refused_not_read_whole() {
    let h = Harness::start().await;
    let huge = format!(
        r#"{{"access_token":"at","padding":"{}"}}"#,
        "x".repeat(oauth_sdk::MAX_TOKEN_RESPONSE_BYTES)
    );
    h.server
        .mock_async(move |when, then| {
            when.method(POST).path("/oauth/token");
            then.status(200).header("content-type", "application/json").body(huge);
        })
        .await;
    match h
        .client()
        .login_password(MemoryStore::new(), USERNAME, PASSWORD.into())
        .await
    {
        Err(Error::InvalidTokenResponse(e)) => assert!(e.to_string().contains("larger than 1048576 bytes"), "{e}"),
        other => panic!("expected an invalid token response, got {other:?}"),
    }
}

#[tokio::test]
async fn token_requests_never_follow_redirects() {
    let h = Harness::start().await;
    let elsewhere = h
        .server
        .mock_async(|when, then| {
            when.path("/elsewhere");
            then.status(200).json_body(token_body("at-1", Some("rt-1")));
        })
        .await;
    h.server
        .mock_async(|when, then| {
            when.method(POST).path("/oauth/token");
            then.status(307).header("location", "/elsewhere");
        })
        .await;
    match h
        .client()
        .login_password(MemoryStore::new(), USERNAME, PASSWORD.into())
        .await
    {
        Err(Error::InvalidTokenResponse(e)) => {
            assert!(e.to_string().contains("redirect"), "{e}");
            assert_eq!(e.status(), 307);
        }
        other => panic!("expected the redirect to be refused, got {other:?}"),
    }
    assert_eq!(
        elsewhere.calls_async().await,
        0,
        "the credentials must not be carried to the redirect's target"
    );
}

/// One error type for a function that logs in and calls: `?` turns the login's `Error` into the
/// call's `Error<E>`, keeping what it was.
#[tokio::test]
async fn a_login_error_converts_into_the_call_error_with_question_mark() {
    async fn me(client: oauth_sdk::Client, password: &str) -> Result<String, Error<oauth_sdk::types::Error>> {
        let api = client
            .login_password(MemoryStore::new(), USERNAME, password.into())
            .await?;
        Ok(api.get_me().await?.into_inner().username)
    }

    let h = Harness::start().await;
    h.server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/oauth/token")
                .form_urlencoded_tuple("password", "wrong");
            then.status(400).json_body(json!({"error": "invalid_grant"}));
        })
        .await;
    h.mock_password_grant().await;
    h.mock_me("at-1", 200).await;

    match me(h.client(), "wrong").await {
        Err(Error::LoginRejected(oauth)) => assert_eq!(oauth.code(), "invalid_grant"),
        other => panic!("expected LoginRejected, got {other:?}"),
    }
    assert_eq!(me(h.client(), PASSWORD).await.unwrap(), USERNAME);

    // Where `?` cannot convert (a call whose error body is not JSON), `into_call` does.
    let error: Error<oauth_sdk::ByteStream> = Error::NoSession.into_call();
    assert!(matches!(error, Error::NoSession), "{error}");
}

#[tokio::test]
async fn extra_parameters_go_where_providers_want_them_and_protocol_names_are_refused() {
    let h = Harness::start().await;
    let login = h
        .server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/oauth/token")
                .form_urlencoded_tuple("grant_type", "password")
                .form_urlencoded_tuple("audience", "https://api.example.com")
                .form_urlencoded_tuple("resource", "https://api.example.com/v1")
                .form_urlencoded_tuple_missing("prompt");
            then.status(200).json_body(token_body("at-1", Some("rt-1")));
        })
        .await;
    let client = h
        .builder()
        .extra_parameter("audience", "https://api.example.com")
        .extra_parameter("resource", "https://api.example.com/v1")
        .authorization_parameter("prompt", "consent")
        .build()
        .unwrap();
    let (url, _) = client
        .authorization_request("http://127.0.0.1:1/cb", &[])
        .unwrap()
        .into_parts();
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    for (name, value) in [
        ("audience", "https://api.example.com"),
        ("resource", "https://api.example.com/v1"),
        ("prompt", "consent"),
    ] {
        assert!(query.contains(&(name.into(), value.into())), "{name} in {url}");
    }
    client
        .login_password(MemoryStore::new(), USERNAME, PASSWORD.into())
        .await
        .expect("login");
    login.assert_calls_async(1).await;

    for reserved in ["grant_type", "scope", "client_secret", "response_mode"] {
        let outcome = h.builder().extra_parameter(reserved, "x").build();
        assert!(
            matches!(&outcome, Err(Error::Config(ConfigError::ReservedParameter(name))) if name == reserved),
            "{outcome:?}"
        );
    }
    let outcome = h.builder().authorization_parameter("state", "x").build();
    assert!(matches!(outcome, Err(Error::Config(ConfigError::ReservedParameter(_)))));
}

#[tokio::test]
async fn an_authorization_code_is_presented_once_even_when_the_answer_is_lost() {
    let h = Harness::start().await;
    let unavailable = h
        .server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/oauth/token")
                .form_urlencoded_tuple("grant_type", "authorization_code");
            then.status(503);
        })
        .await;
    let client = h.client();
    let (_, pending) = client
        .authorization_request("http://127.0.0.1:1/cb", &[])
        .unwrap()
        .into_parts();
    let state = serde_json::to_value(&pending).unwrap()["state"]
        .as_str()
        .unwrap()
        .to_owned();
    let store = MemoryStore::new();
    let outcome = client
        .login_authorization_code(store.clone(), &pending, &format!("code=c&state={state}"))
        .await;
    match outcome {
        // Retrying would replay the code, and a server that saw the first would revoke its tokens.
        Err(Error::Transient(e)) => assert_eq!(e.attempts(), 1),
        other => panic!("{other:?}"),
    }
    unavailable.assert_calls_async(1).await;
    assert!(store.load().await.unwrap().is_none());
}

/// A P-256 key made for this test (`openssl ecparam -name prime256v1 -genkey`, PKCS#8), and its
/// public half.
const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg53Xpg7hujIkqAhgg
nGXDjpYZT4SnwJcbPXSfRrY+ApahRANCAARlmqKuaMSR8dJy1EAEK6g7WkuLYRNK
nm1o5e+1yWswqJ6trnlfZ64taJz84Xp+qUYN9wOdtq+ha7WYlubT1c9Z
-----END PRIVATE KEY-----";
const TEST_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEZZqirmjEkfHSctRABCuoO1pLi2ET
Sp5taOXvtclrMKiera55X2euLWic/OF6fqlGDfcDnbavoWu1mJbm09XPWQ==
-----END PUBLIC KEY-----";

/// A token endpoint that issues a token only for a valid client assertion (RFC 7523 section 3):
/// signed with `key` by `algorithm`, issued by and for the client, addressed to the endpoint, not
/// expired, and with no client secret beside it.
async fn mock_assertion_check(
    h: &Harness,
    key: jsonwebtoken::DecodingKey,
    algorithm: jsonwebtoken::Algorithm,
) -> httpmock::Mock<'_> {
    let audience = format!("{}/oauth/token", h.server.base_url());
    h.server
        .mock_async(move |when, then| {
            when.method(POST)
                .path("/oauth/token")
                .form_urlencoded_tuple("client_id", CLIENT_ID)
                .form_urlencoded_tuple(
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                )
                .form_urlencoded_tuple_missing("client_secret")
                .header_missing("authorization")
                .is_true(move |request| {
                    let form: std::collections::HashMap<String, String> =
                        form_urlencoded::parse(request.body_ref()).into_owned().collect();
                    let Some(assertion) = form.get("client_assertion") else {
                        return false;
                    };
                    let mut validation = jsonwebtoken::Validation::new(algorithm);
                    validation.set_audience(&[&audience]);
                    validation.set_issuer(&[CLIENT_ID]);
                    validation.sub = Some(CLIENT_ID.into());
                    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
                    // The harness's clock is years behind; the assertion is checked at its own time.
                    validation.validate_exp = false;
                    let Ok(claims) = jsonwebtoken::decode::<serde_json::Value>(assertion, &key, &validation) else {
                        return false;
                    };
                    let lifetime = claims.claims["exp"].as_u64().zip(claims.claims["iat"].as_u64());
                    claims.claims["jti"].as_str().is_some_and(|jti| jti.len() >= 16)
                        && lifetime.is_some_and(|(exp, iat)| exp > iat && exp - iat <= 300)
                })
                .form_urlencoded_tuple("grant_type", "password");
            then.status(200).json_body(token_body("at-1", Some("rt-1")));
        })
        .await
}

#[tokio::test]
async fn private_key_jwt_and_client_secret_jwt_authenticate_with_signed_assertions() {
    use oauth_sdk::{ClientAssertionKey, JwtAlgorithm};
    let h = Harness::start().await;
    let public = jsonwebtoken::DecodingKey::from_ec_pem(TEST_PUBLIC_KEY.as_bytes()).unwrap();
    let private_key = mock_assertion_check(&h, public, jsonwebtoken::Algorithm::ES256).await;
    let key = ClientAssertionKey::from_pem(JwtAlgorithm::ES256, &TEST_KEY.into())
        .unwrap()
        .with_key_id("test-key");
    assert!(!format!("{key:?}").contains("MIGHAgEA"), "{key:?}");
    let client = Client::builder(h.server.base_url(), CLIENT_ID)
        .client_auth(ClientAuth::PrivateKeyJwt)
        .client_assertion_key(key.clone())
        .clock(h.clock.clone())
        .build()
        .unwrap();
    client
        .login_password(MemoryStore::new(), USERNAME, PASSWORD.into())
        .await
        .expect("logged in with private_key_jwt");
    private_key.assert_calls_async(1).await;
    private_key.delete_async().await;

    let secret = jsonwebtoken::DecodingKey::from_secret(CLIENT_SECRET.as_bytes()).unwrap();
    let shared_secret = mock_assertion_check(&h, secret, jsonwebtoken::Algorithm::HS256).await;
    h.builder()
        .client_auth(ClientAuth::ClientSecretJwt)
        .build()
        .unwrap()
        .login_password(MemoryStore::new(), USERNAME, PASSWORD.into())
        .await
        .expect("logged in with client_secret_jwt");
    shared_secret.assert_calls_async(1).await;

    // Without what it signs with, or with a key of another kind: a configuration error.
    let no_key = Client::builder(h.server.base_url(), CLIENT_ID)
        .client_auth(ClientAuth::PrivateKeyJwt)
        .build();
    assert!(
        matches!(no_key, Err(Error::Config(ConfigError::ClientAssertion(_)))),
        "{no_key:?}"
    );
    let no_secret = Client::builder(h.server.base_url(), CLIENT_ID)
        .client_auth(ClientAuth::ClientSecretJwt)
        .build();
    assert!(matches!(no_secret, Err(Error::Config(ConfigError::ClientAssertion(_)))));
    let wrong_kind = ClientAssertionKey::from_pem(JwtAlgorithm::RS256, &TEST_KEY.into());
    assert!(matches!(
        wrong_kind,
        Err(Error::Config(ConfigError::ClientAssertion(_)))
    ));
    let wrong_curve = ClientAssertionKey::from_pem(JwtAlgorithm::ES384, &TEST_KEY.into());
    assert!(matches!(
        wrong_curve,
        Err(Error::Config(ConfigError::ClientAssertion(_)))
    ));
}
