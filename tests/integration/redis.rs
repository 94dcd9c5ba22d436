//! The Redis store against a real `redis-server` of the test's own: compare-and-set, isolation, the
//! renewal lock, one refresh across OS processes, nothing lost when Redis dies mid-renewal, and TLS
//! with an ACL user.

use std::time::{Duration, Instant};

use oauth_sdk::redis::AsyncCommands;
use oauth_sdk::{
    Client, Expect, ExposeSecret, LockAttempt, LockToken, Locked, RedisOptions, RedisStore, Swap, TokenStore,
    Versioned, version_floor,
};
use taskboard_server::{Config, DEMO_CLIENT, DEMO_USER, RedisServer, Server};

use crate::contract;
use crate::fleet::Fleet;
use crate::support::t0;

fn tokens(access: &str) -> oauth_sdk::TokenSet {
    oauth_sdk::TokenSet::new(access.into(), oauth_sdk::Grant::Password, t0())
        .with_refresh_token(format!("{access}-refresh").into())
        .with_lifetime(Duration::from_secs(60))
}

/// Timeouts for a machine busy with other builds and tests: far above what a local Redis takes, so
/// that a slow moment does not fail a test that is not about timeouts.
fn patient() -> RedisOptions {
    RedisOptions::default()
        .with_connect_timeout(Duration::from_secs(10))
        .with_command_timeout(Duration::from_secs(10))
}

async fn store(redis: &RedisServer, session: &str) -> RedisStore {
    store_with(redis, session, patient()).await
}

async fn store_with(redis: &RedisServer, session: &str, options: RedisOptions) -> RedisStore {
    let client = oauth_sdk::redis::Client::open(redis.url()).unwrap();
    RedisStore::connect_with_options(client, "test", session, options)
        .await
        .expect("connected to the test's redis-server")
}

fn live(stored: &Versioned) -> &oauth_sdk::TokenSet {
    stored.tokens.as_ref().expect("a live session, not a tombstone")
}

/// A plain connection of the test's own, to look at and meddle with what the store keeps.
async fn raw(redis: &RedisServer) -> oauth_sdk::redis::aio::MultiplexedConnection {
    raw_with(&oauth_sdk::redis::Client::open(redis.url()).unwrap()).await
}

async fn raw_with(client: &oauth_sdk::redis::Client) -> oauth_sdk::redis::aio::MultiplexedConnection {
    let config = oauth_sdk::redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(10)))
        .set_response_timeout(Some(Duration::from_secs(10)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("a connection of the test's own")
}

/// Wait until `count` stores follow session `session`'s pushed versions: each subscribes in a task of
/// its own, in its own time.
async fn until_subscribed(connection: &mut oauth_sdk::redis::aio::MultiplexedConnection, session: &str, count: u64) {
    let channel = format!("test:{{{session}}}:changed");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, subscribers): (String, u64) = oauth_sdk::redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&channel)
            .query_async(connection)
            .await
            .unwrap();
        if subscribers >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{subscribers} of {count} subscribers to {channel}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Wait for a pushed version of at least `version`.
async fn until_pushed(versions: &mut tokio::sync::watch::Receiver<oauth_sdk::Version>, version: oauth_sdk::Version) {
    let pushed = tokio::time::timeout(Duration::from_secs(30), versions.wait_for(|v| *v >= version))
        .await
        .map(|newest| newest.map(|_| ()));
    assert!(
        matches!(pushed, Ok(Ok(()))),
        "version {version} was not pushed; the newest is {}",
        *versions.borrow()
    );
}

async fn reference(lifetime: Duration) -> (Server, Client) {
    reference_with(Config {
        access_token_lifetime: lifetime,
        ..Config::default()
    })
    .await
}

async fn reference_with(config: Config) -> (Server, Client) {
    crate::support::reference(config).await
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
            assert_eq!(live(&current).access_token().expose_secret(), "two");
        }
        other => panic!("the older writer must lose, got {other:?}"),
    }
    assert!(matches!(
        a.store(Expect::Empty, &tokens("x")).await.unwrap(),
        Swap::Conflict(Some(_))
    ));
    // Versions are never reused, even after the session is cleared.
    a.clear().await.unwrap();
    let Swap::Stored(v3) = a.store(Expect::Any, &tokens("three")).await.unwrap() else {
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
    assert_eq!(live(&ada_now).access_token().expose_secret(), "ada-token");
    let ttl = Duration::from_secs(5);
    assert_eq!(
        ada.try_lock(&LockToken::random(), ttl).await.unwrap(),
        LockAttempt::Acquired
    );
    assert_eq!(
        bob.try_lock(&LockToken::random(), ttl).await.unwrap(),
        LockAttempt::Acquired
    );
}

