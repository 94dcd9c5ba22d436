//! The Redis token store: one session shared by every process that names it, coordinated so that
//! the session is renewed once per expiry across all of them.
//!
//! Keys, per session (the `{prefix:session}` hash tag keeps them in one Redis Cluster slot):
//!
//! | key | holds |
//! | --- | --- |
//! | `PREFIX:{SESSION}:session` | hash: `version`, `format` (1), `tokens` (the `TokenSet` JSON) |
//! | `PREFIX:{SESSION}:version` | the version counter; never reset, so a version is never reused |
//! | `PREFIX:{SESSION}:lock` | the renewal lock: an owner token, with a TTL |
//! | `PREFIX:{SESSION}:changed` | pub/sub channel: each new version as it is stored |
//!
//! Writes are a Lua compare-and-set on the version. Processes learn of a renewal by pub/sub rather
//! than keyspace notifications: those need `notify-keyspace-events` set on the server, which managed
//! Redis services often forbid, while a publish from the write script works everywhere and carries the
//! version itself.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::store::{Expect, LockAttempt, LockToken, StoreError, Swap, TokenStore, Version, Versioned};
use crate::token::TokenSet;

/// The stored form's format; a store written by a newer format is refused, not misread.
const FORMAT: u32 = 1;

/// How long one Redis command may take before the store reports it failed. Short: a session never
/// waits on Redis for a request, only around a renewal, and a renewal goes on without Redis.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

const STORE_SCRIPT: &str = r"
local current = redis.call('HGET', KEYS[1], 'version')
local ok
if ARGV[1] == '*' then ok = true
elseif ARGV[1] == '' then ok = (current == false)
else ok = (current == ARGV[1]) end
if not ok then
  if current == false then return {'conflict'} end
  return {'conflict', current, redis.call('HGET', KEYS[1], 'format') or '', redis.call('HGET', KEYS[1], 'tokens') or ''}
end
local version = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'version', version, 'format', ARGV[4], 'tokens', ARGV[2])
redis.call('PUBLISH', ARGV[3], version)
return {'stored', tostring(version)}
";

const UNLOCK_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// A session in Redis. Cheap to clone; clones share the connection.
///
/// ```no_run
/// # async fn example() -> Result<(), oauth_sdk::Error> {
/// use oauth_sdk::{Client, RedisStore};
///
/// let store = RedisStore::connect("redis://127.0.0.1:6379/", "taskboard", "user-42").await?;
/// let client = Client::builder("https://taskboard.example.com", "my-app").build()?;
/// // Every process that resumes "user-42" shares the session, and renews it once per expiry.
/// let api = client.resume(store).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    connection: ConnectionManager,
    session_key: String,
    version_key: String,
    lock_key: String,
    channel: String,
    store_script: Script,
    unlock_script: Script,
    versions: watch::Receiver<Version>,
    subscriber: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.subscriber.abort();
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: it is not kept, and not shown.
        f.debug_struct("RedisStore")
            .field("session_key", &self.inner.session_key)
            .finish_non_exhaustive()
    }
}

fn error(cause: impl std::fmt::Display) -> StoreError {
    StoreError::new("redis", cause)
}

impl RedisStore {
    /// Connect to Redis at `url` (`redis://`, `rediss://` for TLS; an ACL user and password may be in
    /// the URL) for session `session` under key prefix `prefix`. Many sessions (users, tenants) share
    /// one Redis under distinct session names.
    ///
    /// `rediss://` checks the server's certificate against the system's roots. For a private
    /// certificate authority, or a client certificate, build the `redis::Client` and use
    /// [`connect_with`](Self::connect_with).
    pub async fn connect(url: &str, prefix: &str, session: &str) -> Result<Self, StoreError> {
        // The URL may hold a password: errors describe the problem, never the URL.
        let client = redis::Client::open(url).map_err(|e| error(format!("invalid Redis URL ({:?})", e.kind())))?;
        Self::connect_with(client, prefix, session).await
    }

    /// Like [`connect`](Self::connect), with a `redis::Client` built by the caller (the `redis` crate
    /// is re-exported as `oauth_sdk::redis`), for what a URL cannot say:
    ///
    /// ```no_run
    /// # async fn example(ca_pem: Vec<u8>) -> Result<(), Box<dyn std::error::Error>> {
    /// use oauth_sdk::RedisStore;
    /// use oauth_sdk::redis::{Client, TlsCertificates};
    ///
    /// let certificates = TlsCertificates { client_tls: None, root_cert: Some(ca_pem) };
    /// let client = Client::build_with_tls("rediss://app:password@redis.internal:6380/", certificates)?;
    /// let store = RedisStore::connect_with(client, "taskboard", "user-42").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_with(client: redis::Client, prefix: &str, session: &str) -> Result<Self, StoreError> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1);
        let connection = client.get_connection_manager_with_config(config).await.map_err(error)?;
        let base = format!("{prefix}:{{{session}}}");
        let channel = format!("{base}:changed");
        let session_key = format!("{base}:session");
        let (sender, versions) = watch::channel(0);
        let subscriber = tokio::spawn(subscribe(
            client,
            channel.clone(),
            session_key.clone(),
            connection.clone(),
            sender,
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                connection,
                version_key: format!("{base}:version"),
                lock_key: format!("{base}:lock"),
                session_key,
                channel,
                store_script: Script::new(STORE_SCRIPT),
                unlock_script: Script::new(UNLOCK_SCRIPT),
                versions,
                subscriber,
            }),
        })
    }

    fn connection(&self) -> ConnectionManager {
        self.inner.connection.clone()
    }
}

