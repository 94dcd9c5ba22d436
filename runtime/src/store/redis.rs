//! The Redis token store: one session shared by every process that names it, coordinated so that
//! the session is renewed once per expiry across all of them.
//!
//! Keys, per session (the `{prefix:session}` hash tag keeps them in one Redis Cluster slot):
//!
//! | key | holds |
//! | --- | --- |
//! | `PREFIX:{SESSION}:session` | hash: `version`, `format` (1), `tokens` (the `TokenSet` JSON); after logout a tombstone, `version` and `format` without `tokens` |
//! | `PREFIX:{SESSION}:version` | the version counter; never reset, and if Redis loses it, restarted from the server's clock in microseconds, so a version is never reused |
//! | `PREFIX:{SESSION}:lock` | the renewal lock: an owner token, with a TTL |
//! | `PREFIX:{SESSION}:changed` | pub/sub channel: each new version as it is stored (a logout's too) |
//!
//! Writes are a Lua compare-and-set on the version. Processes learn of a renewal by pub/sub rather
//! than keyspace notifications: those need `notify-keyspace-events` set on the server, which managed
//! Redis services often forbid, while a publish from the write script works everywhere and carries the
//! version itself.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::backoff::Backoff;
use crate::store::{Expect, LockAttempt, LockToken, StoreError, Swap, TokenStore, Version, Versioned};
use crate::token::TokenSet;

/// The stored form's format; a store written by a newer format is refused, not misread.
const FORMAT: u32 = 1;

/// The next version, for the write scripts (KEYS[2] is the counter): one more than the counter; when
/// the counter is gone (Redis lost its data: a FLUSHALL, a restart without persistence) the server's
/// clock in microseconds, which is above every version given before; and never at or below the
/// session's own version, should the counter alone be lost. Returned as a string: Lua numbers are
/// doubles, which `tostring` prints as `1.7e+15` from 15 digits on, while `%.0f` prints them whole
/// (they are exact up to 2^53, centuries of microseconds away).
const NEXT_VERSION: &str = r"
local function next_version(session_version)
  local version
  if redis.call('EXISTS', KEYS[2]) == 1 then
    version = redis.call('INCR', KEYS[2])
  else
    local now = redis.call('TIME')
    version = tonumber(now[1]) * 1000000 + tonumber(now[2])
  end
  local session = tonumber(session_version or '')
  if session and session >= version then version = session + 1 end
  version = string.format('%.0f', version)
  redis.call('SET', KEYS[2], version)
  return version
end
";

/// ARGV: the expected version (`*` any, empty: nothing at all), the tokens, the channel, the format.
/// A conflict returns what is there: nothing, or its version and format, and its tokens unless it is
/// a tombstone.
const STORE_SCRIPT: &str = r"
local current = redis.call('HGET', KEYS[1], 'version')
local ok
if ARGV[1] == '*' then ok = true
elseif ARGV[1] == '' then ok = (current == false)
else ok = (current == ARGV[1]) end
if not ok then
  if current == false then return {'conflict'} end
  local reply = {'conflict', current, redis.call('HGET', KEYS[1], 'format') or ''}
  local tokens = redis.call('HGET', KEYS[1], 'tokens')
  if tokens then reply[4] = tokens end
  return reply
end
local version = next_version(current)
redis.call('HSET', KEYS[1], 'version', version, 'format', ARGV[4], 'tokens', ARGV[2])
redis.call('PUBLISH', ARGV[3], version)
return {'stored', version}
";

/// ARGV: the channel, the format. Leaves a tombstone of a new version, published like a write, so that
/// every process holding the session learns of the logout.
const CLEAR_SCRIPT: &str = r"
local version = next_version(redis.call('HGET', KEYS[1], 'version'))
redis.call('HSET', KEYS[1], 'version', version, 'format', ARGV[2])
redis.call('HDEL', KEYS[1], 'tokens')
redis.call('PUBLISH', ARGV[1], version)
return version
";

const UNLOCK_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// How a [`RedisStore`] waits on Redis.
///
/// The defaults suit a managed Redis reached over TLS in another zone: a new connection (TCP, the
/// TLS handshake, authentication) may take a few round trips of tens of milliseconds, more while the
/// service fails over. The store is never on a request's path, only around a login, a renewal or a
/// logout, and a renewal goes on without Redis (the new token is kept in memory and written back
/// later), so a generous timeout costs little while a tight one turns a slow moment into a failure.
///
/// ```
/// use std::time::Duration;
/// use oauth_sdk_runtime::RedisOptions;
///
/// let options = RedisOptions::default()
///     .with_connect_timeout(Duration::from_secs(10))
///     .with_command_timeout(Duration::from_secs(1));
/// assert_eq!(options.command_timeout, Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisOptions {
    /// How long one attempt to connect may take, TLS handshake and authentication included. Default
    /// 5 s. Applies to the first connection, to each reconnection, and to the connection that follows
    /// the pushed versions.
    pub connect_timeout: Duration,
    /// How long one command may take before the store reports it failed, with an unavailable
    /// [`StoreError`]. Default 2 s.
    pub command_timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(2),
        }
    }
}

