//! One refresh-token presentation per refresh token, nothing lost, logout final: a regression test
//! for each way that promise was seen to break (issue #10, items 1 to 14; items 4, 10, 13 and 14 also
//! have store- and wire-level tests in `login`, `file_store` and `redis`). The reference server
//! rotates refresh tokens and revokes a token's family when one is presented twice, so "no refresh
//! token presented twice" is read from the server's counters, not from the client's bookkeeping.

use std::time::Duration;

use httpmock::Method::{GET, POST};
use oauth_sdk::{
    Authenticated, Client, Error, Expect, ExposeSecret, FileStore, Grant, LockAttempt, LockToken, ManualClock,
    MemoryStore, SessionEnd, SessionState, StoreOutage, TokenSet, TokenStore,
};
use taskboard_server::{Config, DEMO_CLIENT, DEMO_USER, Server};

use crate::sim_store::{SimShared, SimStore};
use crate::support::{Harness, LIFETIME, Traces, eventually, t0, token_body};

/// The reference server's token lifetime; the clients' clock decides when a token is due.
const HOUR: Duration = Duration::from_secs(3600);

async fn reference(config: Config) -> Server {
    taskboard_server::start(config)
        .await
        .expect("the reference server starts")
}

fn builder(server: &Server, clock: &ManualClock) -> oauth_sdk::ClientBuilder<oauth_sdk::Client> {
    Client::builder(server.base_url(), DEMO_CLIENT.0)
        .client_secret(DEMO_CLIENT.1.into())
        .clock(clock.clone())
        .refresh_retries(2, Duration::from_millis(10))
}

fn client(server: &Server, clock: &ManualClock) -> Client {
    builder(server, clock).build().expect("a valid configuration")
}

async fn login<S: TokenStore>(client: &Client, store: S) -> Authenticated<S> {
    client
        .clone()
        .login_password(store, DEMO_USER.0, DEMO_USER.1.into())
        .await
        .expect("logged in")
}

/// From the server's side: no refresh token was presented after it had been rotated.
fn assert_no_reuse(server: &Server) {
    let counted = server.counters();
    assert_eq!(
        counted.reused_refresh_tokens, 0,
        "a refresh token was presented twice: {counted:?}"
    );
    assert_eq!(counted.families_revoked, 0, "{counted:?}");
}

fn scratch_file() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("oauth-sdk-rotation-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("session.json")
}

fn stored_refresh_token(shared: &SimShared) -> String {
    let record = shared.peek().expect("a record");
    let tokens = record.tokens.expect("a live session");
    tokens
        .refresh_token()
        .expect("a refresh token")
        .expose_secret()
        .to_owned()
}

