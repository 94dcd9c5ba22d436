//! Many sessions in one service: one Redis connection set for all of them, a registry that finds a
//! user's session by key, and sessions sealed at rest.

use std::time::Duration;

use oauth_sdk::{
    Client, Expect, ExposeSecret, FileStore, MemoryStore, RedisOptions, RedisSessions, SealingKeys, SessionRegistry,
    StoreOutage, Swap, TokenStore,
};
use taskboard_server::{Config, DEMO_CLIENT, DEMO_USER, RedisServer, Server};

use crate::sim_store::SimShared;
use crate::support::{reference, t0};

fn tokens(access: &str) -> oauth_sdk::TokenSet {
    oauth_sdk::TokenSet::new(access.into(), oauth_sdk::Grant::Password, t0())
        .with_refresh_token(format!("{access}-refresh").into())
        .with_lifetime(Duration::from_secs(60))
}

async fn handle(redis: &RedisServer) -> RedisSessions {
    let client = oauth_sdk::redis::Client::open(redis.url()).unwrap();
    let options = RedisOptions::default()
        .with_connect_timeout(Duration::from_secs(10))
        .with_command_timeout(Duration::from_secs(10));
    RedisSessions::connect_with(client, "test", options)
        .await
        .expect("connected to the test's redis-server")
}

