//! The file token store: one JSON file, for command-line and desktop applications.
//!
//! - The file is created with mode 0600 (owner only) and replaced atomically: written to a temporary
//!   file in the same directory, flushed to disk, renamed over the old one.
//! - On Unix, a session file that is not a regular file of this process's user, readable and writable
//!   by that user only, is refused rather than used: a symbolic link or a file another user can write
//!   would let that user plant a session or redirect the write of one, and one others can read gives
//!   them the tokens.
//! - Writes are a compare-and-set under an advisory lock on `FILE.lock`, waited for at most
//!   [`FileStore::with_lock_timeout`]. Logout leaves a tombstone (a version, no tokens), so the version
//!   only grows; a file that is gone restarts at [`version_floor`], above every version given before.
//! - The renewal lock is an advisory lock on `FILE.renew`: two processes on one machine renew once,
//!   and the operating system releases the lock of a process that dies.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::store::sealing::{self, SealingKeys};
use crate::store::{
    Expect, LockAttempt, LockToken, Locked, StoreError, Swap, TokenStore, Version, Versioned, version_floor,
};
use crate::token::TokenSet;

const FORMAT: u32 = 1;

/// How long a write waits for another writer's lock by default: far longer than any write takes, so
/// reaching it means a holder that is stuck, not slow.
const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// A session in a file. Cheap to clone; clones share the renewal lock.
#[derive(Clone, Debug)]
pub struct FileStore {
    inner: Arc<Inner>,
    lock_timeout: Duration,
    sealing: Option<SealingKeys>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    /// Renewal locks this process holds, by owner token: dropping the file releases the lock.
    held: Mutex<HashMap<String, File>>,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    format: u32,
    version: Version,
    /// The token set, or its sealed form; `None` after `clear`: the tombstone of a logged-out
    /// session.
    tokens: Option<serde_json::Value>,
}

impl Stored {
    fn versioned(self, path: &Path, keys: Option<&SealingKeys>) -> Result<Versioned, StoreError> {
        let tokens = self
            .tokens
            .map(|t| sealing::decode(keys, t, &sealing_context(path), "file"))
            .transpose()
            .map_err(|e| e.about(path.display()))?;
        Ok(Versioned {
            version: self.version,
            tokens,
        })
    }
}

fn unavailable(cause: impl std::fmt::Display) -> StoreError {
    StoreError::new("file", cause)
}

fn invalid(cause: impl std::fmt::Display) -> StoreError {
    StoreError::invalid("file", cause)
}

/// What the file system refuses for good (permissions, a symbolic link, a directory) will not pass
/// by trying again; anything else (a full disk, an I/O error) may.
fn io_error(doing: &str, path: &Path, e: std::io::Error) -> StoreError {
    use std::io::ErrorKind;
    let message = format!("cannot {doing} {}: {e}", path.display());
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::ELOOP) {
        return invalid(format!("{message} (a symbolic link, which is not followed)"));
    }
    match e.kind() {
        ErrorKind::PermissionDenied
        | ErrorKind::IsADirectory
        | ErrorKind::NotADirectory
        | ErrorKind::ReadOnlyFilesystem => invalid(message),
        _ => unavailable(message),
    }
}