/// Item 1: a process idle while another renewed presents the store's refresh token, not its own.
#[tokio::test]
async fn an_idle_process_renews_from_the_store_not_from_its_own_copy() {
    let server = reference(Config::default()).await;
    let clock = ManualClock::new(t0());
    let path = scratch_file();
    // A daemon and a command-line tool on one file: the file pushes no change notifications.
    let daemon = login(&client(&server, &clock), FileStore::new(&path)).await;
    let tool = client(&server, &clock).resume(FileStore::new(&path)).await.unwrap();

    clock.advance(HOUR);
    daemon.get_me().await.expect("the daemon renews");
    clock.advance(HOUR);
    // The tool still holds the first refresh token, which the daemon has spent.
    tool.get_me().await.expect("the tool renews from the store's session");
    daemon.get_me().await.expect("the daemon adopts the tool's renewal");

    assert_no_reuse(&server);
    assert_eq!(server.counters().refreshes_accepted, 2);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// Item 2: after the store loses its data (and even restarts its versions at 1), a process holding
/// an older session does not take the store's session for an older one and present its spent token.
#[tokio::test]
async fn data_loss_in_the_store_does_not_bring_back_a_spent_refresh_token() {
    let server = reference(Config::default()).await;
    let clock = ManualClock::new(t0());
    let shared = SimShared::new(2);
    let a = login(&client(&server, &clock), shared.handle()).await;
    let b = client(&server, &clock).resume(shared.handle()).await.unwrap();

    clock.advance(HOUR);
    a.get_me().await.unwrap();
    b.get_me().await.unwrap();
    // Redis restarts without persistence, and its counter starts again at 1.
    shared.wipe_to_version_one();
    clock.advance(HOUR);
    a.get_me().await.expect("a puts the session back, then renews it");
    clock.advance(HOUR);
    b.get_me().await.expect("b renews from the store's newer session");
    a.get_me().await.unwrap();

    assert_no_reuse(&server);
    assert_eq!(server.counters().refreshes_accepted, 3);
    assert!(server.refresh_token_is_current(&stored_refresh_token(&shared)));
}

/// Item 3: sessions renewed while the store was down (a process that may renew alone) are written
/// back over the older stored session, never replaced by it.
#[tokio::test]
async fn a_session_renewed_during_an_outage_is_written_back_over_the_older_stored_one() {
    let server = reference(Config::default()).await;
    let clock = ManualClock::new(t0());
    let shared = SimShared::new(3);
    let alone = builder(&server, &clock)
        .store_outage(StoreOutage::RefreshAlone)
        .build()
        .unwrap();
    let api = login(&alone, shared.handle()).await;

    shared.faults(|f| f.down = true);
    clock.advance(HOUR);
    api.get_me().await.expect("renewed alone");
    api.refresh()
        .await
        .expect("renewed alone, a second time in the same outage");
    api.refresh().await.expect("and a third, from the newest refresh token");
    shared.faults(|f| f.down = false);
    api.flush(Duration::from_secs(30)).await.expect("written back");

    assert_no_reuse(&server);
    assert!(server.refresh_token_is_current(&stored_refresh_token(&shared)));
    // Another process resumes from the store and renews with what it finds.
    let other = client(&server, &clock).resume(shared.handle()).await.unwrap();
    other.refresh().await.unwrap();
    assert_no_reuse(&server);
}

/// Item 5: a logout during a renewal wins: the renewal's result is not stored or published, and the
/// session cannot be resumed.
#[tokio::test]
async fn a_logout_during_a_renewal_sticks() {
    let server = reference(Config {
        token_latency: Some(Duration::from_secs(2)),
        ..Config::default()
    })
    .await;
    let clock = ManualClock::new(t0());
    let store = MemoryStore::new();
    let client = client(&server, &clock);
    let api = login(&client, store.clone()).await;
    let logged_in = store.load().await.unwrap().unwrap().version;
    let mut changes = api.session_changes();

    clock.advance(HOUR);
    let call = tokio::spawn({
        let api = api.clone();
        async move { api.get_me().await }
    });
    // Log out once the renewal has claimed the refresh token (the server then holds the refresh
    // 2 s).
    while store.load().await.unwrap().unwrap().version == logged_in {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    api.clone().logout().await.expect("logged out");
    match call.await.unwrap() {
        Err(Error::SessionEnded(SessionEnd::LoggedOut)) => {}
        other => panic!("the call must end with the logout, got {other:?}"),
    }

    assert!(store.load().await.unwrap().expect("a tombstone").is_logged_out());
    assert!(matches!(client.clone().resume(store).await, Err(Error::NoSession)));
    changes.mark_changed();
    assert!(matches!(
        &*changes.borrow_and_update(),
        SessionState::Ended(SessionEnd::LoggedOut)
    ));
    assert!(matches!(
        api.get_me().await,
        Err(Error::SessionEnded(SessionEnd::LoggedOut))
    ));
}

/// Item 5, in another process: a logout there ends the session here at its next look at the store.
#[tokio::test]
async fn a_logout_in_another_process_ends_the_session_here() {
    let server = reference(Config::default()).await;
    let clock = ManualClock::new(t0());
    let shared = SimShared::new(5);
    let here = login(&client(&server, &clock), shared.handle()).await;
    let there = client(&server, &clock).resume(shared.handle()).await.unwrap();

    there.logout().await.unwrap();
    clock.advance(HOUR);
    match here.get_me().await {
        Err(Error::SessionEnded(SessionEnd::LoggedOut)) => {}
        other => panic!("expected the other process's logout to end the session, got {other:?}"),
    }
    assert_eq!(
        server.counters().refresh_grants,
        0,
        "nothing was renewed after the logout"
    );
    assert!(shared.peek().expect("a tombstone").is_logged_out());
}

/// Item 6: when the shared store cannot be reached at renewal time, no process refreshes alone: the
/// valid token is used, and past expiry calls fail with a transient store error.
#[tokio::test]
async fn a_store_outage_at_expiry_does_not_make_every_process_renew_alone() {
    let server = reference(Config::default()).await;
    let clock = ManualClock::new(t0());
    let shared = SimShared::new(6);
    let processes = [
        login(&client(&server, &clock), shared.handle()).await,
        client(&server, &clock).resume(shared.handle()).await.unwrap(),
        client(&server, &clock).resume(shared.handle()).await.unwrap(),
    ];

    shared.faults(|f| f.down = true);
    clock.advance(HOUR - Duration::from_secs(10)); // due, not yet expired
    for api in &processes {
        api.get_me().await.expect("the still-valid token is used");
    }
    clock.advance(Duration::from_secs(20)); // expired
    for api in &processes {
        match api.get_me().await {
            Err(error @ Error::Store(_)) => assert!(error.is_transient(), "{error}"),
            other => panic!("expected a transient store error, got {other:?}"),
        }
    }
    assert_eq!(server.counters().refresh_grants, 0, "nobody renewed alone");

    shared.faults(|f| f.down = false);
    for api in &processes {
        api.get_me().await.expect("renewed once the store is back");
    }
    assert_eq!(server.counters().refreshes_accepted, 1);
    assert_no_reuse(&server);
}

/// Item 7: only `invalid_grant` ends a session; a client error or a proxy's page is a typed error
/// that leaves the session to be renewed later.
#[tokio::test]
async fn only_invalid_grant_ends_a_session() {
    let h = Harness::start().await;
    let api = h.logged_in().await;
    h.clock.advance(Duration::from_secs(LIFETIME + 1));
    for (status, body) in [
        (401, r#"{"error":"invalid_client"}"#),
        (404, "<html>Not Found</html>"),
        (400, r#"{"error":"unsupported_grant_type"}"#),
    ] {
        let refused = h
            .server
            .mock_async(|when, then| {
                when.method(POST).path("/oauth/token");
                then.status(status).body(body);
            })
            .await;
        match api.get_me().await {
            Err(error @ Error::RenewalRefused(_)) => {
                assert!(!error.is_session_ended() && !error.is_transient(), "{error}");
                assert_eq!(error.to_string().contains("invalid_client"), status == 401, "{error}");
            }
            other => panic!("expected a refused renewal for {status}, got {other:?}"),
        }
        refused.delete_async().await;
    }
    let refresh = h.mock_refresh("rt-1", "at-2", "rt-2").await;
    h.mock_me("at-2", 200).await;
    api.get_me().await.expect("the session was kept, and renews now");
    refresh.assert_calls_async(1).await;
}

/// Item 7: a session ended by a refused refresh takes up a newer session another process stored.
#[tokio::test]
async fn a_refused_session_takes_up_a_new_login_from_the_store() {
    let server = reference(Config::default()).await;
    let clock = ManualClock::new(t0());
    let store = MemoryStore::new();
    let api = login(&client(&server, &clock), store.clone()).await;
    // The session is revoked at the server (by an administrator, say).
    let tokens = store.load().await.unwrap().unwrap().tokens.unwrap();
    reqwest::Client::new()
        .post(format!("{}/oauth/revoke", server.base_url()))
        .basic_auth(DEMO_CLIENT.0, Some(DEMO_CLIENT.1))
        .form(&[("token", tokens.refresh_token().unwrap().expose_secret())])
        .send()
        .await
        .unwrap();
    clock.advance(HOUR);
    assert!(matches!(
        api.get_me().await,
        Err(Error::SessionEnded(SessionEnd::Refused(_)))
    ));

    // The user logs in again in another process.
    let _again = login(&client(&server, &clock), store.clone()).await;
    api.get_me().await.expect("the new session is taken up from the store");
}

/// Item 8: a lock key lost while its owner stalls lets a second process take the lock, but not
/// present the refresh token too: the claim in the store lets one of them through.
#[tokio::test]
async fn a_lost_lock_and_a_stalled_owner_still_give_one_refresh() {
    let server = reference(Config::default()).await;
    let clock = ManualClock::new(t0());
    let shared = SimShared::new(8);
    let a = login(&client(&server, &clock), shared.handle()).await;
    let b = client(&server, &clock).resume(shared.handle()).await.unwrap();

    clock.advance(HOUR);
    // The first to take the lock loses it at once and stalls after reading the store.
    shared.faults(|f| f.stall_next_owner = Some(Duration::from_millis(300)));
    let (first, second) = tokio::join!(a.get_me(), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        b.get_me().await
    });
    first.expect("a");
    second.expect("b");
    assert_eq!(server.counters().refreshes_accepted, 1, "{:?}", server.counters());
    assert_no_reuse(&server);
}

/// Item 9: a rejected request that joins a renewal started only to look at the store (which found
/// nothing newer) is renewed and sent again, not sent again with the rejected token.
#[tokio::test]
async fn a_rejected_request_that_joins_a_look_at_the_store_is_renewed() {
    let h = Harness::start().await;
    let shared = SimShared::new(9);
    let api = h.logged_in_to(shared.handle()).await;
    h.server
        .mock_async(|when, then| {
            when.method(GET).path("/v1/me").header("authorization", "Bearer at-1");
            then.status(403)
                .header("www-authenticate", r#"Bearer error="invalid_token""#)
                .delay(Duration::from_millis(300));
        })
        .await;
    let refresh = h.mock_refresh("rt-1", "at-2", "rt-2").await;
    let me = h.mock_me("at-2", 200).await;

    let call = tokio::spawn({
        let api = api.clone();
        async move { api.get_me().await }
    });
    // While the API holds its 403, the store says something changed; looking takes a second.
    tokio::time::sleep(Duration::from_millis(50)).await;
    shared.faults(|f| f.latency = Duration::from_secs(1));
    shared.notify_only();
    call.await.unwrap().expect("renewed and sent again");
    refresh.assert_calls_async(1).await;
    me.assert_calls_async(1).await;
}

/// Item 10: a store that never answers fails the renewal (a transient store error) instead of
/// hanging every caller.
#[tokio::test]
async fn a_store_that_hangs_fails_the_renewal_instead_of_hanging() {
    let server = reference(Config::default()).await;
    let clock = ManualClock::new(t0());
    let shared = SimShared::new(10);
    let client = builder(&server, &clock)
        .store_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let api = login(&client, shared.handle()).await;
    shared.faults(|f| f.lock_hangs = true);
    clock.advance(HOUR);
    let outcome = tokio::time::timeout(Duration::from_secs(60), api.get_me())
        .await
        .expect("the call returned");
    match outcome {
        Err(error @ Error::Store(_)) => assert!(error.is_transient(), "{error}"),
        other => panic!("expected a store error, got {other:?}"),
    }
    assert_eq!(server.counters().refresh_grants, 0);
}

/// Item 11: a renewed session the store did not take is written back when the store answers, also
/// after the application dropped its last handle; `flush` waits for it.
#[tokio::test]
async fn a_pending_write_back_survives_the_last_handle_and_flush_waits_for_it() {
    let server = reference(Config::default()).await;
    let clock = ManualClock::new(t0());
    let shared = SimShared::new(11);
    let client = client(&server, &clock);
    for drop_handles in [false, true] {
        let api = login(&client, shared.handle()).await;
        // The claim lands; the write of the renewed session does not.
        shared.faults(|f| f.writes_left = Some(1));
        clock.advance(HOUR);
        api.get_me().await.expect("renewed, kept in memory");
        let flushed = api.flush(Duration::from_millis(200)).await;
        assert!(matches!(&flushed, Err(e) if e.is_transient()), "{flushed:?}");
        if drop_handles {
            drop(api);
            shared.faults(|f| *f = Default::default());
            eventually("the write-back was lost with the handle", async || {
                server.refresh_token_is_current(&stored_refresh_token(&shared))
            })
            .await;
        } else {
            shared.faults(|f| *f = Default::default());
            api.flush(Duration::from_secs(30)).await.expect("written back");
            assert!(server.refresh_token_is_current(&stored_refresh_token(&shared)));
        }
    }
    assert_no_reuse(&server);
}

/// Item 12: a session without a refresh token is used until it expires, not until it is due.
#[tokio::test]
async fn a_session_without_a_refresh_token_lasts_until_it_expires() {
    let h = Harness::start().await;
    let login = h
        .server
        .mock_async(|when, then| {
            when.method(POST).path("/oauth/token");
            then.status(200).json_body(token_body("at-1", None));
        })
        .await;
    let api = h
        .client()
        .login_password(
            MemoryStore::new(),
            crate::support::USERNAME,
            crate::support::PASSWORD.into(),
        )
        .await
        .unwrap();
    h.mock_me("at-1", 200).await;
    h.clock.advance(Duration::from_secs(LIFETIME - 10));
    api.get_me().await.expect("still valid, though within the refresh skew");
    login.assert_calls_async(1).await;
    h.clock.advance(Duration::from_secs(20));
    assert!(matches!(
        api.get_me().await,
        Err(Error::SessionEnded(SessionEnd::NotRenewable))
    ));
}

/// Item 13: a stored session issued to another client, or by another token endpoint, is refused.
#[tokio::test]
async fn a_session_of_another_client_or_token_endpoint_is_refused() {
    let server = reference(Config {
        clients: vec![
            (DEMO_CLIENT.0.into(), Some(DEMO_CLIENT.1.into())),
            ("other-app".into(), Some("other-secret".into())),
        ],
        ..Config::default()
    })
    .await;
    let clock = ManualClock::new(t0());
    let store = MemoryStore::new();
    login(&client(&server, &clock), store.clone()).await;

    let other_app = Client::builder(server.base_url(), "other-app")
        .client_secret("other-secret".into())
        .build()
        .unwrap();
    match other_app.resume(store.clone()).await {
        Err(Error::Store(e)) => {
            assert!(!e.is_unavailable() && e.to_string().contains("taskboard-cli"), "{e}");
        }
        other => panic!("expected the foreign session to be refused, got {other:?}"),
    }
    let staging = builder(&server, &clock)
        .token_url(format!("http://localhost:{}/oauth/token", server.addr().port()))
        .build()
        .unwrap();
    match staging.resume(store).await {
        Err(Error::Store(e)) => assert!(e.to_string().contains("issued by"), "{e}"),
        other => panic!("expected a session of another token endpoint to be refused, got {other:?}"),
    }
}

// Found in review: ways around the guarantee that the items above did not name.

/// A session without a lineage (stored by an earlier release, or seeded with `TokenSet::new`) gets
/// one with its first claim, so a renewal kept in memory is not taken for an older session and lost.
#[tokio::test]
async fn a_session_seeded_by_hand_keeps_a_renewal_the_store_did_not_take() {
    let server = reference(Config::default()).await;
    let clock = ManualClock::new(t0());
    let shared = SimShared::new(21);
    let answer = crate::support::token_answer_from_elsewhere(&server).await;
    let seeded = TokenSet::new(
        answer["access_token"].as_str().unwrap().to_owned().into(),
        Grant::Password,
        t0(),
    )
    .with_refresh_token(answer["refresh_token"].as_str().unwrap().to_owned().into())
    .with_lifetime(HOUR);
    shared.handle().store(Expect::Empty, &seeded).await.unwrap();
    let api = client(&server, &clock).resume(shared.handle()).await.unwrap();

    // The claim lands; the renewed session's write does not (reads still work).
    shared.faults(|f| f.writes_left = Some(1));
    clock.advance(HOUR);
    api.get_me().await.expect("renewed, kept in memory");
    api.get_me().await.expect("the renewal in memory is used");
    shared.faults(|f| *f = Default::default());
    api.flush(Duration::from_secs(30)).await.expect("written back");
    api.get_me().await.unwrap();
    assert_no_reuse(&server);
    assert!(server.refresh_token_is_current(&stored_refresh_token(&shared)));
}

/// A server that answers a refresh with the same access token and a rotated refresh token: another
/// process does not take the store's newer session for its own older one.
#[tokio::test]
async fn a_rotated_refresh_token_under_an_unchanged_access_token_is_told_apart() {
    let h = Harness::start().await;
    let shared = SimShared::new(22);
    let a = h.logged_in_to(shared.handle()).await;
    let b = h.client().resume(shared.handle()).await.unwrap();
    let first = h.mock_refresh("rt-1", "at-1", "rt-2").await;
    let second = h.mock_refresh("rt-2", "at-3", "rt-3").await;
    a.refresh().await.unwrap();
    b.refresh().await.unwrap();
    first.assert_calls_async(1).await;
    second.assert_calls_async(1).await;
    assert_eq!(stored_refresh_token(&shared), "rt-3");
}

/// A success the SDK cannot use may have rotated the refresh token: it is not presented again, by
/// this process or by any other, and the session ends.
#[tokio::test]
async fn an_unusable_success_is_not_followed_by_the_same_refresh_token() {
    let h = Harness::start().await;
    let api = h.logged_in().await;
    let unusable = h
        .server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/oauth/token")
                .form_urlencoded_tuple("refresh_token", "rt-1");
            then.status(200).json_body(
                serde_json::json!({"access_token": "at-2", "token_type": "N_A", "refresh_token": "rt-2", "expires_in": 3600}),
            );
        })
        .await;
    assert!(matches!(
        api.refresh().await,
        Err(Error::SessionEnded(SessionEnd::UnusableRenewal(_)))
    ));
    assert!(api.refresh().await.is_err());
    assert!(matches!(
        h.client().resume(h.store.clone()).await,
        Err(Error::NoSession)
    ));
    unusable.assert_calls_async(1).await;
}

/// A session of another OAuth client that reaches the store during a renewal is refused there too,
/// not adopted and sent with this client's credentials.
#[tokio::test]
async fn a_login_of_another_client_during_a_renewal_is_not_adopted() {
    let h = Harness::start().await;
    let shared = SimShared::new(24);
    let mine = h.logged_in_to(shared.handle()).await;
    h.mock_slow_refresh("rt-1", "at-2", "rt-2", Duration::from_millis(800))
        .await;
    h.server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/oauth/token")
                .form_urlencoded_tuple("grant_type", "password");
            then.status(200).json_body(token_body("at-other", Some("rt-other")));
        })
        .await;
    let theirs = h
        .server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/oauth/token")
                .form_urlencoded_tuple("refresh_token", "rt-other");
            then.status(200).json_body(token_body("at-other-2", Some("rt-other-2")));
        })
        .await;
    let logged_in = shared.peek().expect("a session").version;
    let renewing = tokio::spawn({
        let mine = mine.clone();
        async move { mine.refresh().await }
    });
    // Once the refresh token is claimed (the server holds the refresh 800 ms), another application
    // logs in to the same store.
    while shared.peek().expect("a session").version == logged_in {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Client::builder(h.server.base_url(), "other-app")
        .client_secret("other-secret".into())
        .build()
        .unwrap()
        .login_password(
            shared.handle(),
            crate::support::USERNAME,
            crate::support::PASSWORD.into(),
        )
        .await
        .unwrap();
    // The renewal's result is kept (its refresh token is the only good one now), in memory: the
    // other application's session is neither adopted nor written over.
    renewing.await.unwrap().expect("renewed, kept in memory");
    match &*mine.session_changes().borrow() {
        SessionState::Active(tokens) => assert_eq!(tokens.access_token().expose_secret(), "at-2"),
        other => panic!("expected the renewed session, got {other:?}"),
    }
    let stored = shared.peek().and_then(|r| r.tokens).expect("a session");
    assert_eq!(stored.access_token().expose_secret(), "at-other");
    // Calls go on with it: the refused session is looked at once, not at every call.
    let me = h.mock_me("at-2", 200).await;
    mine.get_me().await.expect("sent with the renewed token");
    mine.get_me().await.expect("sent with the renewed token");
    me.assert_calls_async(2).await;
    match mine.refresh().await {
        Err(Error::Store(e)) => assert!(!e.is_unavailable(), "{e}"),
        other => panic!("expected the other client's session to be refused, got {other:?}"),
    }
    theirs.assert_calls_async(0).await;
}