impl RedisOptions {
    /// The defaults: connect within 5 s, each command within 2 s.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set [`connect_timeout`](Self::connect_timeout).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Set [`command_timeout`](Self::command_timeout).
    pub fn with_command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }
}

/// A session in Redis. Cheap to clone; clones share the connection.
///
/// ```ignore
/// // `my_api` is the module generated from your spec.
/// # async fn example() -> Result<(), oauth_sdk_runtime::Error> {
/// use my_api::Client;
/// use oauth_sdk_runtime::RedisStore;
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
    clear_script: Script,
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

fn unavailable(cause: impl std::fmt::Display) -> StoreError {
    StoreError::new("redis", cause)
}

fn invalid(cause: impl std::fmt::Display) -> StoreError {
    StoreError::invalid("redis", cause)
}

/// A Redis error as a store error: refused credentials or permissions, and keys holding something
/// else, will not pass by trying again; a timeout, a lost connection, a server still loading may.
fn redis_error(e: redis::RedisError) -> StoreError {
    use redis::{ErrorKind, ServerErrorKind};
    match e.kind() {
        // Both messages may quote the reply, and a reply may hold the session's tokens.
        ErrorKind::UnexpectedReturnType => invalid("Redis answered with a reply of an unexpected type"),
        ErrorKind::Parse => unavailable("Redis sent a reply that could not be parsed"),
        ErrorKind::AuthenticationFailed
        | ErrorKind::InvalidClientConfig
        | ErrorKind::Server(ServerErrorKind::NoPerm) => invalid(e),
        _ if e.code() == Some("WRONGTYPE") => invalid("a key of the session holds a value of another type"),
        _ => unavailable(e),
    }
}

impl RedisStore {
    /// Connect to Redis at `url` (`redis://`, `rediss://` for TLS; an ACL user and password may be in
    /// the URL) for session `session` under key prefix `prefix`, with the default [`RedisOptions`].
    /// Many sessions (users, tenants) share one Redis under distinct session names.
    ///
    /// `rediss://` checks the server's certificate against the system's roots. For a private
    /// certificate authority, or a client certificate, build the `redis::Client` and use
    /// [`connect_with`](Self::connect_with).
    pub async fn connect(url: &str, prefix: &str, session: &str) -> Result<Self, StoreError> {
        // The URL may hold a password: errors describe the problem, never the URL.
        let client = redis::Client::open(url).map_err(|e| invalid(format!("invalid Redis URL ({:?})", e.kind())))?;
        Self::connect_with(client, prefix, session).await
    }