/// What a sealed session is bound to: its file's name, so that a sealed session copied to another
/// session's file (another user's, beside it) does not open there; the folder may move.
fn sealing_context(path: &Path) -> String {
    path.file_name().unwrap_or_default().to_string_lossy().into_owned()
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

impl FileStore {
    /// The session in the file at `path` (created on the first write; its directory must exist).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            inner: Arc::new(Inner {
                path: path.into(),
                held: Mutex::new(HashMap::new()),
            }),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            sealing: None,
        }
    }

    /// Seal the session in the file with `keys` (AES-256-GCM; feature `encryption`): written sealed
    /// with the current key, read with any of them. A file sealed with a key not given, or (unless
    /// [`SealingKeys::reading_unsealed`]) not sealed, is a [`StoreError`] whose
    /// [`is_sealing`](StoreError::is_sealing) is true, and is left as it is.
    #[cfg(feature = "encryption")]
    pub fn with_sealing(mut self, keys: SealingKeys) -> Self {
        self.sealing = Some(keys);
        self
    }

    /// How long a write waits for another writer's lock on `FILE.lock` before it fails with an
    /// unavailable [`StoreError`] (default 10 s). A write holds the lock for the time of one small
    /// file write; a lock held longer belongs to a process that is stuck, or to something else that
    /// took it, and waiting for it forever would hang the session.
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Run blocking file work off the async runtime.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Path) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let path = self.inner.path.clone();
        tokio::task::spawn_blocking(move || work(&path))
            .await
            .map_err(unavailable)?
    }

    /// Keep the locked renewal file until [`unlock`](TokenStore::unlock) names its owner.
    fn hold(&self, lock: &LockToken, file: File) {
        self.held().insert(lock.as_str().to_owned(), file);
    }

    /// Whether `lock`'s owner holds the renewal lock already (taken again, as the trait asks).
    fn holds(&self, lock: &LockToken) -> bool {
        self.held().contains_key(lock.as_str())
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, File>> {
        self.inner.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Refuse a session file that another user could have planted, could change or can read.
#[cfg(unix)]
fn check_session_file(path: &Path, metadata: &std::fs::Metadata) -> Result<(), StoreError> {
    use std::os::unix::fs::MetadataExt;
    check_regular(path, metadata)?;
    check_owner_only(path, metadata.uid(), metadata.mode(), current_user())
}

/// Refuse a folder in which another user could swap the session file for one of theirs: one that
/// belongs to another user (root excepted), or that group or others may write to, unless it is
/// sticky (as `/tmp` is: there nobody may rename or delete another user's files).
#[cfg(unix)]
fn check_folder(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::MetadataExt;
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let metadata = std::fs::metadata(folder).map_err(|e| io_error("inspect", folder, e))?;
    let (owner, mode, user) = (metadata.uid(), metadata.mode(), current_user());
    if owner != user && owner != 0 {
        return Err(invalid(format!(
            "{}: its folder belongs to user {owner}, who could replace the session file; keep it in a folder of your own",
            path.display()
        )));
    }
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(invalid(format!(
            "{}: its folder has mode {:03o}: group or others may replace the session file in it; \
             keep it in a folder only you may write to",
            path.display(),
            mode & 0o777
        )));
    }
    Ok(())
}

/// The owner and permission half of [`check_session_file`], apart so that a test can give it another
/// owner than the user running the tests.
#[cfg(unix)]
fn check_owner_only(path: &Path, owner: u32, mode: u32, user: u32) -> Result<(), StoreError> {
    if owner != user {
        return Err(invalid(format!(
            "{} belongs to user {owner}, not to this process's user {user}; refusing a session file of another user",
            path.display()
        )));
    }
    let mode = mode & 0o777;
    if mode & 0o077 != 0 {
        return Err(invalid(format!(
            "{} has mode {mode:03o}: group or others may read or write it; a session file must be 0600 \
             (if the file is yours and was not read by others, `chmod 600` it)",
            path.display()
        )));
    }
    Ok(())
}

/// Refuse a symbolic link (which could point the store at any file) or anything but a regular file.
#[cfg(unix)]
fn check_regular(path: &Path, metadata: &std::fs::Metadata) -> Result<(), StoreError> {
    use std::os::unix::fs::FileTypeExt;
    let kind = metadata.file_type();
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a named pipe"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    };
    Err(invalid(format!(
        "{} is {what}; the store uses only a regular file there",
        path.display()
    )))
}

#[cfg(unix)]
fn current_user() -> u32 {
    // SAFETY: geteuid has no preconditions, cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

fn read(path: &Path) -> Result<Option<Stored>, StoreError> {
    read_bytes(path)?.map(|text| parse(path, &text)).transpose()
}

/// The file's contents, once it passed the checks; `None` when there is no file.
fn read_bytes(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    #[cfg(unix)]
    check_folder(path)?;
    #[cfg(unix)]
    match std::fs::symlink_metadata(path) {
        Ok(metadata) => check_session_file(path, &metadata)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("inspect", path, e)),
    }
    let mut options = OpenOptions::new();
    options.read(true);
    // No following a link put there after the check, and no blocking on a named pipe.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NOFOLLOW | libc::O_NONBLOCK);
    let mut file = match options.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("open", path, e)),
    };
    // The path may have been replaced between the check and the open: check what was opened.
    #[cfg(unix)]
    check_session_file(path, &file.metadata().map_err(|e| io_error("inspect", path, e))?)?;
    let mut text = Vec::new();
    file.read_to_end(&mut text).map_err(|e| io_error("read", path, e))?;
    Ok(Some(text))
}