/// `StoreOutage::RefreshAlone` renews against a store that hangs, not only one that refuses.
#[tokio::test]
async fn refresh_alone_renews_when_the_store_hangs() {
    let server = reference(Config::default()).await;
    let clock = ManualClock::new(t0());
    let shared = SimShared::new(26);
    let alone = builder(&server, &clock)
        .store_timeout(Duration::from_millis(200))
        .store_outage(StoreOutage::RefreshAlone)
        .build()
        .unwrap();
    let api = login(&alone, shared.handle()).await;
    shared.faults(|f| f.latency = Duration::from_secs(2));
    clock.advance(HOUR + Duration::from_secs(1));
    api.get_me().await.expect("renewed alone");
    assert_eq!(server.counters().refreshes_accepted, 1);
}

/// A store without a one-step lock-and-read, or write-and-unlock (the trait's defaults make each two
/// calls), has a store timeout for each call: calls that each take most of the timeout still renew,
/// and the write that stores the result is not taken for a failure.
#[tokio::test]
async fn a_store_whose_every_call_takes_most_of_the_timeout_still_renews() {
    let server = reference(Config::default()).await;
    let clock = ManualClock::new(t0());
    let shared = SimShared::new(28);
    let patient = builder(&server, &clock)
        .store_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let api = login(&patient, shared.handle()).await;
    let traces = Traces::capture(tracing::Level::WARN);
    shared.faults(|f| f.latency = Duration::from_millis(1800));
    clock.advance(HOUR + Duration::from_secs(1));
    api.get_me().await.expect("renewed, each call within its timeout");
    assert!(!traces.text().contains("kept in memory"), "{}", traces.text());
    assert_eq!(server.counters().refreshes_accepted, 1);
    assert!(server.refresh_token_is_current(&stored_refresh_token(&shared)));
}

