//! End to end against the reference server: real tokens that expire, rotate, and get revoked.

use std::time::Duration;

use futures::stream;
use oauth_sdk::types::{NewProject, NewTask, TaskPatch, TaskStatus};
use oauth_sdk::{Authenticated, Client, Error, MemoryStore, SessionEnd, TokenStore};
use taskboard_server::{Config, DEMO_CLIENT, DEMO_USER, Server};

/// The reference server, and a client that revokes at logout.
async fn reference(config: Config) -> (Server, Client) {
    crate::support::reference_with(config, |builder| builder.revocation_url("/oauth/revoke")).await
}

async fn login(client: Client, store: MemoryStore) -> Authenticated<MemoryStore> {
    client
        .login_password(store, DEMO_USER.0, DEMO_USER.1.into())
        .await
        .expect("login")
}

fn short_lived(lifetime_ms: u64) -> Config {
    Config {
        access_token_lifetime: Duration::from_millis(lifetime_ms),
        ..Config::default()
    }
}

#[tokio::test]
async fn every_operation_of_the_spec_works() {
    let (server, client) = reference(Config::default()).await;
    assert_eq!(client.health().await.unwrap().status, "ok");
    let api = login(client, MemoryStore::new()).await;

    let me = api.get_me().await.unwrap();
    assert_eq!(me.username, DEMO_USER.0);
    assert_eq!(me.scopes, ["tasks.read", "tasks.write"]);

    let mut ids = Vec::new();
    for name in ["one", "two", "three"] {
        let project = api
            .create_project(&NewProject {
                name: name.try_into().unwrap(),
                description: None,
            })
            .await
            .unwrap();
        assert_eq!(project.status(), 201);
        ids.push(project.into_inner().id);
    }
    let first = api
        .list_projects(None, std::num::NonZeroU32::new(2))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.items.len(), 2);
    let rest = api
        .list_projects(first.next_cursor.as_deref(), None)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.next_cursor, None);
    assert_eq!(api.get_project(&ids[2]).await.unwrap().name, "three");

    let task = api
        .create_task(
            &ids[0],
            &NewTask {
                title: "a".try_into().unwrap(),
                status: None,
            },
        )
        .await
        .unwrap();
    api.create_task(
        &ids[0],
        &NewTask {
            title: "b".try_into().unwrap(),
            status: Some(TaskStatus::Done),
        },
    )
    .await
    .unwrap();
    let done = api.list_tasks(&ids[0], Some(TaskStatus::Done)).await.unwrap();
    assert_eq!(done.items.len(), 1);
    let patched = api
        .update_task(
            &task.id,
            &TaskPatch {
                title: None,
                status: Some(TaskStatus::Doing),
            },
        )
        .await
        .unwrap();
    assert_eq!(patched.status, TaskStatus::Doing);

    assert_eq!(api.put_attachment(&task.id, b"12345".to_vec()).await.unwrap().size, 5);
    let chunks = stream::iter([
        Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"abc")),
        Ok(bytes::Bytes::from_static(b"def")),
    ]);
    // Spawned: every operation's future is `Send`, a streamed upload's too.
    let streamed = tokio::spawn({
        let (api, id) = (api.clone(), task.id.clone());
        async move { api.put_attachment(&id, reqwest::Body::wrap_stream(chunks)).await }
    });
    assert_eq!(streamed.await.unwrap().unwrap().size, 6);

    assert_eq!(api.delete_task(&task.id).await.unwrap().status(), 204);
    match api.get_project("no-such-project").await {
        Err(Error::Api(response)) => {
            assert_eq!(response.status(), 404);
            assert_eq!(response.error, "not_found");
        }
        other => panic!("expected the API's 404, got {other:?}"),
    }
    let counted = server.counters();
    assert_eq!(counted.api(401) + counted.api(403), 0);
}