fn parse(path: &Path, text: &[u8]) -> Result<Stored, StoreError> {
    let stored: Stored = serde_json::from_slice(text).map_err(|e| {
        invalid(format!(
            "{} is not a readable session: {}",
            path.display(),
            crate::error::describe_parse_error(&e)
        ))
    })?;
    if stored.format != FORMAT {
        return Err(invalid(format!(
            "{} has format {}; this SDK reads format {FORMAT}",
            path.display(),
            stored.format
        )));
    }
    Ok(stored)
}

/// Write atomically: a temporary file with mode 0600, flushed, renamed over `path`.
fn write(path: &Path, stored: &Stored) -> Result<(), StoreError> {
    let temporary = sibling(path, &format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
    // The one place the session's secrets are written out.
    let json = serde_json::to_vec(stored)
        .map_err(|e| unavailable(format!("cannot serialise the session for {}: {e}", path.display())))?;
    let result = (|| {
        let mut options = OpenOptions::new();
        // create_new: never through a link or into a file someone else made.
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temporary)?;
        file.write_all(&json)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        if let Some(directory) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            File::open(directory)?.sync_all()?;
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        io_error("write", path, e)
    })
}

/// Open a lock file beside the session, creating it owner-only, and never through a symbolic link:
/// one planted there would make the store create or lock a file of the planter's choosing.
fn open_lock_file(path: &Path) -> Result<File, StoreError> {
    #[cfg(unix)]
    check_folder(path)?;
    #[cfg(unix)]
    match std::fs::symlink_metadata(path) {
        Ok(metadata) => check_regular(path, &metadata)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("inspect", path, e)),
    }
    let mut options = OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
        // O_NONBLOCK: a named pipe put there fails to open instead of blocking; no effect on a file.
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(|e| io_error("open", path, e))?;
    #[cfg(unix)]
    check_regular(path, &file.metadata().map_err(|e| io_error("inspect", path, e))?)?;
    Ok(file)
}

/// The session the file holds, opened with `keys` if sealed.
fn read_session(path: &Path, keys: Option<&SealingKeys>) -> Result<Option<Versioned>, StoreError> {
    read(path)?.map(|s| s.versioned(path, keys)).transpose()
}

/// The renewal lock's file, locked; `None` if another holder has it.
fn take_renewal_lock(path: &Path) -> Result<Option<File>, StoreError> {
    let renew_path = sibling(path, ".renew");
    let file = open_lock_file(&renew_path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(io_error("lock", &renew_path, e)),
    }
}

/// Hold the store's write lock for the duration of `work`, waiting at most `timeout` for it.
///
/// Polls rather than blocking in `flock`, which cannot be given a timeout.
fn locked<T>(path: &Path, timeout: Duration, work: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    let lock_path = sibling(path, ".lock");
    let lock = open_lock_file(&lock_path)?;
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        match lock.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(unavailable(format!(
                        "{} is held by another writer; gave up waiting after {timeout:?}",
                        lock_path.display()
                    )));
                }
                std::thread::sleep(pause.min(deadline - now));
                pause = (pause * 2).min(Duration::from_millis(25));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_error("lock", &lock_path, e)),
        }
    }
    work()
}

/// The version of the next write over `current`: one more, or, when there is no file (never
/// written, or deleted), the floor that is above every version the lost file can have held.
fn next_version(current: Option<&Versioned>) -> Version {
    current.map_or_else(version_floor, |c| c.version + 1)
}

impl TokenStore for FileStore {
    async fn load(&self) -> Result<Option<Versioned>, StoreError> {
        let keys = self.sealing.clone();
        self.blocking(move |path| read_session(path, keys.as_ref())).await
    }