/// Found by the fault simulation (seed 4908, under load): a process that read another's newer
/// renewal from the store, and then failed to renew it, must not count that renewal as seen while
/// it still holds its older copy. Otherwise, once the store loses its data, it puts the older copy
/// back as the newest and presents a spent refresh token.
#[tokio::test]
async fn a_failed_renewal_of_a_newer_stored_session_keeps_that_session_not_the_spent_copy() {
    let server = reference(Config::default()).await;
    let clock = ManualClock::new(t0());
    let shared = SimShared::new(27);
    let a = login(&client(&server, &clock), shared.handle()).await;
    let b = client(&server, &clock).resume(shared.handle()).await.unwrap();

    // b hears nothing of a's renewal, so it still holds the first session.
    shared.faults(|f| f.hold_notifications = true);
    clock.advance(HOUR);
    a.get_me().await.expect("a renews");
    drop(a);

    // b reads a's renewal from the store, but cannot renew it: the token endpoint misbehaves.
    server.redirect_token_requests(true);
    clock.advance(HOUR);
    let failed = b.get_me().await.expect_err("the token endpoint redirects");
    assert!(matches!(failed, Error::InvalidTokenResponse(_)), "{failed:?}");
    server.redirect_token_requests(false);

    // Redis restarts without persistence; b is the only process left holding the session.
    shared.faults(|f| f.hold_notifications = false);
    shared.wipe();
    b.get_me().await.expect("b puts the newest session back and renews it");

    assert_no_reuse(&server);
    assert_eq!(server.counters().refreshes_accepted, 2);
    assert!(server.refresh_token_is_current(&stored_refresh_token(&shared)));
}

