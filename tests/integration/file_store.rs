//! The file store: owner-only, atomic, compare-and-set, and one refresh for two processes.

use std::time::{Duration, Instant};

use oauth_sdk::{Client, Expect, ExposeSecret, FileStore, Swap, TokenStore};
use taskboard_server::{Config, DEMO_CLIENT, DEMO_USER};

use crate::fleet::Fleet;
use crate::support::t0;

fn scratch() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("oauth-sdk-file-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tokens(access: &str) -> oauth_sdk::TokenSet {
    oauth_sdk::TokenSet::new(access.into(), oauth_sdk::Grant::Password, t0()).with_refresh_token("rt".into())
}

#[tokio::test]
async fn the_file_is_owner_only_replaced_whole_and_compare_and_set() {
    let dir = scratch();
    let store = FileStore::new(dir.join("session.json"));
    assert!(store.load().await.unwrap().is_none());
    let Swap::Stored(v1) = store.store(Expect::Empty, &tokens("one")).await.unwrap() else {
        panic!()
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(store.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the session file is readable by its owner only");
    }
    let Swap::Stored(v2) = store.store(Expect::Version(v1), &tokens("two")).await.unwrap() else {
        panic!()
    };
    match store.store(Expect::Version(v1), &tokens("stale")).await.unwrap() {
        Swap::Conflict(Some(current)) => assert_eq!(current.version, v2),
        other => panic!("the older writer must lose, got {other:?}"),
    }
    store.clear().await.unwrap();
    assert!(store.load().await.unwrap().is_none());
    let Swap::Stored(v3) = store.store(Expect::Empty, &tokens("three")).await.unwrap() else {
        panic!()
    };
    assert!(v3 > v2, "versions are not reused after clear");
    let loaded = store.load().await.unwrap().unwrap();
    assert_eq!(loaded.tokens.as_ref().unwrap().access_token().expose_secret(), "three");
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind: {leftovers:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_unreadable_file_is_a_typed_error_that_quotes_no_secret() {
    let dir = scratch();
    let path = dir.join("session.json");
    std::fs::write(&path, r#"{"format":1,"version":3,"tokens":{"access_token":12345678}}"#).unwrap();
    let error = FileStore::new(&path).load().await.unwrap_err();
    assert_eq!(error.store(), "file");
    assert!(!error.to_string().contains("12345678"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_sharing_a_file_refresh_once() {
    let dir = scratch();
    let path = dir.join("session.json");
    let lifetime = Duration::from_secs(4);
    let config = Config {
        access_token_lifetime: lifetime,
        token_latency: Some(Duration::from_millis(300)),
        ..Config::default()
    };
    let server = taskboard_server::start(config).await.unwrap();
    let client = Client::builder(server.base_url(), DEMO_CLIENT.0)
        .client_secret(DEMO_CLIENT.1.into())
        .build()
        .unwrap();
    let logged_in = Instant::now();
    client
        .login_password(FileStore::new(&path), DEMO_USER.0, DEMO_USER.1.into())
        .await
        .unwrap();

    let fleet = Fleet::start(2, 50, &server.base_url(), &["--file", path.to_str().unwrap()]);
    let expired = logged_in + lifetime + Duration::from_millis(200);
    tokio::time::sleep(expired.saturating_duration_since(Instant::now())).await;
    fleet.run().await;

    let counted = server.counters();
    assert_eq!(counted.refreshes_accepted, 1, "{counted:?}");
    assert_eq!(counted.refreshes_rejected, 0, "{counted:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