/// Read the stored form: the version, and the tokens if their format is one this SDK reads.
fn parse(version: &str, format: &str, tokens: &str) -> Result<Versioned, StoreError> {
    let version: Version = version
        .parse()
        .map_err(|_| error("the session's version is not a number"))?;
    if format.parse::<u32>().ok() != Some(FORMAT) {
        return Err(error(format!(
            "the session was written in format `{format}`; this SDK reads format {FORMAT}"
        )));
    }
    // serde's message may quote a value, which here may be a token: say only where it failed.
    let tokens = serde_json::from_str(tokens).map_err(|e| {
        error(format!(
            "the stored session is not readable (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    Ok(Versioned::live(version, tokens))
}

impl TokenStore for RedisStore {
    async fn load(&self) -> Result<Option<Versioned>, StoreError> {
        let fields: (Option<String>, Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(&self.inner.session_key)
            .arg(&["version", "format", "tokens"])
            .query_async(&mut self.connection())
            .await
            .map_err(error)?;
        match fields {
            (Some(version), Some(format), Some(tokens)) => parse(&version, &format, &tokens).map(Some),
            _ => Ok(None),
        }
    }

    async fn store(&self, expect: Expect, tokens: &TokenSet) -> Result<Swap, StoreError> {
        let expect = match expect {
            Expect::Any => "*".to_owned(),
            Expect::Empty => String::new(),
            Expect::Version(version) => version.to_string(),
        };
        // The one place the session's secrets are written out.
        let json = serde_json::to_string(tokens).map_err(error)?;
        let reply: Vec<String> = self
            .inner
            .store_script
            .key(&self.inner.session_key)
            .key(&self.inner.version_key)
            .arg(expect)
            .arg(json)
            .arg(&self.inner.channel)
            .arg(FORMAT)
            .invoke_async(&mut self.connection())
            .await
            .map_err(error)?;
        match reply.as_slice() {
            [stored, version] if stored == "stored" => Ok(Swap::Stored(
                version.parse().map_err(|_| error("the new version is not a number"))?,
            )),
            [conflict] if conflict == "conflict" => Ok(Swap::Conflict(None)),
            [conflict, version, format, tokens] if conflict == "conflict" => {
                Ok(Swap::Conflict(Some(parse(version, format, tokens)?)))
            }
            _ => Err(error("unexpected reply from the store script")),
        }
    }

    async fn clear(&self) -> Result<(), StoreError> {
        self.connection()
            .del::<_, ()>(&self.inner.session_key)
            .await
            .map_err(error)
    }

    async fn try_lock(&self, ttl: Duration) -> Result<LockAttempt, StoreError> {
        let owner = uuid::Uuid::new_v4().simple().to_string();
        let options = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::PX(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)));
        let taken: Option<String> = self
            .connection()
            .set_options(&self.inner.lock_key, &owner, options)
            .await
            .map_err(error)?;
        Ok(match taken {
            Some(_) => LockAttempt::Acquired(LockToken::new(owner)),
            None => LockAttempt::Busy,
        })
    }

    async fn unlock(&self, lock: LockToken) -> Result<(), StoreError> {
        self.inner
            .unlock_script
            .key(&self.inner.lock_key)
            .arg(lock.as_str())
            .invoke_async::<i64>(&mut self.connection())
            .await
            .map(drop)
            .map_err(error)
    }

    fn versions(&self) -> Option<watch::Receiver<Version>> {
        Some(self.inner.versions.clone())
    }
}

/// Follow the session's channel, reconnecting with backoff; after each (re)subscription read the
/// current version, so a version published while disconnected is not missed.
async fn subscribe(
    client: redis::Client,
    channel: String,
    session_key: String,
    mut connection: ConnectionManager,
    versions: watch::Sender<Version>,
) {
    let publish = |version: Version| {
        versions.send_if_modified(|newest| {
            let newer = version > *newest;
            if newer {
                *newest = version;
            }
            newer
        });
    };
    let mut delay = Duration::from_millis(100);
    loop {
        if let Ok(mut pubsub) = client.get_async_pubsub().await
            && pubsub.subscribe(&channel).await.is_ok()
        {
            delay = Duration::from_millis(100);
            if let Ok(Some(version)) = connection.hget::<_, _, Option<Version>>(&session_key, "version").await {
                publish(version);
            }
            let mut messages = pubsub.on_message();
            while let Some(message) = messages.next().await {
                if let Ok(version) = message.get_payload::<Version>() {
                    publish(version);
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