/// Found by the fault simulation (seed 2764): a call whose token expired joined a look at the store
/// that had begun while the store was slow, and failed with the look's timeout although the store
/// had recovered. A failed look is not the caller's renewal: the caller makes one attempt of its own.
#[tokio::test]
async fn a_call_that_joins_a_failed_look_at_the_store_renews_on_its_own() {
    let server = reference(Config::default()).await;
    let clock = ManualClock::new(t0());
    let shared = SimShared::new(28);
    let client = builder(&server, &clock)
        .store_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let api = login(&client, shared.handle()).await;

    // The store hangs, and a notification makes the session look at it in the background.
    shared.faults(|f| f.latency = Duration::from_secs(60));
    let before = shared.calls();
    shared.notify_only();
    while shared.calls() == before {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The store recovers while the look still waits on it; the token is due.
    shared.faults(|f| f.latency = Duration::ZERO);
    clock.advance(HOUR);
    api.get_me().await.expect("renewed once the look failed");

    assert_eq!(server.counters().refreshes_accepted, 1);
    assert_no_reuse(&server);
}

/// A renewal whose result the store refuses for good (not a passing outage: a sealing key it lacks,
/// a session it cannot read) keeps the renewed tokens: the refresh token they replace is spent, and
/// dropping them would make the next renewal present it again.
#[tokio::test]
async fn a_renewal_the_store_refuses_is_kept_in_memory_and_written_back() {
    let server = reference(Config::default()).await;
    let clock = ManualClock::new(t0());
    let shared = SimShared::new(29);
    let api = login(&client(&server, &clock), shared.handle()).await;

    // The claim lands; the write of the renewed session is refused.
    shared.faults(|f| {
        f.writes_left = Some(1);
        f.writes_invalid = true;
    });
    clock.advance(HOUR);
    api.get_me().await.expect("renewed, kept in memory");
    let flushed = api.flush(Duration::from_millis(200)).await;
    assert!(flushed.is_err(), "nothing could be written back yet");
    clock.advance(Duration::from_secs(60));
    api.get_me().await.expect("the renewed token is still used");

    shared.faults(|f| *f = Default::default());
    api.flush(Duration::from_secs(30)).await.expect("written back");
    assert!(server.refresh_token_is_current(&stored_refresh_token(&shared)));
    clock.advance(HOUR);
    api.get_me().await.expect("renewed again from the written-back session");
    assert_eq!(server.counters().refreshes_accepted, 2);
    assert_no_reuse(&server);
}

/// Found by killing a Redis master mid-renewals: the write-back of a renewal whose store write
/// failed was started before the renewed token became the session's current one, and its first
/// attempt, run while the renewal was still releasing its lock (a store call, which yields), took
/// the token it was to write for one replaced by another session, and stopped. The renewed pair was
/// then in memory only, the claim on the spent refresh token lapsed, and the next renewal elsewhere
/// presented that token again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_back_begun_before_the_renewal_ends_is_not_dropped() {
    let server = reference(Config::default()).await;
    let clock = ManualClock::new(t0());
    let shared = SimShared::new(30);
    let api = login(&client(&server, &clock), shared.handle()).await;

    // Every store call takes a while (well within the timeout), so that releasing the lock yields;
    // the claim lands, the renewed session's write does not, nor does the unlock.
    shared.faults(|f| {
        f.latency = Duration::from_millis(300);
        f.writes_left = Some(1);
    });
    clock.advance(HOUR);
    api.get_me().await.expect("renewed, kept in memory");
    let pending = api.flush(Duration::from_millis(100)).await;
    assert!(pending.is_err(), "the renewed session is waiting to be written back");

    shared.faults(|f| *f = Default::default());
    api.flush(Duration::from_secs(30)).await.expect("written back");
    assert!(
        server.refresh_token_is_current(&stored_refresh_token(&shared)),
        "the store holds the renewed session"
    );
    // Another process, once the claim would have lapsed, renews from the store without presenting
    // a spent refresh token.
    let other = client(&server, &clock).resume(shared.handle()).await.unwrap();
    clock.advance(HOUR);
    other.get_me().await.expect("renewed from the written-back session");
    assert_no_reuse(&server);
}

