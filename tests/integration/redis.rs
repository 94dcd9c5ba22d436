//! The Redis store against a real `redis-server` of the test's own: compare-and-set, isolation, the
//! renewal lock, one refresh across OS processes, nothing lost when Redis dies mid-renewal, and TLS
//! with an ACL user.

use std::time::{Duration, Instant};

use oauth_sdk::{Client, Expect, ExposeSecret, LockAttempt, RedisStore, Swap, TokenStore};
use taskboard_server::{Config, DEMO_CLIENT, DEMO_USER, RedisServer, Server};

use crate::fleet::Fleet;
use crate::support::t0;

fn tokens(access: &str) -> oauth_sdk::TokenSet {
    oauth_sdk::TokenSet::new(access.into(), oauth_sdk::Grant::Password, t0())
        .with_refresh_token(format!("{access}-refresh").into())
        .with_lifetime(Duration::from_secs(60))
}

async fn store(redis: &RedisServer, session: &str) -> RedisStore {
    RedisStore::connect(&redis.url(), "test", session)
        .await
        .expect("connected to the test's redis-server")
}

async fn reference(lifetime: Duration) -> (Server, Client) {
    reference_with(Config {
        access_token_lifetime: lifetime,
        ..Config::default()
    })
    .await
}

async fn reference_with(config: Config) -> (Server, Client) {
    let server = taskboard_server::start(config).await.unwrap();
    let client = Client::builder(server.base_url(), DEMO_CLIENT.0)
        .client_secret(DEMO_CLIENT.1.into())
        .build()
        .unwrap();
    (server, client)
}

#[tokio::test]
async fn compare_and_set_refuses_a_writer_holding_an_older_session() {
    let redis = RedisServer::start();
    let (a, b) = (store(&redis, "s").await, store(&redis, "s").await);
    let Swap::Stored(v1) = a.store(Expect::Empty, &tokens("one")).await.unwrap() else {
        panic!("first write")
    };
    let Swap::Stored(v2) = b.store(Expect::Version(v1), &tokens("two")).await.unwrap() else {
        panic!("second write")
    };
    assert!(v2 > v1);
    match a.store(Expect::Version(v1), &tokens("stale")).await.unwrap() {
        Swap::Conflict(Some(current)) => {
            assert_eq!(current.version, v2);
            assert_eq!(current.tokens.as_ref().unwrap().access_token().expose_secret(), "two");
        }
        other => panic!("the older writer must lose, got {other:?}"),
    }
    assert!(matches!(
        a.store(Expect::Empty, &tokens("x")).await.unwrap(),
        Swap::Conflict(Some(_))
    ));
    // Versions are never reused, even after the session is cleared.
    a.clear().await.unwrap();
    let Swap::Stored(v3) = a.store(Expect::Empty, &tokens("three")).await.unwrap() else {
        panic!("after clear")
    };
    assert!(v3 > v2);
}

#[tokio::test]
async fn sessions_in_one_redis_stay_isolated() {
    let redis = RedisServer::start();
    let (ada, bob) = (store(&redis, "ada").await, store(&redis, "bob").await);
    ada.store(Expect::Any, &tokens("ada-token")).await.unwrap();
    assert!(bob.load().await.unwrap().is_none());
    bob.store(Expect::Any, &tokens("bob-token")).await.unwrap();
    bob.clear().await.unwrap();
    let ada_now = ada.load().await.unwrap().expect("ada's session is untouched");
    assert_eq!(
        ada_now.tokens.as_ref().unwrap().access_token().expose_secret(),
        "ada-token"
    );
    let LockAttempt::Acquired(_) = ada.try_lock(Duration::from_secs(5)).await.unwrap() else {
        panic!("ada's lock")
    };
    assert!(matches!(
        bob.try_lock(Duration::from_secs(5)).await.unwrap(),
        LockAttempt::Acquired(_)
    ));
}

#[tokio::test]
async fn a_stored_version_is_pushed_to_other_processes() {
    let redis = RedisServer::start();
    let (writer, reader) = (store(&redis, "s").await, store(&redis, "s").await);
    let mut versions = reader.versions().expect("Redis pushes versions");
    tokio::time::sleep(Duration::from_millis(200)).await; // let the subscription settle
    let Swap::Stored(version) = writer.store(Expect::Any, &tokens("one")).await.unwrap() else {
        panic!()
    };
    tokio::time::timeout(Duration::from_secs(5), versions.wait_for(|v| *v >= version))
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_lock_whose_owner_died_is_overtaken_after_its_ttl() {
    let redis = RedisServer::start();
    let (server, _) = reference(Duration::from_secs(1)).await;
    let client = Client::builder(server.base_url(), DEMO_CLIENT.0)
        .client_secret(DEMO_CLIENT.1.into())
        .refresh_timeout(Duration::from_millis(300))
        .refresh_retries(1, Duration::from_millis(10))
        .build()
        .unwrap();
    let shared = store(&redis, "s").await;
    let api = client
        .login_password(shared.clone(), DEMO_USER.0, DEMO_USER.1.into())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // A process took the lock (TTL: 300 ms timeout + 1 s margin) and died without releasing it.
    let ttl = Duration::from_millis(1300);
    let LockAttempt::Acquired(_dead) = store(&redis, "s").await.try_lock(ttl).await.unwrap() else {
        panic!()
    };
    let started = Instant::now();
    api.get_me().await.expect("renewed once the dead owner's lock expired");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1000),
        "waited only {waited:?}: the lock was not respected"
    );
    assert!(
        waited < Duration::from_secs(5),
        "waited {waited:?}: longer than the TTL"
    );
    assert_eq!(server.counters().refreshes_accepted, 1);
}