#[tokio::test]
async fn the_lock_is_taken_with_the_read_and_released_with_the_write_that_stores() {
    let redis = RedisServer::start();
    let (ada, bob) = (store(&redis, "s").await, store(&redis, "s").await);
    let ttl = Duration::from_secs(30);
    let (lock, bobs) = contract::the_lock_comes_with_the_read_and_goes_with_the_write(&ada, &bob).await;

    // A write naming a lock that is no longer its owner's leaves the new owner's lock alone.
    let Swap::Stored(_) = ada.store_and_unlock(Expect::Any, &tokens("two"), &lock).await.unwrap() else {
        panic!("stored")
    };
    assert_eq!(ada.try_lock(&lock, ttl).await.unwrap(), LockAttempt::Busy);

    // A tombstone is read as one.
    bob.unlock(&bobs).await.unwrap();
    ada.clear().await.unwrap();
    let Locked::Taken(Ok(Some(tombstone))) = ada.try_lock_and_load(&lock, ttl).await.unwrap() else {
        panic!("the lock and the tombstone")
    };
    assert!(tombstone.is_logged_out());
}

#[tokio::test]
async fn a_session_unreadable_under_the_lock_is_an_invalid_error_with_the_lock_taken_or_none_taken() {
    let redis = RedisServer::start();
    let (ada, bob) = (store(&redis, "s").await, store(&redis, "s").await);
    let ttl = Duration::from_secs(30);
    let mut connection = raw(&redis).await;
    let _: () = connection
        .hset_multiple(
            "test:{s}:session",
            &[("version", b"7".as_slice()), ("format", b"1"), ("tokens", b"\xff\xfe")],
        )
        .await
        .unwrap();
    let (lock, bobs) = (LockToken::random(), LockToken::random());
    let Locked::Taken(Err(error)) = ada.try_lock_and_load(&lock, ttl).await.unwrap() else {
        panic!("the lock, and the read's error")
    };
    assert!(!error.is_unavailable(), "{error}");
    assert_eq!(bob.try_lock(&bobs, ttl).await.unwrap(), LockAttempt::Busy);
    ada.unlock(&lock).await.unwrap();

    // A key of another type fails the read before the lock is taken.
    let _: () = connection.del("test:{s}:session").await.unwrap();
    let _: () = connection.set("test:{s}:session", "not a hash").await.unwrap();
    ada.try_lock_and_load(&lock, ttl).await.unwrap_err();
    assert_eq!(bob.try_lock(&bobs, ttl).await.unwrap(), LockAttempt::Acquired);
}

/// Have Redis log every command from now on in its slow log.
async fn log_every_command(connection: &mut oauth_sdk::redis::aio::MultiplexedConnection) {
    let _: () = oauth_sdk::redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg(0)
        .query_async(connection)
        .await
        .unwrap();
    let _: () = oauth_sdk::redis::cmd("SLOWLOG")
        .arg("RESET")
        .query_async(connection)
        .await
        .unwrap();
}

/// The commands clients sent since [`log_every_command`], oldest first: not those scripts ran (logged
/// as from client `?:0`), nor the pushes' `PING`s and version reads, nor the test's own.
async fn commands_sent(connection: &mut oauth_sdk::redis::aio::MultiplexedConnection) -> Vec<String> {
    type Entry = (u64, u64, u64, Vec<String>, String, String);
    let entries: Vec<Entry> = oauth_sdk::redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(1000)
        .query_async(connection)
        .await
        .unwrap();
    entries
        .into_iter()
        .rev()
        .filter(|(_, _, _, _, client, _)| client != "?:0")
        .map(|(_, _, _, arguments, _, _)| arguments[0].to_lowercase())
        .filter(|command| !["slowlog", "config", "ping", "hget", "subscribe"].contains(&command.as_str()))
        .collect()
}

#[tokio::test]
async fn a_renewal_asks_redis_three_times() {
    let redis = RedisServer::start();
    let (server, client) = reference(Duration::from_secs(3600)).await;
    let api = client
        .login_password(store(&redis, "s").await, DEMO_USER.0, DEMO_USER.1.into())
        .await
        .unwrap();
    api.refresh().await.unwrap(); // the scripts are loaded
    let mut connection = raw(&redis).await;
    log_every_command(&mut connection).await;
    api.refresh().await.unwrap();
    // The lock taken with the read, the claim, the result stored with the lock released.
    assert_eq!(commands_sent(&mut connection).await, ["evalsha"; 3]);
    assert_eq!(server.counters().refreshes_accepted, 2);
}