/// A renewal lock the store could not release (found read-only, or gone) is released once the store
/// answers again, not left to its TTL: until then every renewal of the session, in every process,
/// would wait for it, and calls past the token's expiry would fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_a_store_outage_kept_is_released_once_the_store_is_back() {
    let server = reference(Config::default()).await;
    let clock = ManualClock::new(t0());
    let shared = SimShared::new(31);
    let client = patient(&server, &clock);
    let api = login(&client, shared.handle()).await;

    // The claim lands; the renewed session's write does not, nor does the unlock.
    shared.faults(|f| f.writes_left = Some(1));
    clock.advance(HOUR);
    api.get_me().await.expect("renewed, kept in memory");
    shared.faults(|f| *f = Default::default());
    api.flush(Duration::from_secs(30)).await.expect("written back");

    // Another process renews next: it finds the lock free, not held for the TTL.
    another_renews_at_once(&client, &shared, &clock).await;
    assert_eq!(server.counters().refreshes_accepted, 2);
    assert_no_reuse(&server);
}

/// A client whose renewal lock has a TTL of more than ten minutes: a test that waits one out fails.
fn patient(server: &Server, clock: &ManualClock) -> Client {
    builder(server, clock)
        .refresh_timeout(Duration::from_secs(600))
        .build()
        .unwrap()
}