async fn raw(redis: &RedisServer) -> oauth_sdk::redis::aio::MultiplexedConnection {
    oauth_sdk::redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The connections Redis has open, but the one asking.
async fn redis_connections(connection: &mut oauth_sdk::redis::aio::MultiplexedConnection) -> usize {
    let list: String = oauth_sdk::redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(connection)
        .await
        .unwrap();
    list.lines().count() - 1
}

/// Wait until `count` channels of prefix `test` have a subscriber.
async fn until_channels(connection: &mut oauth_sdk::redis::aio::MultiplexedConnection, count: usize) {
    for _ in 0..3000 {
        let channels: Vec<String> = oauth_sdk::redis::cmd("PUBSUB")
            .arg("CHANNELS")
            .arg("test:*")
            .query_async(connection)
            .await
            .unwrap();
        if channels.len() == count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{count} channels were never subscribed");
}

#[tokio::test]
async fn a_thousand_sessions_share_two_connections_and_keep_their_own_tokens() {
    let redis = RedisServer::start();
    let sessions = handle(&redis).await;
    let stores: Vec<_> = (0..1000).map(|i| sessions.session(&format!("user-{i}"))).collect();
    for (i, store) in stores.iter().enumerate() {
        store
            .store(Expect::Empty, &tokens(&format!("token-{i}")))
            .await
            .unwrap();
    }
    for (i, store) in stores.iter().enumerate() {
        let stored = store.load().await.unwrap().and_then(|s| s.tokens).expect("stored");
        assert_eq!(stored.access_token().expose_secret(), format!("token-{i}"));
    }
    let mut connection = raw(&redis).await;
    until_channels(&mut connection, 1000).await;
    assert_eq!(
        redis_connections(&mut connection).await,
        2,
        "one command and one subscription connection"
    );
    assert_eq!(sessions.live_sessions(), 1000);

    // Stores let go unsubscribe; a second store of a live session shares its subscription.
    let again = sessions.session("user-0");
    drop(stores);
    until_channels(&mut connection, 1).await;
    assert_eq!(sessions.live_sessions(), 1);
    assert!(again.load().await.unwrap().is_some());
}

#[tokio::test]
async fn a_change_wakes_only_its_own_session() {
    let redis = RedisServer::start();
    let (here, elsewhere) = (handle(&redis).await, handle(&redis).await);
    let (ada, grace) = (here.session("ada"), here.session("grace"));
    let (mut ada_versions, mut grace_versions) = (ada.versions().unwrap(), grace.versions().unwrap());
    until_channels(&mut raw(&redis).await, 2).await;
    ada_versions.mark_unchanged();
    grace_versions.mark_unchanged();

    // Another process renews ada's session.
    let Swap::Stored(version) = elsewhere
        .session("ada")
        .store(Expect::Any, &tokens("ada-2"))
        .await
        .unwrap()
    else {
        panic!("stored")
    };
    tokio::time::timeout(Duration::from_secs(30), ada_versions.wait_for(|v| *v >= version))
        .await
        .expect("ada's store hears of it")
        .unwrap();
    // Give a wrongly routed notification time to arrive: grace must not have heard anything.
    elsewhere.session("ada").load().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!grace_versions.has_changed().unwrap(), "grace's session was woken");
}

#[tokio::test]
async fn a_session_subscribed_after_redis_restarts_still_hears_of_changes() {
    let mut redis = RedisServer::start();
    let sessions = handle(&redis).await;
    let store = sessions.session("ada");
    until_channels(&mut raw(&redis).await, 1).await;
    redis.restart();
    let late = sessions.session("grace");
    let mut versions = late.versions().unwrap();
    until_channels(&mut raw(&redis).await, 2).await;
    let writer = handle(&redis).await;
    let Swap::Stored(version) = writer.session("grace").store(Expect::Any, &tokens("g")).await.unwrap() else {
        panic!()
    };
    tokio::time::timeout(Duration::from_secs(30), versions.wait_for(|v| *v >= version))
        .await
        .expect("the version reaches the session subscribed after the restart")
        .unwrap();
    drop(store);
}

#[tokio::test]
async fn the_registry_resumes_once_per_key_and_evicts_the_least_recently_used() {
    let (server, client) = reference(Config::default()).await;
    let stores: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, MemoryStore>>> = Default::default();
    let shared = stores.clone();
    let registry = SessionRegistry::new(client, move |key: &str| {
        shared.lock().unwrap().entry(key.to_owned()).or_default().clone()
    })
    .max_sessions(2);

    assert!(matches!(registry.get("ada").await, Err(oauth_sdk::Error::NoSession)));
    assert_eq!(registry.metrics().live, 0, "a failed resume is not kept");
    for user in ["ada", "bob", "cy"] {
        registry
            .login(user, |client, store| {
                client.login_password(store, DEMO_USER.0, DEMO_USER.1.into())
            })
            .await
            .expect("logged in");
    }
    // Three logins, two held: "ada", the least recently used, was let go (it stays in its store).
    let metrics = registry.metrics();
    assert_eq!((metrics.live, metrics.logged_in, metrics.evictions), (2, 3, 1));
    // Concurrent requests for "ada" resume it once, and each gets the same session.
    let (a, b) = tokio::join!(registry.get("ada"), registry.get("ada"));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(registry.metrics().resumed, 1);
    a.get_me().await.unwrap();
    assert_eq!(b.metrics().requests, 1, "both are one session");
    assert_eq!(server.counters().password_grants, 3);
    assert!(registry.remove("ada").is_some());
    assert!(registry.remove("ada").is_none());
}

/// A session renewing in the background, with no handle left but the registry's, is not let go:
/// the next `get` would resume a second session beside it, which would find the old refresh token
/// claimed, and present it once the claim lapsed if the renewal's result never reached the store.
#[tokio::test]
async fn eviction_never_lets_go_of_a_session_renewing_in_the_background() {
    let h = crate::support::Harness::start().await;
    let _login = h.mock_password_grant().await;
    h.mock_slow_refresh("rt-1", "at-2", "rt-2", Duration::from_secs(60))
        .await;
    let _me = h.mock_me("at-1", 200).await;
    let registry = SessionRegistry::new(h.client(), |_: &str| MemoryStore::new()).max_sessions(1);
    let login = async |user: &str| {
        registry
            .login(user, |client, store| {
                client.login_password(store, crate::support::USERNAME, crate::support::PASSWORD.into())
            })
            .await
            .expect("logged in")
    };
    login("ada").await;
    // Due, still good: the call goes on, and the renewal (a minute at the token endpoint) with it.
    h.clock.advance(Duration::from_secs(crate::support::LIFETIME - 20));
    registry.get("ada").await.unwrap().get_me().await.expect("sent");
    login("bob").await;
    let metrics = registry.metrics();
    assert_eq!((metrics.live, metrics.evictions), (2, 0), "{metrics:?}");
    assert!(metrics.evictions_deferred >= 1, "{metrics:?}");
}

/// A session whose call found its token due is not let go while that call is in flight: the renewal
/// starts once the call has its answer, and until then the session counts as renewing.
#[tokio::test]
async fn eviction_never_lets_go_of_a_session_whose_call_found_its_token_due() {
    // Requests reach the handler 800 ms after they are sent; the client's clock says when tokens
    // are due.
    let (_server, client, clock) = crate::support::reference_on_clock(Config {
        api_latency: Some(Duration::from_millis(800)),
        ..Config::default()
    })
    .await;
    let registry = SessionRegistry::new(client, |_: &str| MemoryStore::new()).max_sessions(1);
    let login = async |user: &str| {
        registry
            .login(user, |client, store| {
                client.login_password(store, DEMO_USER.0, DEMO_USER.1.into())
            })
            .await
            .expect("logged in")
    };
    login("ada").await;
    // The call finds the token due, and goes on with it.
    crate::support::into_renewal_window(&clock);
    let ada = registry.get("ada").await.unwrap();
    let call = ada.get_me();
    tokio::pin!(call);
    // Polled once: the token attached and the request on its way, the renewal not started yet.
    assert!(futures::poll!(call.as_mut()).is_pending());
    login("bob").await;
    let metrics = registry.metrics();
    assert_eq!((metrics.live, metrics.evictions), (2, 0), "{metrics:?}");
    assert!(metrics.evictions_deferred >= 1, "{metrics:?}");
    call.await.expect("sent with the token, still good");
}

/// Eviction follows each session's last use, also uses recorded on the read path only (a held
/// session's `get`, which takes no write lock and does not reorder the eviction index).
#[tokio::test]
async fn eviction_follows_last_use_across_many_sessions() {
    let (_server, client) = reference(Config::default()).await;
    let stores: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, MemoryStore>>> = Default::default();
    let shared = stores.clone();
    let registry = SessionRegistry::new(client, move |key: &str| {
        shared.lock().unwrap().entry(key.to_owned()).or_default().clone()
    })
    .max_sessions(50);
    let login = async |i: usize| {
        registry
            .login(&format!("user-{i}"), |client, store| {
                client.login_password(store, DEMO_USER.0, DEMO_USER.1.into())
            })
            .await
    };
    for i in 0..50 {
        login(i).await.expect("logged in");
    }
    // The first half is used again, the second is not.
    for i in (0..25).rev() {
        registry.get(&format!("user-{i}")).await.expect("held");
    }
    for i in 50..75 {
        login(i).await.expect("logged in");
    }
    let metrics = registry.metrics();
    assert_eq!(
        (metrics.live, metrics.evictions, metrics.resumed),
        (50, 25, 0),
        "{metrics:?}"
    );
    let held: Vec<usize> = (0..75)
        .filter(|i| registry.remove(&format!("user-{i}")).is_some())
        .collect();
    let expected: Vec<usize> = (0..25).chain(50..75).collect();
    assert_eq!(held, expected, "the 25 least recently used were let go");
}

#[tokio::test]
async fn eviction_never_lets_go_of_a_session_whose_renewal_is_not_in_its_store_yet() {
    let server = taskboard_server::start(Config::default()).await.unwrap();
    let client = Client::builder(server.base_url(), DEMO_CLIENT.0)
        .client_secret(DEMO_CLIENT.1.into())
        .store_outage(StoreOutage::RefreshAlone)
        .build()
        .unwrap();
    // One simulated shared store per user, so that one user's store can fail alone.
    let stores: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, SimShared>>> = Default::default();
    let shared = stores.clone();
    let registry = SessionRegistry::new(client, move |key: &str| {
        let mut stores = shared.lock().unwrap();
        stores
            .entry(key.to_owned())
            .or_insert_with(|| SimShared::new(7))
            .handle()
    })
    .max_sessions(1)
    .idle_timeout(Duration::from_millis(400));
    let login = |user: &'static str| {
        registry.login(user, |client, store| {
            client.login_password(store, DEMO_USER.0, DEMO_USER.1.into())
        })
    };
    let ada = login("ada").await.unwrap();
    // Ada's store stops taking writes; a renewal goes on alone and waits to be written back.
    let ada_store = stores.lock().unwrap()["ada"].clone();
    ada_store.faults(|f| f.writes_fail = true);
    ada.refresh().await.expect("renewed without the store");
    login("bob").await.unwrap();
    let metrics = registry.metrics();
    assert_eq!((metrics.live, metrics.evictions), (2, 0), "{metrics:?}");
    assert!(metrics.evictions_deferred >= 1, "{metrics:?}");

    // Both idle: bob may go, ada may not.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(matches!(registry.get("carol").await, Err(oauth_sdk::Error::NoSession)));
    let metrics = registry.metrics();
    assert_eq!(
        (metrics.live, metrics.evictions),
        (1, 1),
        "ada alone is kept: {metrics:?}"
    );

    // Ada's store is back: the write-back lands, and then her session may go too.
    ada_store.faults(|f| f.writes_fail = false);
    ada.flush(Duration::from_secs(60)).await.expect("written back");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(registry.get("carol").await.is_err());
    assert_eq!(registry.metrics().live, 0, "{:?}", registry.metrics());
    assert_eq!(registry.metrics().evictions, 2);
}

