//! The file store: owner-only, atomic, compare-and-set, and one refresh for two processes.

use std::path::Path;
use std::time::{Duration, Instant};

use oauth_sdk::{Client, Expect, ExposeSecret, FileStore, StoreError, Swap, TokenStore, Versioned, version_floor};
use taskboard_server::{Config, DEMO_CLIENT, DEMO_USER};

use crate::contract;
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

fn live(stored: &Versioned) -> &oauth_sdk::TokenSet {
    stored.tokens.as_ref().expect("a live session, not a tombstone")
}

/// Write `contents` to a new file at `path` readable by its owner only, as the store's own are.
fn private_file(path: &Path, contents: &str) {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(path).unwrap(), contents.as_bytes()).unwrap();
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
    assert!(store.load().await.unwrap().unwrap().is_logged_out());
    let Swap::Stored(v3) = store.store(Expect::Any, &tokens("three")).await.unwrap() else {
        panic!()
    };
    assert!(v3 > v2, "versions are not reused after clear");
    let loaded = store.load().await.unwrap().unwrap();
    assert_eq!(live(&loaded).access_token().expose_secret(), "three");
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
    private_file(&path, r#"{"format":1,"version":3,"tokens":{"access_token":12345678}}"#);
    let error = FileStore::new(&path).load().await.unwrap_err();
    assert_eq!(error.store(), "file");
    assert!(!error.is_unavailable(), "a corrupt file will not mend itself: {error}");
    assert!(
        error
            .to_string()
            .contains("session.json: the stored session is not readable"),
        "{error}"
    );
    assert!(!error.to_string().contains("12345678"), "{error}");
    let refused = FileStore::new(&path)
        .store(Expect::Empty, &tokens("x"))
        .await
        .unwrap_err();
    assert!(
        !refused.is_unavailable() && !refused.to_string().contains("12345678"),
        "{refused}"
    );

    // A logout ends even a session whose tokens it cannot read, above its version, and so does a
    // fresh login.
    FileStore::new(&path).clear().await.unwrap();
    let tombstone = FileStore::new(&path).load().await.unwrap().expect("a tombstone");
    assert!(tombstone.is_logged_out() && tombstone.version > 3);
    std::fs::remove_file(&path).unwrap();
    private_file(&path, r#"{"format":2}"#);
    let floor = version_floor();
    let Swap::Stored(version) = FileStore::new(&path)
        .store(Expect::Any, &tokens("fresh"))
        .await
        .unwrap()
    else {
        panic!("a fresh login replaces what it cannot read")
    };
    assert!(version >= floor);
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

#[tokio::test]
async fn logout_leaves_a_tombstone_of_a_newer_version() {
    let dir = scratch();
    let store = FileStore::new(dir.join("session.json"));
    let logged_out = contract::log_out(&store, &store).await;
    let empty = FileStore::new(dir.join("never-written.json"));
    contract::the_tombstone_holds(&store, &store, logged_out, &empty).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_deleted_file_restarts_above_every_earlier_version() {
    let dir = scratch();
    let store = FileStore::new(dir.join("session.json"));
    let floor = version_floor();
    let Swap::Stored(first) = store.store(Expect::Empty, &tokens("one")).await.unwrap() else {
        panic!("first write")
    };
    assert!(
        first >= floor,
        "a first write starts at the clock's floor, not at 1: {first}"
    );
    let mut seen = vec![first];
    for access in ["two", "three"] {
        let Swap::Stored(version) = store.store(Expect::Any, &tokens(access)).await.unwrap() else {
            panic!("a write")
        };
        seen.push(version);
    }
    store.clear().await.unwrap();
    seen.push(store.load().await.unwrap().unwrap().version);

    std::fs::remove_file(store.path()).unwrap();
    assert!(
        store.load().await.unwrap().is_none(),
        "nothing at all, not even a tombstone"
    );
    let Swap::Stored(after) = store.store(Expect::Empty, &tokens("again")).await.unwrap() else {
        panic!("a write to an empty store")
    };
    let highest = seen.iter().max().unwrap();
    assert!(
        after > *highest,
        "{after} is not above {highest}: a version was given twice"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The three ways to ask a store for this file, each of which must refuse it with a typed, lasting
/// error that names the path.
#[cfg(unix)]
async fn assert_refused(store: &FileStore, why: &str) {
    let path = store.path().display().to_string();
    let check = |operation: &str, error: StoreError| {
        assert_eq!(error.store(), "file");
        assert!(!error.is_unavailable(), "{operation}: not a passing failure: {error}");
        let message = error.to_string();
        assert!(
            message.contains(&path) && message.contains(why),
            "{operation}: {message}"
        );
        assert!(
            !message.contains("secret-access"),
            "{operation}: quotes the tokens: {message}"
        );
    };
    check("load", store.load().await.unwrap_err());
    check("store", store.store(Expect::Any, &tokens("new")).await.unwrap_err());
    check("clear", store.clear().await.unwrap_err());
}

#[cfg(unix)]
#[tokio::test]
async fn a_session_file_others_may_read_is_refused_and_left_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch();
    let path = dir.join("session.json");
    let store = FileStore::new(&path);
    store.store(Expect::Empty, &tokens("secret-access")).await.unwrap();
    for mode in [0o640, 0o604, 0o660] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let before = std::fs::read(&path).unwrap();
        assert_refused(&store, "mode").await;
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "mode {mode:o}: the file was changed"
        );
        let after = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(after, mode, "the file's mode was changed");
    }
    // Once owner-only again, the same file is the session.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let loaded = store.load().await.unwrap().unwrap();
    assert_eq!(live(&loaded).access_token().expose_secret(), "secret-access");
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[tokio::test]
async fn a_folder_others_may_write_to_is_refused_unless_sticky() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch();
    let path = dir.join("session.json");
    let store = FileStore::new(&path);
    store.store(Expect::Empty, &tokens("secret-access")).await.unwrap();
    for mode in [0o777, 0o775] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
        let before = std::fs::read(&path).unwrap();
        assert_refused(&store, "folder").await;
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "folder mode {mode:o}: the file was changed"
        );
    }
    // Sticky, as /tmp is: nobody may replace another user's file in it.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let loaded = store.load().await.unwrap().unwrap();
    assert_eq!(live(&loaded).access_token().expose_secret(), "secret-access");
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[tokio::test]
async fn a_symbolic_link_at_the_session_path_is_refused_and_left_alone() {
    let dir = scratch();
    let target = dir.join("elsewhere.json");
    // A well-formed, owner-only session: only the link is wrong.
    private_file(&target, r#"{"format":1,"version":3,"tokens":null}"#);
    let path = dir.join("session.json");
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let store = FileStore::new(&path);
    assert_refused(&store, "symbolic link").await;
    assert!(
        std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink(),
        "the link was replaced"
    );
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        r#"{"format":1,"version":3,"tokens":null}"#,
        "the link's target was changed"
    );

    // A link to nowhere is refused too, not written through.
    let dangling = dir.join("dangling.json");
    std::os::unix::fs::symlink(dir.join("nowhere.json"), &dangling).unwrap();
    assert_refused(&FileStore::new(&dangling), "symbolic link").await;
    assert!(
        !dir.join("nowhere.json").exists(),
        "a file was created through the link"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[tokio::test]
async fn a_directory_at_the_session_path_is_refused_and_left_alone() {
    let dir = scratch();
    let path = dir.join("session.json");
    std::fs::create_dir(&path).unwrap();
    assert_refused(&FileStore::new(&path), "directory").await;
    assert!(path.is_dir());
    assert_eq!(
        std::fs::read_dir(&path).unwrap().count(),
        0,
        "something was written into it"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[tokio::test]
async fn the_lock_files_are_owner_only_and_never_followed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch();
    let store = FileStore::new(dir.join("session.json"));
    store.store(Expect::Empty, &tokens("one")).await.unwrap();
    let lock = oauth_sdk::LockToken::random();
    let taken = store.try_lock(&lock, Duration::from_secs(5)).await.unwrap();
    assert_eq!(taken, oauth_sdk::LockAttempt::Acquired, "the renewal lock is free");
    store.unlock(&lock).await.unwrap();
    for name in ["session.json.lock", "session.json.renew"] {
        let mode = std::fs::metadata(dir.join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name} is readable by its owner only");
    }

    // Links planted where the lock files go are refused, and nothing is created or locked through them.
    let other = scratch();
    let store = FileStore::new(other.join("session.json"));
    std::os::unix::fs::symlink(other.join("lock-target"), other.join("session.json.lock")).unwrap();
    std::os::unix::fs::symlink(other.join("renew-target"), other.join("session.json.renew")).unwrap();
    let error = store.store(Expect::Empty, &tokens("one")).await.unwrap_err();
    assert!(!error.is_unavailable(), "{error}");
    assert!(
        error.to_string().contains("session.json.lock") && error.to_string().contains("symbolic link"),
        "{error}"
    );
    let error = store
        .try_lock(&oauth_sdk::LockToken::random(), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(!error.is_unavailable(), "{error}");
    assert!(
        error.to_string().contains("session.json.renew") && error.to_string().contains("symbolic link"),
        "{error}"
    );
    assert!(!other.join("lock-target").exists() && !other.join("renew-target").exists());
    assert!(
        !other.join("session.json").exists(),
        "nothing was written without the lock"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&other);
}

#[tokio::test]
async fn a_write_lock_held_elsewhere_fails_after_the_timeout_instead_of_hanging() {
    let dir = scratch();
    let timeout = Duration::from_millis(300);
    let store = FileStore::new(dir.join("session.json")).with_lock_timeout(timeout);
    let Swap::Stored(v1) = store.store(Expect::Empty, &tokens("one")).await.unwrap() else {
        panic!("first write")
    };

    // Another holder: a process stuck in the middle of a write, say.
    let lock_path = dir.join("session.json.lock");
    let holder = std::fs::OpenOptions::new().write(true).open(&lock_path).unwrap();
    holder.lock().unwrap();

    let started = Instant::now();
    let refused = tokio::time::timeout(Duration::from_secs(30), store.store(Expect::Any, &tokens("two")))
        .await
        .expect("the write gave up instead of waiting for the lock forever")
        .unwrap_err();
    let waited = started.elapsed();
    assert!(refused.is_unavailable(), "a held lock may be released: {refused}");
    assert!(
        refused.to_string().contains(&lock_path.display().to_string()),
        "{refused}"
    );
    assert!(waited >= timeout, "gave up after {waited:?}, before the timeout");
    let refused = tokio::time::timeout(Duration::from_secs(30), store.clear())
        .await
        .expect("the logout gave up too")
        .unwrap_err();
    assert!(refused.is_unavailable(), "{refused}");
    assert_eq!(store.load().await.unwrap().unwrap().version, v1, "nothing was written");

    drop(holder);
    let Swap::Stored(v2) = store.store(Expect::Version(v1), &tokens("two")).await.unwrap() else {
        panic!("the write goes through once the lock is free")
    };
    assert!(v2 > v1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The file store takes its lock and reads in one blocking task, and writes and unlocks by the
/// trait's default.
#[tokio::test]
async fn the_lock_is_taken_with_the_read_and_released_with_the_write_that_stores() {
    let dir = scratch();
    let (ada, bob) = (
        FileStore::new(dir.join("session.json")),
        FileStore::new(dir.join("session.json")),
    );
    contract::the_lock_comes_with_the_read_and_goes_with_the_write(&ada, &bob).await;
    let _ = std::fs::remove_dir_all(&dir);
}