#[tokio::test]
async fn a_stored_version_is_pushed_to_other_processes() {
    let redis = RedisServer::start();
    let (writer, reader) = (store(&redis, "s").await, store(&redis, "s").await);
    let mut versions = reader.versions().expect("Redis pushes versions");
    // Both stores subscribed, so the version comes by the push, not by the read after subscribing.
    until_subscribed(&mut raw(&redis).await, "s", 2).await;
    let Swap::Stored(version) = writer.store(Expect::Any, &tokens("one")).await.unwrap() else {
        panic!()
    };
    until_pushed(&mut versions, version).await;
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
    let dead = store(&redis, "s")
        .await
        .try_lock(&LockToken::random(), ttl)
        .await
        .unwrap();
    assert_eq!(dead, LockAttempt::Acquired);
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
    let second_store = store(&redis, "s").await;
    let mut pushed_to_second = second_store.versions().expect("Redis pushes versions");
    let second = client.resume(second_store).await.unwrap();
    second.get_me().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await; // both tokens are now past half-life

    // Renews (in the background: the token is still good), and the server revokes the old access
    // token.
    let mut first_changes = first.session_changes();
    first_changes.borrow_and_update();
    first.get_me().await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), first_changes.changed())
        .await
        .expect("renewed")
        .unwrap();
    let renewed = store(&redis, "s").await.load().await.unwrap().unwrap().version;
    until_pushed(&mut pushed_to_second, renewed).await;
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
    let rotated = live(&written_back).refresh_token().unwrap().expose_secret().to_owned();
    assert_ne!(rotated, live(&before).refresh_token().unwrap().expose_secret());

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

    // The renewal finishes on its own, however long that takes here...
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let stored = shared.load().await.unwrap().unwrap();
        // (The first newer version is the renewal's claim on the old refresh token.)
        if live(&stored).refresh_token().unwrap().expose_secret()
            != live(&before).refresh_token().unwrap().expose_secret()
        {
            break stored;
        }
        assert!(Instant::now() < deadline, "the renewal never reached Redis");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // ...and releases the lock just after its write: well within the lock's TTL (the 10 s refresh
    // timeout and more), so a lock left behind cannot pass by expiring.
    let deadline = Instant::now() + Duration::from_secs(5);
    while shared
        .try_lock(&LockToken::random(), Duration::from_secs(1))
        .await
        .unwrap()
        != LockAttempt::Acquired
    {
        assert!(Instant::now() < deadline, "the renewal lock is still held");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The session in Redis is the whole new one.
    assert_ne!(
        live(&after).refresh_token().unwrap().expose_secret(),
        live(&before).refresh_token().unwrap().expose_secret()
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
    // A TLS handshake is CPU work, slow on a busy machine: patient timeouts.
    let tls_store = || async {
        RedisStore::connect_with_options(trusting_its_ca(&redis, &redis.url()), "test", "tls", patient())
            .await
            .expect("connected over TLS")
    };
    let (writer, reader) = (tls_store().await, tls_store().await);
    let mut versions = reader.versions().expect("Redis pushes versions");
    until_subscribed(&mut raw_with(&trusting_its_ca(&redis, &redis.url())).await, "tls", 2).await;
    let Swap::Stored(version) = writer.store(Expect::Empty, &tokens("over-tls")).await.unwrap() else {
        panic!("first write")
    };
    until_pushed(&mut versions, version).await;
    let loaded = reader.load().await.unwrap().expect("the session");
    assert_eq!(live(&loaded).access_token().expose_secret(), "over-tls");

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

    let system_roots = oauth_sdk::redis::Client::open(redis.url()).unwrap();
    let unknown_ca = RedisStore::connect_with_options(system_roots, "test", "tls", patient())
        .await
        .expect_err("the server's CA is not among the system's roots");
    let message = unknown_ca.to_string();
    assert!(
        message.contains("redis") && message.contains("certificate"),
        "{message}"
    );
    assert!(!message.contains(password), "{message}");

    let wrong = redis.url().replace(password, "not-the-password");
    let refused = RedisStore::connect_with_options(trusting_its_ca(&redis, &wrong), "test", "tls", patient())
        .await
        .expect_err("a wrong password is refused");
    assert!(!refused.is_unavailable(), "a wrong password stays wrong: {refused}");
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

#[tokio::test]
async fn logout_leaves_a_tombstone_of_a_newer_version_and_pushes_it() {
    let redis = RedisServer::start();
    let (writer, reader) = (store(&redis, "s").await, store(&redis, "s").await);
    let mut versions = reader.versions().expect("Redis pushes versions");
    let mut connection = raw(&redis).await;
    until_subscribed(&mut connection, "s", 2).await;
    let (v1, tombstone) = contract::log_out(&writer, &reader).await;
    let fields: std::collections::HashMap<String, String> = connection.hgetall("test:{s}:session").await.unwrap();
    let mut names: Vec<_> = fields.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["format", "version"], "the tokens are deleted from Redis");
    // Every process holding the session learns of the logout.
    until_pushed(&mut versions, tombstone.version).await;
    let empty = store(&redis, "never-written").await;
    contract::the_tombstone_holds(&reader, &writer, (v1, tombstone), &empty).await;
}

#[tokio::test]
async fn versions_keep_growing_after_redis_loses_its_data() {
    let redis = RedisServer::start();
    let (writer, reader) = (store(&redis, "s").await, store(&redis, "s").await);
    let mut versions = reader.versions().expect("Redis pushes versions");
    let mut connection = raw(&redis).await;
    until_subscribed(&mut connection, "s", 2).await;
    let floor = version_floor();
    let mut seen = Vec::new();
    for access in ["one", "two", "three"] {
        let Swap::Stored(version) = writer.store(Expect::Any, &tokens(access)).await.unwrap() else {
            panic!("a write")
        };
        seen.push(version);
    }
    assert!(
        seen[0] >= floor,
        "a new counter starts at the clock's floor, not at 1: {}",
        seen[0]
    );
    writer.clear().await.unwrap();
    seen.push(writer.load().await.unwrap().unwrap().version);
    let highest = *seen.iter().max().unwrap();
    until_pushed(&mut versions, highest).await;

    oauth_sdk::redis::cmd("FLUSHALL")
        .query_async::<()>(&mut connection)
        .await
        .unwrap();
    assert!(reader.load().await.unwrap().is_none(), "nothing at all after FLUSHALL");
    let Swap::Stored(after) = writer.store(Expect::Empty, &tokens("again")).await.unwrap() else {
        panic!("a write to an empty store")
    };
    assert!(
        after > highest,
        "{after} is not above {highest}: a version was given twice"
    );
    // Greater than every version before, so the other process takes it rather than ignoring it.
    until_pushed(&mut versions, after).await;

    // With only the counter lost, the session's own version still bounds the next one from below.
    let far_ahead: u64 = 9_000_000_000_000_000;
    let _: () = connection.hset("test:{s}:session", "version", far_ahead).await.unwrap();
    let _: () = connection.del("test:{s}:version").await.unwrap();
    let Swap::Stored(next) = writer
        .store(Expect::Version(far_ahead), &tokens("ahead"))
        .await
        .unwrap()
    else {
        panic!("a write over the session's version")
    };
    assert_eq!(next, far_ahead + 1);
}

#[tokio::test]
async fn versions_keep_growing_after_a_restart_without_persistence() {
    let mut redis = RedisServer::start();
    let (writer, reader) = (store(&redis, "s").await, store(&redis, "s").await);
    let mut versions = reader.versions().expect("Redis pushes versions");
    until_subscribed(&mut raw(&redis).await, "s", 2).await;
    let Swap::Stored(before) = writer.store(Expect::Any, &tokens("one")).await.unwrap() else {
        panic!("a write")
    };
    until_pushed(&mut versions, before).await;

    redis.restart();
    // The stores reconnect by themselves; the first commands may still meet the dead connection.
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        match writer.store(Expect::Empty, &tokens("two")).await {
            Ok(Swap::Stored(version)) => break version,
            Ok(other) => panic!("the restarted Redis holds nothing, got {other:?}"),
            Err(error) => {
                assert!(error.is_unavailable(), "{error}");
                assert!(Instant::now() < deadline, "the store never reconnected: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert!(after > before, "{after} is not above {before}");
    // The subscriber reconnects (with its backoff), reads the current version, and forwards it.
    until_pushed(&mut versions, after).await;
}

#[tokio::test]
async fn a_corrupt_stored_session_is_an_invalid_error_that_quotes_no_secret() {
    let redis = RedisServer::start();
    let store = store(&redis, "s").await;
    let mut connection = raw(&redis).await;
    let corrupt = [
        ("version", "12"),
        ("format", "1"),
        ("tokens", r#"{"access_token":"secret-at","token_type":12}"#),
    ];
    let _: () = connection.hset_multiple("test:{s}:session", &corrupt).await.unwrap();
    for (operation, error) in [
        ("load", store.load().await.unwrap_err()),
        ("store", store.store(Expect::Empty, &tokens("x")).await.unwrap_err()),
    ] {
        assert!(!error.is_unavailable(), "{operation}: {error}");
        assert!(error.to_string().contains("not readable"), "{operation}: {error}");
        assert!(!error.to_string().contains("secret-at"), "{operation}: {error}");
    }
    let _: () = connection.hset("test:{s}:session", "format", "2").await.unwrap();
    let error = store.load().await.unwrap_err();
    assert!(
        !error.is_unavailable() && error.to_string().contains("format `2`"),
        "{error}"
    );
    let _: () = connection.hset("test:{s}:session", "version", "twelve").await.unwrap();
    let error = store.load().await.unwrap_err();
    assert!(
        !error.is_unavailable() && error.to_string().contains("version"),
        "{error}"
    );

    // A logout ends even a session it cannot read, above any version it may have had.
    let floor = version_floor();
    store.clear().await.unwrap();
    let tombstone = store.load().await.unwrap().expect("a tombstone");
    assert!(tombstone.is_logged_out() && tombstone.version >= floor);
}

#[tokio::test]
async fn the_command_timeout_is_a_setting() {
    let redis = RedisServer::start();
    let hasty = store_with(&redis, "s", patient().with_command_timeout(Duration::from_millis(50))).await;
    let default = store_with(&redis, "s", RedisOptions::default()).await;
    hasty
        .store(Expect::Any, &tokens("one"))
        .await
        .expect("a write while Redis answers");
    let mut connection = raw(&redis).await;

    // Redis stops answering every client for a while (CLIENT PAUSE returns at once, so the pause is
    // in force before the store's command is sent, which DEBUG SLEEP cannot promise).
    let pause = Duration::from_secs(3);
    let _: () = oauth_sdk::redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(pause.as_millis() as u64)
        .arg("ALL")
        .query_async(&mut connection)
        .await
        .unwrap();
    let started = Instant::now();
    let error = tokio::time::timeout(Duration::from_secs(30), hasty.load())
        .await
        .expect("the command gave up instead of hanging")
        .unwrap_err();
    let waited = started.elapsed();
    assert!(error.is_unavailable(), "a timeout may pass: {error}");
    assert_eq!(error.store(), "redis");
    assert!(
        waited < Duration::from_millis(1500),
        "waited {waited:?}: the 50 ms timeout was not applied (the default is 2 s)"
    );

    // The default (2 s) waits out a one-second pause.
    let _: () = oauth_sdk::redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query_async(&mut connection)
        .await
        .unwrap();
    let _: () = oauth_sdk::redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1000)
        .arg("ALL")
        .query_async(&mut connection)
        .await
        .unwrap();
    let started = Instant::now();
    let loaded = default
        .load()
        .await
        .expect("the default timeout outlasts a one-second pause");
    assert_eq!(live(&loaded.unwrap()).access_token().expose_secret(), "one");
    assert!(started.elapsed() >= Duration::from_millis(500), "Redis was not paused");
    assert_eq!(RedisOptions::default().command_timeout, Duration::from_secs(2));
    assert_eq!(RedisOptions::default().connect_timeout, Duration::from_secs(5));
}

#[tokio::test]
async fn the_connect_timeout_is_a_setting() {
    // A server that accepts connections (the kernel does, into the backlog) and never says a word: a
    // TLS handshake with it waits forever.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("rediss://127.0.0.1:{}/", silent.local_addr().unwrap().port());
    let options = patient().with_connect_timeout(Duration::from_millis(200));
    let started = Instant::now();
    let error = tokio::time::timeout(
        Duration::from_secs(30),
        RedisStore::connect_with_options(oauth_sdk::redis::Client::open(url).unwrap(), "test", "s", options),
    )
    .await
    .expect("the connection gave up instead of hanging")
    .unwrap_err();
    let waited = started.elapsed();
    assert!(error.is_unavailable(), "{error}");
    assert_eq!(error.store(), "redis");
    // Two attempts (the store retries once) of 200 ms and a backoff, far from the default's 5 s each.
    assert!(
        waited < Duration::from_secs(4),
        "waited {waited:?}: the timeout was not applied"
    );
}