    /// Like [`connect`](Self::connect), with a `redis::Client` built by the caller (the `redis` crate
    /// is re-exported as `oauth_sdk_runtime::redis`), for what a URL cannot say:
    ///
    /// ```no_run
    /// # async fn example(ca_pem: Vec<u8>) -> Result<(), Box<dyn std::error::Error>> {
    /// use oauth_sdk_runtime::RedisStore;
    /// use oauth_sdk_runtime::redis::{Client, TlsCertificates};
    ///
    /// let certificates = TlsCertificates { client_tls: None, root_cert: Some(ca_pem) };
    /// let client = Client::build_with_tls("rediss://app:password@redis.internal:6380/", certificates)?;
    /// let store = RedisStore::connect_with(client, "taskboard", "user-42").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_with(client: redis::Client, prefix: &str, session: &str) -> Result<Self, StoreError> {
        Self::connect_with_options(client, prefix, session, RedisOptions::default()).await
    }

    /// Like [`connect_with`](Self::connect_with), with the timeouts in `options` instead of the
    /// defaults:
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use oauth_sdk_runtime::{RedisOptions, RedisStore};
    ///
    /// let client = oauth_sdk_runtime::redis::Client::open("rediss://app:password@redis.example.com:6380/")?;
    /// let options = RedisOptions::default().with_connect_timeout(Duration::from_secs(10));
    /// let store = RedisStore::connect_with_options(client, "taskboard", "user-42", options).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_with_options(
        client: redis::Client,
        prefix: &str,
        session: &str,
        options: RedisOptions,
    ) -> Result<Self, StoreError> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.command_timeout))
            .set_number_of_retries(1);
        let connection = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(redis_error)?;
        let base = format!("{prefix}:{{{session}}}");
        let channel = format!("{base}:changed");
        let session_key = format!("{base}:session");
        let (sender, versions) = watch::channel(0);
        let subscriber = tokio::spawn(subscribe(
            client,
            options,
            channel.clone(),
            session_key.clone(),
            connection.clone(),
            sender,
        ));
        let script = |body: &str| Script::new(&format!("{NEXT_VERSION}{body}"));
        Ok(Self {
            inner: Arc::new(Inner {
                connection,
                version_key: format!("{base}:version"),
                lock_key: format!("{base}:lock"),
                session_key,
                channel,
                store_script: script(STORE_SCRIPT),
                clear_script: script(CLEAR_SCRIPT),
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

/// Read the stored form: the version, and the tokens (none: a tombstone) if their format is one this
/// SDK reads.
fn parse(version: &str, format: &str, tokens: Option<&str>) -> Result<Versioned, StoreError> {
    let version: Version = version
        .parse()
        .map_err(|_| invalid("the session's version is not a number"))?;
    if format.parse::<u32>().ok() != Some(FORMAT) {
        return Err(invalid(format!(
            "the session was written in format `{format}`; this SDK reads format {FORMAT}"
        )));
    }
    let Some(tokens) = tokens else {
        return Ok(Versioned { version, tokens: None });
    };
    let tokens = serde_json::from_str(tokens).map_err(|e| {
        invalid(format!(
            "the stored session is not readable: {}",
            crate::error::describe_parse_error(&e)
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
            .map_err(redis_error)?;
        match fields {
            (None, None, None) => Ok(None),
            (Some(version), format, tokens) => {
                parse(&version, format.as_deref().unwrap_or_default(), tokens.as_deref()).map(Some)
            }
            (None, _, _) => Err(invalid("the stored session has no version")),
        }
    }

    async fn store(&self, expect: Expect, tokens: &TokenSet) -> Result<Swap, StoreError> {
        let expect = match expect {
            Expect::Any => "*".to_owned(),
            Expect::Empty => String::new(),
            Expect::Version(version) => version.to_string(),
        };
        // The one place the session's secrets are written out.
        let json = serde_json::to_string(tokens).map_err(|_| unavailable("cannot serialise the session"))?;
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
            .map_err(redis_error)?;
        match reply.as_slice() {
            [stored, version] if stored == "stored" => Ok(Swap::Stored(
                version
                    .parse()
                    .map_err(|_| invalid("the new version is not a number"))?,
            )),
            [conflict] if conflict == "conflict" => Ok(Swap::Conflict(None)),
            [conflict, version, format] if conflict == "conflict" => {
                Ok(Swap::Conflict(Some(parse(version, format, None)?)))
            }
            [conflict, version, format, tokens] if conflict == "conflict" => {
                Ok(Swap::Conflict(Some(parse(version, format, Some(tokens))?)))
            }
            _ => Err(invalid("unexpected reply from the store script")),
        }
    }

    async fn clear(&self) -> Result<(), StoreError> {
        self.inner
            .clear_script
            .key(&self.inner.session_key)
            .key(&self.inner.version_key)
            .arg(&self.inner.channel)
            .arg(FORMAT)
            .invoke_async::<String>(&mut self.connection())
            .await
            .map(drop)
            .map_err(redis_error)
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
            .map_err(redis_error)?;
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
            .map_err(redis_error)
    }

    fn versions(&self) -> Option<watch::Receiver<Version>> {
        Some(self.inner.versions.clone())
    }
}

/// Follow the session's channel, reconnecting with backoff; after each (re)subscription read the
/// current version, so a version published while disconnected is not missed. Versions only grow, also
/// across a loss of Redis's data (see [`NEXT_VERSION`]), so forwarding only greater ones drops
/// nothing but repeats.
async fn subscribe(
    client: redis::Client,
    options: RedisOptions,
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
    let mut waits = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        // get_async_pubsub has no timeout of its own: one stuck handshake must not end the following.
        let subscribed = async {
            let mut pubsub = tokio::time::timeout(options.connect_timeout, client.get_async_pubsub())
                .await
                .ok()?
                .ok()?;
            tokio::time::timeout(options.command_timeout, pubsub.subscribe(&channel))
                .await
                .ok()?
                .ok()?;
            Some(pubsub)
        };
        if let Some(mut pubsub) = subscribed.await {
            // A version stored while this process was not subscribed was published to no one: read
            // it. If the read fails (the command connection may still be the one a restart of Redis
            // broke), a version may have been missed: start over rather than wait for the next one.
            if let Ok(current) = connection.hget::<_, _, Option<String>>(&session_key, "version").await {
                waits.reset();
                if let Some(version) = current.and_then(|v| v.parse().ok()) {
                    publish(version);
                }
                let mut messages = pubsub.on_message();
                while let Some(message) = messages.next().await {
                    if let Ok(version) = message.get_payload::<Version>() {
                        publish(version);
                    }
                }
            }
        }
        tokio::time::sleep(waits.next_delay()).await;
    }
}