/// Another process, resumed on `shared`, renews at once (within a minute, not the lock's TTL).
async fn another_renews_at_once(client: &Client, shared: &SimShared, clock: &ManualClock) {
    let other = client.clone().resume(shared.handle()).await.unwrap();
    clock.advance(HOUR);
    tokio::time::timeout(Duration::from_secs(60), other.get_me())
        .await
        .expect("the lock was left to its TTL")
        .expect("renewed");
}

/// A lock the store took while its answer was lost is released by the session that asked for it,
/// which named its owner: before, nobody knew the owner, and every process waited out its TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_whose_answer_was_lost_is_released_not_left_to_its_ttl() {
    let server = reference(Config::default()).await;
    let clock = ManualClock::new(t0());
    let shared = SimShared::new(33);
    let client = patient(&server, &clock);
    let api = login(&client, shared.handle()).await;

    shared.faults(|f| f.lose_next_lock_reply = true);
    clock.advance(HOUR);
    let error = api.get_me().await.expect_err("no lock, no renewal past expiry");
    assert!(error.is_transient(), "{error}");

    another_renews_at_once(&client, &shared, &clock).await;
    assert_eq!(server.counters().refreshes_accepted, 1);
    assert_no_reuse(&server);
}

/// A claim stored while its answer was lost is found in the store, and the renewal goes on under it:
/// before, the call failed and every other process waited for the claim to lapse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_answer_was_lost_is_taken_up_not_left_to_lapse() {
    let server = reference(Config::default()).await;
    let clock = ManualClock::new(t0());
    let shared = SimShared::new(34);
    let client = patient(&server, &clock);
    let api = login(&client, shared.handle()).await;

    shared.faults(|f| f.lose_next_write_reply = true);
    clock.advance(HOUR);
    api.get_me().await.expect("renewed under the claim that landed");
    assert_eq!(shared.failed_calls(), 1, "the claim's answer was lost");
    let stored = shared.peek().and_then(|stored| stored.tokens).expect("a live session");
    assert!(
        stored.expires_at().unwrap() > oauth_sdk::Clock::now(&clock),
        "the renewal was stored"
    );

    another_renews_at_once(&client, &shared, &clock).await;
    assert_eq!(server.counters().refreshes_accepted, 2);
    assert_no_reuse(&server);
}

/// A store on the trait's default `store_and_unlock` whose unlock fails after the write was stored:
/// the lock is released later, as after any failed unlock, rather than only logged and left to its
/// TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_write_with_unlock_whose_unlock_fails_still_releases_the_lock() {
    let server = reference(Config::default()).await;
    let clock = ManualClock::new(t0());
    let shared = SimShared::new(35);
    let client = patient(&server, &clock);
    let api = login(&client, shared.handle()).await;

    shared.faults(|f| f.fail_next_unlock = true);
    clock.advance(HOUR);
    api.get_me().await.expect("renewed");
    api.flush(Duration::from_secs(30)).await.expect("written");

    another_renews_at_once(&client, &shared, &clock).await;
    assert_eq!(server.counters().refreshes_accepted, 2);
    assert_no_reuse(&server);
}

/// A lock whose release was sent but not answered is not taken again under its owner: the unlock may
/// still be carried out (late), and would then release the lock of the renewal that took it again.
/// The next renewal takes a lock of its own once the old one is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_unlock_does_not_release_the_next_renewal_s_lock() {
    let server = reference(Config {
        token_latency: Some(Duration::from_secs(4)),
        ..Config::default()
    })
    .await;
    let clock = ManualClock::new(t0());
    let shared = SimShared::new(39);
    let api = login(&client(&server, &clock), shared.handle()).await;

    // Every unlock fails at once and is carried out a second later.
    shared.faults(|f| f.late_unlocks = Some(Duration::from_secs(1)));
    clock.advance(HOUR);
    api.get_me().await.expect("renewed; the lock's release unanswered");
    let renewed = shared.peek().expect("stored").version;
    let next = tokio::spawn({
        let api = api.clone();
        async move { api.refresh().await }
    });
    // Once the next renewal has claimed the refresh token (it then waits 4 s for the server), and
    // the first renewal's unlocks have been carried out:
    let claimed_and_unlocked = async {
        while shared.peek().expect("stored").version == renewed || shared.late_unlocks() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), claimed_and_unlocked)
        .await
        .expect("the next renewal never claimed the refresh token: it waited for the old lock");
    assert!(
        shared.lock_owner().is_some(),
        "a late unlock released the lock of the renewal under way"
    );
    shared.faults(|f| *f = Default::default());
    next.await.unwrap().expect("renewed again");
    assert_eq!(server.counters().refreshes_accepted, 2);
    assert_no_reuse(&server);
}

/// A renewal whose result the store did not take: the claim lands, the result's write does not, and
/// the renewed session waits in memory to be written back.
async fn renewed_in_memory_only(api: &Authenticated<SimStore>, shared: &SimShared, clock: &ManualClock) {
    shared.faults(|f| f.writes_left = Some(1));
    clock.advance(HOUR);
    api.get_me().await.expect("renewed, kept in memory");
}

