//! The file token store: one JSON file, for command-line and desktop applications.
//!
//! - The file is created with mode 0600 (owner only) and replaced atomically: written to a temporary
//!   file in the same directory, flushed to disk, renamed over the old one.
//! - Writes are a compare-and-set under an advisory lock on `FILE.lock`; the version counter survives
//!   `clear` (the file keeps it, with no tokens), so a version is never reused.
//! - The renewal lock is an advisory lock on `FILE.renew`: two processes on one machine renew once,
//!   and the operating system releases the lock of a process that dies.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::{Expect, LockAttempt, LockToken, StoreError, Swap, TokenStore, Version, Versioned};
use crate::token::TokenSet;

const FORMAT: u32 = 1;

/// A session in a file. Cheap to clone; clones share the renewal lock.
#[derive(Clone, Debug)]
pub struct FileStore {
    inner: Arc<Inner>,
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
    /// `None` after `clear`: no session, but the version counter is kept.
    tokens: Option<TokenSet>,
}

fn error(cause: impl std::fmt::Display) -> StoreError {
    StoreError::new("file", cause)
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
        }
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
        tokio::task::spawn_blocking(move || work(&path)).await.map_err(error)?
    }
}

fn read(path: &Path) -> Result<Option<Stored>, StoreError> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(error(format!("cannot read {}: {e}", path.display()))),
    };
    // serde's message may quote a value, which here may be a token: say only where it failed.
    let stored: Stored = serde_json::from_slice(&text).map_err(|e| {
        error(format!(
            "{} is not a readable session (line {}, column {})",
            path.display(),
            e.line(),
            e.column()
        ))
    })?;
    if stored.format != FORMAT {
        return Err(error(format!(
            "{} has format {}; this SDK reads format {FORMAT}",
            path.display(),
            stored.format
        )));
    }
    Ok(Some(stored))
}

/// Write atomically: a temporary file with mode 0600, flushed, renamed over `path`.
fn write(path: &Path, stored: &Stored) -> Result<(), StoreError> {
    let temporary = sibling(path, &format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temporary)?;
        // The one place the session's secrets are written out.
        file.write_all(&serde_json::to_vec(stored)?)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        if let Some(directory) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            File::open(directory)?.sync_all()?;
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        error(format!("cannot write {}: {e}", path.display()))
    })
}

/// Hold the store's write lock (blocking) for the duration of `work`.
fn locked<T>(path: &Path, work: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    let lock_path = sibling(path, ".lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| error(format!("cannot open {}: {e}", lock_path.display())))?;
    lock.lock()
        .map_err(|e| error(format!("cannot lock {}: {e}", lock_path.display())))?;
    work()
}

impl TokenStore for FileStore {
    async fn load(&self) -> Result<Option<Versioned>, StoreError> {
        self.blocking(|path| {
            Ok(read(path)?.map(|s| Versioned {
                version: s.version,
                tokens: s.tokens,
            }))
        })
        .await
    }

    async fn store(&self, expect: Expect, tokens: &TokenSet) -> Result<Swap, StoreError> {
        let tokens = tokens.clone();
        self.blocking(move |path| {
            locked(path, || {
                let current = read(path)?;
                let (last_version, session) = match &current {
                    Some(s) => (
                        s.version,
                        Some(Versioned {
                            version: s.version,
                            tokens: s.tokens.clone(),
                        }),
                    ),
                    None => (0, None),
                };
                if !expect.matches(session.as_ref()) {
                    return Ok(Swap::Conflict(session));
                }
                let version = last_version + 1;
                write(
                    path,
                    &Stored {
                        format: FORMAT,
                        version,
                        tokens: Some(tokens),
                    },
                )?;
                Ok(Swap::Stored(version))
            })
        })
        .await
    }

    async fn clear(&self) -> Result<(), StoreError> {
        self.blocking(|path| {
            locked(path, || match read(path)? {
                Some(stored) => write(
                    path,
                    &Stored {
                        format: FORMAT,
                        version: stored.version + 1,
                        tokens: None,
                    },
                ),
                None => Ok(()),
            })
        })
        .await
    }

    async fn try_lock(&self, ttl: Duration) -> Result<LockAttempt, StoreError> {
        // The operating system releases the lock of a process that dies: no TTL is needed.
        let _ = ttl;
        let renew_path = sibling(&self.inner.path, ".renew");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&renew_path)
            .map_err(|e| error(format!("cannot open {}: {e}", renew_path.display())))?;
        match file.try_lock() {
            Ok(()) => {
                let owner = uuid::Uuid::new_v4().simple().to_string();
                self.inner
                    .held
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(owner.clone(), file);
                Ok(LockAttempt::Acquired(LockToken::new(owner)))
            }
            Err(std::fs::TryLockError::WouldBlock) => Ok(LockAttempt::Busy),
            Err(std::fs::TryLockError::Error(e)) => Err(error(format!("cannot lock {}: {e}", renew_path.display()))),
        }
    }

    async fn unlock(&self, lock: LockToken) -> Result<(), StoreError> {
        self.inner
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(lock.as_str());
        Ok(())
    }
}