#[tokio::test]
async fn tokens_expiring_mid_run_are_renewed_ahead_without_a_single_rejection() {
    let (server, client) = reference(short_lived(1000)).await;
    let api = login(client, MemoryStore::new()).await;
    for _ in 0..8 {
        api.get_me().await.expect("no call fails");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let counted = server.counters();
    assert!(counted.refreshes_accepted >= 2, "{counted:?}");
    assert_eq!(counted.api(403), 0, "renewed ahead, never rejected: {counted:?}");
    assert_eq!(counted.refreshes_rejected, 0);
    assert_eq!(counted.reused_refresh_tokens, 0);
}

#[tokio::test]
async fn a_request_in_flight_when_a_refresh_revokes_its_token_is_sent_again_without_a_second_refresh() {
    // Requests reach the handler 800 ms after they are sent. Tokens live 2 s, are renewed from
    // half-life (1 s), and calls wait for the renewal from 1.5 s. Every event below is 200 ms or
    // more from the next, for loaded machines. The server revokes the old access token when it
    // renews. In the background, the renewal starts when a call has its answer after the call at
    // 1.05 s found the token due: the first call's, at 1.3 s.
    for background in [true, false] {
        let (server, client) = crate::support::reference_with(
            Config {
                api_latency: Some(Duration::from_millis(800)),
                ..short_lived(2000)
            },
            |builder| builder.background_renewal(background),
        )
        .await;
        let api = login(client, MemoryStore::new()).await;
        let started = tokio::time::Instant::now();

        // Sent at 0.5 s with the first token, checked at 1.3 s: waiting, the refresh at 1.05 s
        // revoked it by then; in the background, the refresh follows its answer.
        tokio::time::sleep_until(started + Duration::from_millis(500)).await;
        let in_flight = tokio::spawn({
            let api = api.clone();
            async move { api.get_me().await.map(drop) }
        });
        tokio::time::sleep_until(started + Duration::from_millis(1050)).await;
        // Waiting, sent with the second token; in the background, with the first, checked at 1.85 s,
        // after the refresh at 1.3 s revoked it.
        api.get_me().await.expect("sent, renewed ahead");
        in_flight.await.unwrap().expect("sent, or rejected once and sent again");

        let counted = server.counters();
        assert_eq!(counted.refreshes_accepted, 1, "{counted:?}");
        // One request was in flight with the first token when the refresh revoked it.
        assert_eq!(counted.api(403), 1, "{counted:?}");
        assert_eq!(counted.api(200), 2, "{counted:?}");
    }
}

/// The call that finds its token due in the first half of the renewal window is sent with it, and the
/// renewal starts once it has its answer: a server that revokes the old access token when it renews
/// does not reject the very call that started the renewal (which, against a fast store, the renewal
/// used to outrun).
#[tokio::test]
async fn the_call_that_finds_its_token_due_is_not_rejected_by_the_renewal_it_starts() {
    // Requests reach the handler 800 ms after they are sent; the client's clock says when tokens
    // are due.
    let (server, client, clock) = crate::support::reference_on_clock(Config {
        api_latency: Some(Duration::from_millis(800)),
        ..Config::default()
    })
    .await;
    let api = login(client, MemoryStore::new()).await;
    crate::support::into_renewal_window(&clock);
    let mut changes = api.session_changes();
    changes.borrow_and_update();

    api.get_me().await.expect("sent with the token, still good");
    tokio::time::timeout(Duration::from_secs(60), changes.changed())
        .await
        .expect("renewed after the call's answer")
        .unwrap();
    let counted = server.counters();
    assert_eq!(counted.refreshes_accepted, 1, "{counted:?}");
    assert_eq!(counted.api(403), 0, "{counted:?}");
    assert_eq!(counted.api(200), 1, "{counted:?}");
    assert_eq!(api.metrics().resent, 0);
    assert_eq!(api.metrics().renewals_ahead_of_expiry, 1);
}

/// `flush` waits for a renewal a call started in the background, not only for a write-back: a process
/// that exits right after its last call keeps the rotated pair.
#[tokio::test]
async fn flush_waits_for_the_renewal_a_call_started() {
    // The token endpoint answers 800 ms after a request; the client's clock says when tokens are due.
    let (server, client, clock) = crate::support::reference_on_clock(Config {
        token_latency: Some(Duration::from_millis(800)),
        ..Config::default()
    })
    .await;
    let api = login(client, MemoryStore::new()).await;
    crate::support::into_renewal_window(&clock);
    api.get_me().await.expect("sent with the token, still good");
    api.flush(Duration::from_secs(60)).await.expect("the renewal ended");
    assert_eq!(api.metrics().refreshes, 1, "{:?}", api.metrics());
    assert_eq!(server.counters().refreshes_accepted, 1);
}

#[tokio::test]
async fn a_thousand_requests_on_an_expired_token_cost_one_refresh() {
    // Tokens must outlive the queue of 1,000 requests at the server, or the renewed token expires too.
    let (server, client) = reference(short_lived(2000)).await;
    let api = login(client, MemoryStore::new()).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let calls: Vec<_> = (0..1000)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move { api.get_me().await.map(drop) })
        })
        .collect();
    for call in calls {
        call.await.unwrap().expect("every request succeeds");
    }
    let counted = server.counters();
    assert_eq!(counted.refreshes_accepted, 1, "{counted:?}");
    assert_eq!(counted.reused_refresh_tokens, 0);
    assert_eq!(counted.api(200), 1000);
}