/// Found by the fault simulation (seed 318, an outage part-way through a renewal): a renewal kept in
/// memory while the store was down, a logout that the store could not take (the session ends here,
/// its write-back goes on), and the store losing its data meanwhile. Once the store is back, another
/// process puts its older copy back under a short claim, for a process with a newer renewal to write
/// over. The write-back must do that within the claim, not at its next backoff, seconds later: the
/// other process would then renew from its copy, whose refresh token is spent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_write_back_writes_over_an_older_copy_put_back_after_the_store_lost_its_data() {
    let server = reference(Config::default()).await;
    let clock = ManualClock::new(t0());
    let shared = SimShared::new(41);
    let a = login(&client(&server, &clock), shared.handle()).await;
    let b = builder(&server, &clock)
        .store_timeout(Duration::from_millis(250))
        .build()
        .unwrap()
        .resume(shared.handle())
        .await
        .unwrap();

    // The claim lands and the token is rotated; the result's write does not land.
    shared.faults(|f| f.writes_left = Some(1));
    a.refresh().await.expect("renewed, kept in memory");
    let writing_back = a.clone();
    let error = a.logout().await.expect_err("the store cannot take the logout");
    assert!(matches!(&error, Error::Store(e) if e.is_unavailable()), "{error:?}");
    // b looks at the store and sees a's claim (its call is rejected: a's renewal revoked the access
    // token b holds, and b cannot renew while the store refuses the lock).
    let _ = b.get_me().await;
    // a's write-back has failed long enough to wait its longest between attempts; right after one
    // attempt, the store loses its data and comes back.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let failed = shared.failed_calls();
    eventually("the write-back stopped trying", async || shared.failed_calls() > failed).await;
    shared.wipe();
    shared.faults(|f| *f = Default::default());

    clock.advance(HOUR);
    b.get_me()
        .await
        .expect("b renews from a's renewal, not from its own copy");
    writing_back.flush(Duration::from_secs(30)).await.expect("written back");
    assert_no_reuse(&server);
    assert_eq!(server.counters().refreshes_accepted, 2);
    assert!(server.refresh_token_is_current(&stored_refresh_token(&shared)));
}

/// A logout whose tombstone was stored stops this process's write-back of a renewal, even if the
/// store then loses the tombstone (an unplanned failover to a replica that never saw it): the
/// write-back would otherwise bring the logged-out session back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_logout_is_not_undone_by_its_own_write_back_when_the_store_loses_it() {
    let server = reference(Config::default()).await;
    let clock = ManualClock::new(t0());
    let shared = SimShared::new(36);
    let api = login(&client(&server, &clock), shared.handle()).await;
    renewed_in_memory_only(&api, &shared, &clock).await;

    let handle = api.clone();
    shared.faults(|f| f.clears_pass = true);
    api.logout().await.expect("logged out, the tombstone stored");
    shared.wipe();
    shared.faults(|f| *f = Default::default());
    handle
        .flush(Duration::from_secs(30))
        .await
        .expect("the write-back ended");
    assert!(shared.peek().is_none(), "the write-back brought the session back");
    assert_no_reuse(&server);
}

/// A write-back that meets another process's logout revokes the tokens its renewal obtained, as a
/// renewal that meets one does: they must not outlive the logout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_back_that_meets_a_logout_revokes_its_renewed_tokens() {
    let server = reference(Config::default()).await;
    let clock = ManualClock::new(t0());
    let shared = SimShared::new(37);
    let client = builder(&server, &clock)
        .revocation_url("/oauth/revoke")
        .build()
        .unwrap();
    let api = login(&client, shared.handle()).await;
    let other = client.clone().resume(shared.handle()).await.unwrap();
    renewed_in_memory_only(&api, &shared, &clock).await;

    shared.faults(|f| f.clears_pass = true);
    other.logout().await.expect("logged out");
    assert_eq!(server.counters().revocations, 1, "the other process's tokens");
    shared.faults(|f| *f = Default::default());
    api.flush(Duration::from_secs(30)).await.expect("the write-back ended");
    assert_eq!(server.counters().revocations, 2, "the renewed tokens were not revoked");
    assert!(matches!(
        api.get_me().await,
        Err(Error::SessionEnded(SessionEnd::LoggedOut))
    ));
}

/// The write-back of a session that has ended here (a logout whose tombstone the store did not take)
/// stops at a store that refuses the write for good, an invalid error rather than an outage, instead
/// of trying again for the life of the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_session_s_write_back_stops_at_a_store_that_refuses_it_for_good() {
    let server = reference(Config::default()).await;
    let clock = ManualClock::new(t0());
    let shared = SimShared::new(38);
    let api = login(&client(&server, &clock), shared.handle()).await;
    renewed_in_memory_only(&api, &shared, &clock).await;

    let handle = api.clone();
    api.logout().await.expect_err("the store did not take the tombstone");
    shared.faults(|f| f.writes_invalid = true);
    handle
        .flush(Duration::from_secs(30))
        .await
        .expect("the write-back gave up at a store that refuses it");
    assert_no_reuse(&server);
}

/// A process waiting for another's renewal looks at the store when it pushes a new version, or once
/// per poll interval (50 ms): found with the fault simulation, the wait took every version pushed
/// since the session began as new, and so did not wait at all, but read the store in a loop for as
/// long as the other held the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_waiting_for_another_s_renewal_does_not_spin_on_the_store() {
    let server = reference(Config::default()).await;
    let clock = ManualClock::new(t0());
    let shared = SimShared::new(32);
    let api = login(&client(&server, &clock), shared.handle()).await;
    // A version pushed after the session began.
    shared.notify_only();
    // Another process holds the renewal lock, and renews nothing, for two seconds.
    let lock = LockToken::random();
    assert_eq!(
        shared.handle().try_lock(&lock, HOUR).await.unwrap(),
        LockAttempt::Acquired
    );
    let holder = shared.handle();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        holder.unlock(&lock).await.unwrap();
    });
    let before = shared.calls();
    clock.advance(HOUR);
    api.get_me().await.expect("renewed once the lock is free");
    let calls = shared.calls() - before;
    // About two calls (the lock and a read) per 50 ms for two seconds: some eighty. A spinning wait
    // makes tens of thousands.
    assert!(calls < 400, "{calls} store calls while waiting two seconds");
    assert_no_reuse(&server);
}