    async fn store(&self, expect: Expect, tokens: &TokenSet) -> Result<Swap, StoreError> {
        let keys = self.sealing.clone();
        let sealed = sealing::encode(keys.as_ref(), tokens, &sealing_context(&self.inner.path), "file")?;
        let timeout = self.lock_timeout;
        self.blocking(move |path| {
            locked(path, timeout, || {
                let read =
                    read_bytes(path)?.map(|text| parse(path, &text).and_then(|s| s.versioned(path, keys.as_ref())));
                let current = match read {
                    None => None,
                    Some(Ok(stored)) => Some(stored),
                    // A fresh login replaces whatever is there, as a logout does, also a session
                    // this SDK cannot read; a compare-and-set cannot compare with it.
                    Some(Err(_)) if expect == Expect::Any => None,
                    Some(Err(unreadable)) => return Err(unreadable),
                };
                if !expect.matches(current.as_ref()) {
                    return Ok(Swap::Conflict(current));
                }
                let version = next_version(current.as_ref());
                write(
                    path,
                    &Stored {
                        format: FORMAT,
                        version,
                        tokens: Some(sealed),
                    },
                )?;
                Ok(Swap::Stored(version))
            })
        })
        .await
    }

    async fn clear(&self) -> Result<(), StoreError> {
        let timeout = self.lock_timeout;
        self.blocking(move |path| {
            locked(path, timeout, || {
                // A logout replaces whatever is there, also a session this SDK cannot read (its
                // version then unknown: the floor is above it), but never a file that failed the
                // checks, which is not the store's to replace.
                let current = read_bytes(path)?.and_then(|text| parse(path, &text).ok());
                write(
                    path,
                    &Stored {
                        format: FORMAT,
                        version: next_version(
                            current
                                .map(|s| Versioned {
                                    version: s.version,
                                    tokens: None,
                                })
                                .as_ref(),
                        ),
                        tokens: None,
                    },
                )
            })
        })
        .await
    }

    async fn try_lock(&self, lock: &LockToken, ttl: Duration) -> Result<LockAttempt, StoreError> {
        // The operating system releases the lock of a process that dies: no TTL is needed.
        let _ = ttl;
        if self.holds(lock) {
            return Ok(LockAttempt::Acquired);
        }
        Ok(match self.blocking(take_renewal_lock).await? {
            Some(file) => {
                self.hold(lock, file);
                LockAttempt::Acquired
            }
            None => LockAttempt::Busy,
        })
    }

    /// One blocking task for both: a call dropped before it ends (timed out) leaves no lock held, as
    /// this lock has no TTL to end it.
    async fn try_lock_and_load(&self, lock: &LockToken, ttl: Duration) -> Result<Locked, StoreError> {
        let _ = ttl;
        let keys = self.sealing.clone();
        let held = self.holds(lock);
        let taken = self
            .blocking(move |path| {
                let file = if held {
                    None
                } else {
                    match take_renewal_lock(path)? {
                        Some(file) => Some(file),
                        None => return Ok(None),
                    }
                };
                Ok(Some((file, read_session(path, keys.as_ref()))))
            })
            .await?;
        Ok(match taken {
            Some((file, stored)) => {
                if let Some(file) = file {
                    self.hold(lock, file);
                }
                Locked::Taken(stored)
            }
            None => Locked::Busy,
        })
    }

    async fn unlock(&self, lock: &LockToken) -> Result<(), StoreError> {
        let released = self.held().remove(lock.as_str());
        // Closing the file releases the lock, and closing may block (on a network file system).
        if let Some(file) = released {
            let _ = tokio::task::spawn_blocking(move || drop(file)).await;
        }
        Ok(())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_session_file_of_another_user_or_open_to_others_is_refused() {
        let path = Path::new("/tmp/session.json");
        assert!(check_owner_only(path, 1000, 0o100600, 1000).is_ok());
        let foreign = check_owner_only(path, 1001, 0o100600, 1000).unwrap_err();
        assert!(!foreign.is_unavailable());
        assert!(
            foreign.to_string().contains("/tmp/session.json belongs to user 1001"),
            "{foreign}"
        );
        for mode in [0o100640, 0o100604, 0o100620, 0o100602, 0o100660] {
            let open = check_owner_only(path, 1000, mode, 1000).unwrap_err();
            assert!(!open.is_unavailable());
            assert!(open.to_string().contains("/tmp/session.json has mode"), "{open}");
        }
    }
}