#[tokio::test]
async fn another_process_s_renewal_is_adopted_without_a_refresh_or_a_rejection() {
    let redis = RedisServer::start();
    let (server, client) = reference(Duration::from_secs(2)).await;
    let first = client
        .clone()
        .login_password(store(&redis, "s").await, DEMO_USER.0, DEMO_USER.1.into())
        .await
        .unwrap();
    let second = client.resume(store(&redis, "s").await).await.unwrap();
    second.get_me().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await; // both tokens are now past half-life

    first.get_me().await.unwrap(); // renews, and the server revokes the old access token
    tokio::time::sleep(Duration::from_millis(200)).await; // the new version reaches `second`
    second.get_me().await.expect("uses the session `first` stored");
    let counted = server.counters();
    assert_eq!(counted.refreshes_accepted, 1, "{counted:?}");
    assert_eq!(counted.api(403), 0, "{counted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_on_an_expired_session_cause_one_refresh_and_no_failure() {
    const PROCESSES: usize = 8;
    const REQUESTS: usize = 100;
    let redis = RedisServer::start();
    let lifetime = Duration::from_secs(5);
    // A token endpoint that takes 300 ms, so the processes' renewals overlap instead of queueing.
    let latency = Some(Duration::from_millis(300));
    let (server, client) = reference_with(Config {
        access_token_lifetime: lifetime,
        token_latency: latency,
        ..Config::default()
    })
    .await;
    let logged_in = Instant::now();
    client
        .login_password(store(&redis, "fleet").await, DEMO_USER.0, DEMO_USER.1.into())
        .await
        .unwrap();

    let fleet = Fleet::start(
        PROCESSES,
        REQUESTS,
        &server.base_url(),
        &["--redis", &redis.url(), "--prefix", "test", "--session", "fleet"],
    );
    let expired = logged_in + lifetime + Duration::from_millis(200);
    tokio::time::sleep(expired.saturating_duration_since(Instant::now())).await;
    fleet.run().await;

    let counted = server.counters();
    assert_eq!(
        counted.refreshes_accepted, 1,
        "one refresh for the whole fleet: {counted:?}"
    );
    assert_eq!(counted.refreshes_rejected, 0, "no invalid_grant: {counted:?}");
    assert_eq!(counted.reused_refresh_tokens, 0, "{counted:?}");
    assert_eq!(counted.api(200), (PROCESSES * REQUESTS) as u64, "{counted:?}");
}

#[tokio::test]
async fn redis_dying_between_the_refresh_and_the_write_back_loses_nothing() {
    let dir = std::env::temp_dir().join(format!("oauth-sdk-redis-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut redis = RedisServer::start_persistent(&dir);
    let (server, _) = reference(Duration::from_secs(2)).await;
    // This process knows it is the only one using the session: it may renew while Redis is down.
    let client = Client::builder(server.base_url(), DEMO_CLIENT.0)
        .client_secret(DEMO_CLIENT.1.into())
        .store_outage(oauth_sdk::StoreOutage::RefreshAlone)
        .build()
        .unwrap();
    let api = client
        .clone()
        .login_password(store(&redis, "s").await, DEMO_USER.0, DEMO_USER.1.into())
        .await
        .unwrap();
    let before = store(&redis, "s").await.load().await.unwrap().unwrap();

    redis.kill();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    for _ in 0..5 {
        api.get_me()
            .await
            .expect("requests keep flowing on the renewed token in memory");
    }
    assert_eq!(server.counters().refreshes_accepted, 1);

    redis.restart();
    let reader = store(&redis, "s").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let written_back = loop {
        let stored = reader.load().await.unwrap().expect("the session survived the restart");
        if stored.version > before.version {
            break stored;
        }
        assert!(Instant::now() < deadline, "the renewed session never reached Redis");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let rotated = written_back
        .tokens
        .as_ref()
        .unwrap()
        .refresh_token()
        .unwrap()
        .expose_secret()
        .to_owned();
    assert_ne!(
        rotated,
        before.tokens.as_ref().unwrap().refresh_token().unwrap().expose_secret()
    );

    // Another process resumes from Redis and renews with the rotated refresh token.
    let other = client.resume(reader).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    other.get_me().await.expect("the rotated refresh token works");
    let counted = server.counters();
    assert_eq!(counted.reused_refresh_tokens, 0, "{counted:?}");
    assert_eq!(counted.refreshes_rejected, 0, "{counted:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn with_redis_down_and_no_session_in_memory_the_error_names_redis() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    redis.kill();
    let error = RedisStore::connect(&url, "test", "s").await.unwrap_err();
    assert_eq!(error.store(), "redis");
    assert!(error.to_string().starts_with("redis token store:"), "{error}");
}

#[tokio::test]
async fn a_caller_that_gives_up_mid_renewal_leaves_no_lock_and_a_whole_session() {
    let redis = RedisServer::start();
    let config = Config {
        access_token_lifetime: Duration::from_secs(2),
        token_latency: Some(Duration::from_millis(300)),
        ..Config::default()
    };
    let (server, client) = reference_with(config).await;
    let shared = store(&redis, "s").await;
    let api = client
        .login_password(shared.clone(), DEMO_USER.0, DEMO_USER.1.into())
        .await
        .unwrap();
    let before = shared.load().await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let gave_up = tokio::time::timeout(Duration::from_millis(50), api.get_me()).await;
    assert!(gave_up.is_err(), "the call was dropped in the middle of the renewal");
    tokio::time::sleep(Duration::from_millis(600)).await;

    // The renewal finished on its own: the lock is free, and the session in Redis is the whole new one.
    let LockAttempt::Acquired(_) = shared.try_lock(Duration::from_secs(1)).await.unwrap() else {
        panic!("the renewal lock is still held");
    };
    let after = shared.load().await.unwrap().unwrap();
    assert!(after.version > before.version);
    assert_ne!(
        after.tokens.as_ref().unwrap().refresh_token().unwrap().expose_secret(),
        before.tokens.as_ref().unwrap().refresh_token().unwrap().expose_secret()
    );
    api.get_me().await.expect("the next request uses the renewed token");
    assert_eq!(server.counters().refreshes_accepted, 1);
}

/// A Redis client for `url` that trusts the CA of the TLS server `redis`.
fn trusting_its_ca(redis: &RedisServer, url: &str) -> oauth_sdk::redis::Client {
    let certificates = oauth_sdk::redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(redis.ca_pem().to_vec()),
    };
    oauth_sdk::redis::Client::build_with_tls(url, certificates).expect("TLS client")
}

/// `rediss://` with an ACL user: the store works over TLS when told the server's CA, including the
/// pushed versions (the subscriber's own connection is TLS too), and a login through it.
#[tokio::test]
async fn a_tls_redis_with_an_acl_user_serves_the_session_and_its_pushes() {
    let redis = RedisServer::start_tls();
    let tls_store = || async {
        RedisStore::connect_with(trusting_its_ca(&redis, &redis.url()), "test", "tls")
            .await
            .expect("connected over TLS")
    };
    let (writer, reader) = (tls_store().await, tls_store().await);
    let mut versions = reader.versions().expect("Redis pushes versions");
    tokio::time::sleep(Duration::from_millis(200)).await; // let the subscription settle
    let Swap::Stored(version) = writer.store(Expect::Empty, &tokens("over-tls")).await.unwrap() else {
        panic!("first write")
    };
    tokio::time::timeout(Duration::from_secs(5), versions.wait_for(|v| *v >= version))
        .await
        .expect("the version is pushed over TLS")
        .unwrap();
    let loaded = reader.load().await.unwrap().expect("the session");
    assert_eq!(
        loaded.tokens.as_ref().unwrap().access_token().expose_secret(),
        "over-tls"
    );

    let (_server, client) = reference(Duration::from_secs(3600)).await;
    let api = client
        .login_password(tls_store().await, DEMO_USER.0, DEMO_USER.1.into())
        .await
        .expect("login stores the session over TLS");
    api.get_me().await.expect("a call");
}

/// The certificate is checked (an unknown CA is refused), and a refused connection or password is a
/// store error that names Redis and quotes neither the URL nor the password.
#[tokio::test]
async fn a_tls_redis_refuses_an_unknown_ca_and_a_wrong_password_without_quoting_it() {
    let redis = RedisServer::start_tls();
    let (user, password) = taskboard_server::TLS_USER;

    let unknown_ca = RedisStore::connect(&redis.url(), "test", "tls")
        .await
        .expect_err("the server's CA is not among the system's roots");
    let message = unknown_ca.to_string();
    assert!(
        message.contains("redis") && message.contains("certificate"),
        "{message}"
    );
    assert!(!message.contains(password), "{message}");

    let wrong = redis.url().replace(password, "not-the-password");
    let refused = RedisStore::connect_with(trusting_its_ca(&redis, &wrong), "test", "tls")
        .await
        .expect_err("a wrong password is refused");
    let message = refused.to_string();
    assert!(
        message.contains("redis") && message.contains("authentication failed"),
        "{message}"
    );
    assert!(
        !message.contains("not-the-password") && !message.contains(user),
        "{message}"
    );
}