fn keys(id: &str, byte: u8) -> SealingKeys {
    SealingKeys::new(id, &[byte; 32]).unwrap()
}

#[tokio::test]
async fn a_sealed_file_keeps_no_token_in_the_clear_and_survives_key_rotation() {
    let dir = tempdir();
    let path = dir.join("session.json");
    let old = FileStore::new(&path).with_sealing(keys("k1", 1));
    old.store(Expect::Empty, &tokens("SEALED-ACCESS-TOKEN")).await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains("SEALED-ACCESS-TOKEN") && text.contains(r#""kid":"k1""#),
        "{text}"
    );
    // Copied to another session's file, it does not open there.
    std::fs::copy(&path, dir.join("someone-else.json")).unwrap();
    let copied = FileStore::new(dir.join("someone-else.json")).with_sealing(keys("k1", 1));
    assert!(copied.load().await.unwrap_err().is_sealing());

    // Rotated: the new key seals, the old one still opens.
    let rotated = FileStore::new(&path).with_sealing(keys("k2", 2).with_previous("k1", &[1; 32]).unwrap());
    let stored = rotated.load().await.unwrap().unwrap();
    assert_eq!(
        stored.tokens.as_ref().unwrap().access_token().expose_secret(),
        "SEALED-ACCESS-TOKEN"
    );
    rotated
        .store(Expect::Version(stored.version), &tokens("ROTATED"))
        .await
        .unwrap();
    assert!(std::fs::read_to_string(&path).unwrap().contains(r#""kid":"k2""#));

    // Without its key, or with a wrong one, or unsealed: a typed error, and the file stays.
    let before = std::fs::read(&path).unwrap();
    for store in [
        FileStore::new(&path).with_sealing(keys("k1", 1)),
        FileStore::new(&path).with_sealing(keys("k2", 9)),
        FileStore::new(&path),
    ] {
        let error = store.load().await.unwrap_err();
        assert!(error.is_sealing() && !error.is_unavailable(), "{error}");
        assert!(!error.to_string().contains("ROTATED"), "{error}");
    }
    assert_eq!(std::fs::read(&path).unwrap(), before, "the session was left as it was");
    let plain = dir.join("plain.json");
    FileStore::new(&plain)
        .store(Expect::Empty, &tokens("PLAIN"))
        .await
        .unwrap();
    let error = FileStore::new(&plain)
        .with_sealing(keys("k1", 1))
        .load()
        .await
        .unwrap_err();
    assert!(error.is_sealing(), "{error}");
    let migrating = FileStore::new(&plain).with_sealing(keys("k1", 1).reading_unsealed(true));
    assert!(migrating.load().await.unwrap().is_some());
}

#[tokio::test]
async fn sealed_redis_sessions_open_only_under_their_own_key() {
    let redis = RedisServer::start();
    let sessions = handle(&redis).await.with_sealing(keys("k1", 1));
    let ada = sessions.session("ada");
    ada.store(Expect::Empty, &tokens("ADA-SECRET-TOKEN")).await.unwrap();
    let mut connection = raw(&redis).await;
    use oauth_sdk::redis::AsyncCommands;
    let stored: String = connection.hget("test:{ada}:session", "tokens").await.unwrap();
    assert!(
        !stored.contains("ADA-SECRET-TOKEN") && stored.contains(r#""sealed":"A256GCM""#),
        "{stored}"
    );
    assert!(ada.load().await.unwrap().is_some());

    // The sealed session copied under another user's key does not open there.
    let _: () = connection
        .hset_multiple(
            "test:{eve}:session",
            &[("version", "1"), ("format", "1"), ("tokens", stored.as_str())],
        )
        .await
        .unwrap();
    let error = sessions.session("eve").load().await.unwrap_err();
    assert!(error.is_sealing(), "{error}");
    let error = handle(&redis).await.session("ada").load().await.unwrap_err();
    assert!(error.is_sealing() && error.to_string().contains("k1"), "{error}");
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("oauth-sdk-sealing-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Sessions `users` logged in through `first`, resumed through `second` (another process's handle),
/// called from both for `run` while `failover` runs halfway through; then each session is called once
/// more. Returns the failures, each of which must be transient.
async fn through_a_failover(
    first: RedisSessions,
    second: RedisSessions,
    users: usize,
    run: Duration,
    failover: impl FnOnce() + Send + 'static,
) -> (Server, Vec<oauth_sdk::Error<oauth_sdk::types::Error>>) {
    let (server, client) = reference(Config {
        access_token_lifetime: Duration::from_secs(2),
        ..Config::default()
    })
    .await;
    let mut apis = Vec::new();
    for user in 0..users {
        let name = format!("user-{user}");
        let api = client
            .clone()
            .login_password(first.session(&name), DEMO_USER.0, DEMO_USER.1.into())
            .await
            .expect("logged in");
        apis.push(api);
        apis.push(
            client
                .clone()
                .resume(second.session(&name))
                .await
                .expect("resumed elsewhere"),
        );
    }
    let started = std::time::Instant::now();
    let mut callers = Vec::new();
    for api in apis.clone() {
        callers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while started.elapsed() < run {
                if let Err(e) = api.get_me().await {
                    failures.push(e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            failures
        }));
    }
    tokio::time::sleep(run / 2).await;
    tokio::task::spawn_blocking(failover).await.unwrap();
    let mut failures = Vec::new();
    for caller in callers {
        failures.extend(caller.await.unwrap());
    }
    // Once the cluster has settled, every session works again, in both processes.
    for api in &apis {
        let mut outcome = api.get_me().await;
        for _ in 0..50 {
            if outcome.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            outcome = api.get_me().await;
        }
        outcome.expect("the session works after the failover");
    }
    (server, failures)
}

fn assert_one_refresh_per_token(server: &Server, failures: &[oauth_sdk::Error<oauth_sdk::types::Error>]) {
    let counters = server.counters();
    assert_eq!(counters.reused_refresh_tokens, 0, "a refresh token was presented twice");
    assert_eq!(counters.families_revoked, 0, "a session was revoked");
    assert!(counters.refreshes_accepted > 0, "the run renewed tokens");
    for failure in failures {
        assert!(failure.is_transient(), "a failure that is not transient: {failure}");
    }
}

fn topology_options() -> RedisOptions {
    RedisOptions::default()
        .with_connect_timeout(Duration::from_secs(10))
        .with_command_timeout(Duration::from_secs(10))
}

/// A Cluster of the test's own, and two processes' handles on it (each given other nodes to start
/// from).
async fn cluster_and_two_processes() -> (
    std::sync::Arc<taskboard_server::RedisCluster>,
    RedisSessions,
    RedisSessions,
) {
    let cluster = std::sync::Arc::new(
        tokio::task::spawn_blocking(taskboard_server::RedisCluster::start)
            .await
            .unwrap(),
    );
    let urls = cluster.urls();
    let nodes: Vec<&str> = urls.iter().map(String::as_str).collect();
    let first = RedisSessions::connect_cluster(&nodes, "test", topology_options())
        .await
        .unwrap();
    let second = RedisSessions::connect_cluster(&nodes[3..], "test", topology_options())
        .await
        .unwrap();
    (cluster, first, second)
}

/// A master, its replica and a Sentinel of the test's own, and two processes' handles on them.
async fn sentinel_and_two_processes() -> (
    std::sync::Arc<taskboard_server::RedisSentinel>,
    RedisSessions,
    RedisSessions,
) {
    let topology = std::sync::Arc::new(
        tokio::task::spawn_blocking(taskboard_server::RedisSentinel::start)
            .await
            .unwrap(),
    );
    let sentinel = topology.sentinel_url();
    let sentinels = [sentinel.as_str()];
    let connect = || {
        RedisSessions::connect_sentinel(
            &sentinels,
            taskboard_server::SENTINEL_MASTER,
            "test",
            topology_options(),
        )
    };
    let (first, second) = (connect().await.unwrap(), connect().await.unwrap());
    (topology, first, second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_keeps_one_refresh_per_token_through_a_failover() {
    let (cluster, first, second) = cluster_and_two_processes().await;
    // Kept alive here: the topology stops when its last handle goes.
    let failing = cluster.clone();
    let (server, failures) = through_a_failover(first, second, 6, Duration::from_secs(8), move || {
        failing.fail_over("test:{user-0}:session")
    })
    .await;
    assert_one_refresh_per_token(&server, &failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_s_failover_keeps_one_refresh_per_token() {
    let (topology, first, second) = sentinel_and_two_processes().await;
    let before = topology.master_port();
    let failing = topology.clone();
    let (server, failures) =
        through_a_failover(first, second, 4, Duration::from_secs(8), move || failing.fail_over()).await;
    assert_ne!(topology.master_port(), before, "the master changed");
    assert_one_refresh_per_token(&server, &failures);
}

/// A crash, not a handover: the master serving a session is killed mid-renewals, and its replica
/// takes over only once the other masters have marked it failed (3 s). Meanwhile that session's calls
/// fail as the store being unavailable (transient); then every session works again, in both
/// processes, and no refresh token was presented twice. (On loopback the replica has every write a
/// client saw acknowledged; see the README's limits for a replica that lags.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_keeps_one_refresh_per_token_through_a_master_s_crash() {
    let (cluster, first, second) = cluster_and_two_processes().await;
    let crashing = cluster.clone();
    let (server, failures) = through_a_failover(first, second, 6, Duration::from_secs(14), move || {
        crashing.crash_master_of("test:{user-0}:session")
    })
    .await;
    assert_one_refresh_per_token(&server, &failures);
}

/// As above, behind a Sentinel: the master is killed, and the Sentinel promotes the replica once it
/// has found the master down (2 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_keeps_one_refresh_per_token_through_a_master_s_crash() {
    let (topology, first, second) = sentinel_and_two_processes().await;
    let before = topology.master_port();
    let crashing = topology.clone();
    let (server, failures) = through_a_failover(first, second, 4, Duration::from_secs(14), move || {
        crashing.crash_master()
    })
    .await;
    assert_ne!(topology.master_port(), before, "the master changed");
    assert_one_refresh_per_token(&server, &failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_under_load_loses_no_renewal() {
    let redis = RedisServer::start();
    let (server, client) = reference(Config {
        access_token_lifetime: Duration::from_secs(1),
        ..Config::default()
    })
    .await;
    let handle = handle(&redis).await;
    let stores = handle.clone();
    // Twelve users, four held at a time: sessions are let go and resumed all the time, while their
    // one-second tokens are renewed.
    let registry = std::sync::Arc::new(
        SessionRegistry::new(client, move |user: &str| stores.session(user))
            .max_sessions(4)
            .idle_timeout(Duration::from_millis(300)),
    );
    let users: Vec<String> = (0..12).map(|i| format!("user-{i}")).collect();
    for user in &users {
        registry
            .login(user, |client, store| {
                client.login_password(store, DEMO_USER.0, DEMO_USER.1.into())
            })
            .await
            .unwrap();
    }
    let started = std::time::Instant::now();
    let mut workers = Vec::new();
    for worker in 0..8usize {
        let (registry, users) = (registry.clone(), users.clone());
        workers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut n = worker;
            while started.elapsed() < Duration::from_secs(6) {
                n = n.wrapping_mul(31).wrapping_add(7) % users.len();
                match registry.get(&users[n]).await {
                    Ok(api) => {
                        if let Err(e) = api.get_me().await {
                            failures.push(e.to_string());
                        }
                    }
                    Err(e) => failures.push(e.to_string()),
                }
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for worker in workers {
        failures.extend(worker.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} failures, the first: {:?}",
        failures.len(),
        failures.first()
    );
    let metrics = registry.metrics();
    assert!(
        metrics.evictions > 12 && metrics.resumed > 12,
        "sessions came and went: {metrics:?}"
    );
    let counters = server.counters();
    assert_eq!((counters.reused_refresh_tokens, counters.families_revoked), (0, 0));
    assert!(counters.refreshes_accepted > 12, "{counters:?}");
    // Every store holds its session's newest refresh token: none was lost with an evicted session.
    for user in &users {
        let stored = handle
            .session(user)
            .load()
            .await
            .unwrap()
            .and_then(|s| s.tokens)
            .unwrap();
        let refresh = stored.refresh_token().unwrap().expose_secret().to_owned();
        assert!(
            server.refresh_token_is_current(&refresh),
            "{user}'s stored refresh token is spent"
        );
    }
}

#[tokio::test]
async fn a_sentinel_s_master_that_wants_a_password_is_reached_with_the_credentials_given() {
    use oauth_sdk::redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
    let password = "sentinel-master-pass";
    let topology =
        tokio::task::spawn_blocking(move || taskboard_server::RedisSentinel::start_with_password(Some(password)))
            .await
            .unwrap();
    let sentinel = topology.sentinel_url();
    let options = RedisOptions::default()
        .with_connect_timeout(Duration::from_secs(10))
        .with_command_timeout(Duration::from_secs(10));
    // Without the password, the master refuses, and the error says so without quoting anything.
    let refused =
        RedisSessions::connect_sentinel(&[sentinel.as_str()], taskboard_server::SENTINEL_MASTER, "test", options).await;
    match refused {
        Ok(sessions) => assert!(
            sessions.session("ada").load().await.is_err(),
            "the master took a command without its password"
        ),
        Err(error) => assert!(!error.to_string().contains(password), "{error}"),
    }
    let info = SentinelNodeConnectionInfo::default()
        .set_redis_connection_info(oauth_sdk::redis::RedisConnectionInfo::default().set_password(password));
    let client = SentinelClient::build(
        vec![sentinel.as_str()],
        String::from(taskboard_server::SENTINEL_MASTER),
        Some(info),
        SentinelServerType::Master,
    )
    .unwrap();
    let sessions = RedisSessions::connect_sentinel_with(client, "test", options)
        .await
        .unwrap();
    let ada = sessions.session("ada");
    let mut versions = ada.versions().unwrap();
    let Swap::Stored(version) = ada.store(Expect::Empty, &tokens("ada")).await.unwrap() else {
        panic!("stored")
    };
    tokio::time::timeout(Duration::from_secs(30), versions.wait_for(|v| *v >= version))
        .await
        .expect("the subscription on the master, with its password, hears the write")
        .unwrap();
}