#[tokio::test]
async fn an_api_that_answers_401_works_the_same() {
    let config = Config {
        invalid_token_status: reqwest::StatusCode::UNAUTHORIZED,
        ..short_lived(1000)
    };
    let (server, client) = reference(config).await;
    let store = MemoryStore::new();
    let api = login(client, store.clone()).await;
    // The token is revoked behind the client's back; the API says 401, and the client renews once.
    let stored = store.load().await.unwrap().unwrap();
    let revoked = reqwest::Client::new()
        .post(format!("{}/oauth/revoke", server.base_url()))
        .basic_auth(DEMO_CLIENT.0, Some(DEMO_CLIENT.1))
        .form(&[(
            "token",
            secrecy::ExposeSecret::expose_secret(stored.tokens.as_ref().expect("a live session").access_token()),
        )])
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success());

    api.get_me().await.expect("renewed after the 401");
    let counted = server.counters();
    assert_eq!(counted.api(401), 1);
    assert_eq!(counted.refreshes_accepted, 1);
}

#[tokio::test]
async fn logout_revokes_the_session_at_the_server() {
    let (server, client) = reference(Config::default()).await;
    let store = MemoryStore::new();
    let api = login(client.clone(), store.clone()).await;
    let copy = MemoryStore::new();
    let stolen = store.load().await.unwrap().unwrap();
    copy.store(oauth_sdk::Expect::Any, stolen.tokens.as_ref().expect("a live session"))
        .await
        .unwrap();

    api.logout().await.expect("logged out");
    assert!(store.load().await.unwrap().expect("a tombstone").is_logged_out());
    let counted = server.counters();
    assert_eq!((counted.revocations, counted.families_revoked), (1, 1));

    // A copy of the session taken before logout is dead: its access and refresh tokens are revoked.
    let zombie = client.resume(copy).await.unwrap();
    match zombie.get_me().await {
        Err(Error::SessionEnded(SessionEnd::Refused(oauth))) => {
            assert_eq!(oauth.code(), "invalid_grant")
        }
        other => panic!("expected the session to be over, got {other:?}"),
    }
}

/// Tokens from another library's login, handed over with `start_session` as `Grant::External`:
/// used, renewed at the token endpoint (here the password flow's: the spec declares no
/// authorization-code flow), and still external after renewal. Without a refresh token, such a
/// session ends at expiry instead of asking for anything.
#[tokio::test]
async fn a_session_started_from_tokens_obtained_elsewhere_is_renewed_like_any_other() {
    use oauth_sdk::{Grant, TokenSet};
    let (server, client) = reference(Config::default()).await;
    let elsewhere = || async {
        let answer = crate::support::token_answer_from_elsewhere(&server).await;
        let secret = |field: &str| answer[field].as_str().expect(field).to_owned().into();
        TokenSet::new(secret("access_token"), Grant::External, std::time::SystemTime::now())
            .with_lifetime(Duration::from_secs(3600))
            .with_refresh_token(secret("refresh_token"))
    };

    let store = MemoryStore::new();
    let api = client
        .clone()
        .start_session(store.clone(), elsewhere().await)
        .await
        .expect("started");
    assert_eq!(api.get_me().await.unwrap().username, DEMO_USER.0);
    api.refresh().await.expect("renewed with its refresh token");
    assert_eq!(api.get_me().await.unwrap().username, DEMO_USER.0);
    let counters = server.counters();
    assert_eq!((counters.password_grants, counters.refreshes_accepted), (1, 1));
    let stored = store.load().await.unwrap().and_then(|v| v.tokens).expect("stored");
    assert_eq!(stored.grant(), Grant::External);

    // No refresh token: used while valid, then over, with no request to the token endpoint.
    let mut tokens = elsewhere().await;
    tokens = TokenSet::new(
        tokens.access_token().clone(),
        Grant::External,
        std::time::SystemTime::now(),
    );
    let api = client.start_session(MemoryStore::new(), tokens).await.expect("started");
    assert_eq!(api.get_me().await.unwrap().username, DEMO_USER.0);
    assert!(matches!(
        api.refresh().await,
        Err(Error::SessionEnded(SessionEnd::NotRenewable))
    ));
    assert_eq!(server.counters().refresh_grants, 1, "nothing was asked for");
}
