//! The Redis token store: one session shared by every process that names it, coordinated so that
//! the session is renewed once per expiry across all of them.
//!
//! Keys, per session (the `{prefix:session}` hash tag keeps them in one Redis Cluster slot):
//!
//! | key | holds |
//! | --- | --- |
//! | `PREFIX:{SESSION}:session` | hash: `version`, `format` (1), `tokens` (the `TokenSet` JSON); after logout a tombstone, `version` and `format` without `tokens` |
//! | `PREFIX:{SESSION}:version` | the newest version given; each new one is above it, above the session's, and at least the server's clock in microseconds, so a version is never reused, not even after Redis lost its data or a failover lost the newest writes |
//! | `PREFIX:{SESSION}:lock` | the renewal lock: an owner token, with a TTL |
//! | `PREFIX:{SESSION}:changed` | pub/sub channel: each new version as it is stored (a logout's too) |
//!
//! Writes are a Lua compare-and-set on the version. Processes learn of a renewal by pub/sub rather
//! than keyspace notifications: those need `notify-keyspace-events` set on the server, which managed
//! Redis services often forbid, while a publish from the write script works everywhere and carries the
//! version itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::{AsyncCommands, Script};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use self::topology::{Commands, SentinelMaster, Subscriptions};
use crate::backoff::Backoff;
use crate::store::sealing::{self, SealingKeys};
use crate::store::{Expect, LockAttempt, LockToken, Locked, StoreError, Swap, TokenStore, Version, Versioned};
use crate::token::TokenSet;

/// The stored form's format; a store written by a newer format is refused, not misread.
const FORMAT: u32 = 1;

/// The next version, for the write scripts (KEYS[2] holds the newest version given): one above that
/// and above the session's own version, and at least the server's clock in microseconds. The clock
/// keeps versions growing where the newest ones were lost: Redis lost its data (a FLUSHALL, a
/// restart without persistence), or a failover promoted a replica that had not seen the newest
/// writes, whose counter is behind. Returned as a string: Lua numbers are doubles, which `tostring`
/// prints as `1.7e+15` from 15 digits on, while `%.0f` prints them whole (they are exact up to 2^53,
/// centuries of microseconds away).
const NEXT_VERSION: &str = r"
local function next_version(session_version)
  local now = redis.call('TIME')
  local version = tonumber(now[1]) * 1000000 + tonumber(now[2])
  local given = tonumber(redis.call('GET', KEYS[2]) or '')
  if given and given >= version then version = given + 1 end
  local session = tonumber(session_version or '')
  if session and session >= version then version = session + 1 end
  version = string.format('%.0f', version)
  redis.call('SET', KEYS[2], version)
  return version
end
";

/// ARGV: the expected version (`*` any, empty: nothing at all), the tokens, the channel, the format,
/// and optionally a lock owner: a write that is stored then releases the lock (KEYS[3]) if it is that
/// owner's. A conflict returns what is there: nothing, or its version and format, and its tokens
/// unless it is a tombstone.
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
local release = ARGV[5] and redis.call('GET', KEYS[3]) == ARGV[5]
local version = next_version(current)
redis.call('HSET', KEYS[1], 'version', version, 'format', ARGV[4], 'tokens', ARGV[2])
redis.call('PUBLISH', ARGV[3], version)
if release then redis.call('DEL', KEYS[3]) end
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

/// KEYS: the lock, the session. ARGV: the owner, the TTL in milliseconds. `busy`, or `taken` and
/// what the session holds: nothing, or its version and format, and its tokens unless it is a
/// tombstone (no `false` in the reply, which a RESP3 connection would get as a boolean). Read first,
/// so that a read that fails takes no lock; a lock this owner holds already (the script sent again
/// by the cluster client's retry after a lost reply, or by the session after it lost the answer) is
/// taken again, for a new TTL.
const LOCK_AND_LOAD_SCRIPT: &str = r"
local fields = redis.call('HMGET', KEYS[2], 'version', 'format', 'tokens')
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'busy'} end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if not (fields[1] or fields[2] or fields[3]) then return {'taken'} end
local reply = {'taken', fields[1] or '', fields[2] or ''}
if fields[3] then reply[4] = fields[3] end
return reply
";

/// KEYS: the lock. ARGV: the owner, the TTL in milliseconds. 1 if taken (again, for a new TTL, if
/// this owner holds it already), 0 if another owner holds it.
const LOCK_SCRIPT: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
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

/// One Redis for many sessions: one command connection and one subscription connection, whatever
/// the number of sessions, and a task that routes each session's change notifications to that
/// session alone. Make one per process and Redis (it is cheap to clone), and a [`RedisStore`] per
/// session (user, tenant) with [`session`](Self::session), which opens nothing.
///
/// ```no_run
/// # async fn example() -> Result<(), oauth_sdk_runtime::StoreError> {
/// use oauth_sdk_runtime::RedisSessions;
///
/// let redis = RedisSessions::connect("redis://127.0.0.1:6379/", "taskboard").await?;
/// let ada = redis.session("user-42");
/// let grace = redis.session("user-43"); // the same two connections
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisSessions {
    hub: Arc<Hub>,
    sealing: Option<SealingKeys>,
}

mod topology;

struct Hub {
    connection: Commands,
    prefix: String,
    store_script: Script,
    clear_script: Script,
    lock_script: Script,
    unlock_script: Script,
    lock_and_load_script: Script,
    watchers: Arc<Watchers>,
    requests: mpsc::UnboundedSender<Request>,
    subscriber: JoinHandle<()>,
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.subscriber.abort();
    }
}

/// The sessions this process holds, by their keys' common part (`PREFIX:{SESSION}`): where a
/// notification goes.
type Watchers = Mutex<HashMap<String, Weak<watch::Sender<Version>>>>;

/// What the subscription task is asked to do as sessions come and go (by the keys' common part).
enum Request {
    Subscribe(String),
    Unsubscribe(String),
}

fn lock(watchers: &Watchers) -> std::sync::MutexGuard<'_, HashMap<String, Weak<watch::Sender<Version>>>> {
    watchers.lock().unwrap_or_else(|p| p.into_inner())
}

/// A session's key, from the keys' common part: `session`, `version`, `lock` or `changed` (the
/// channel).
fn key(base: &str, which: &str) -> String {
    format!("{base}:{which}")
}

/// The keys' common part of session `session`: the name inside a hash tag, so that a session's keys
/// sit in one Cluster slot; `{`, `}` and `%` percent-encoded, and the empty name `%`, so that every
/// name makes a tag of its own.
fn base(prefix: &str, session: &str) -> String {
    let mut tag = String::with_capacity(session.len());
    for c in session.chars() {
        match c {
            '{' => tag.push_str("%7B"),
            '}' => tag.push_str("%7D"),
            '%' => tag.push_str("%25"),
            c => tag.push(c),
        }
    }
    if tag.is_empty() {
        tag.push('%');
    }
    format!("{prefix}:{{{tag}}}")
}

impl std::fmt::Debug for RedisSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: it is not kept, and not shown.
        f.debug_struct("RedisSessions")
            .field("prefix", &self.hub.prefix)
            .field("live_sessions", &self.live_sessions())
            .finish_non_exhaustive()
    }
}

impl RedisSessions {
    /// Connect to Redis at `url` (`redis://`, `rediss://` for TLS; an ACL user and password may be in
    /// the URL), for sessions under key prefix `prefix`, with the default [`RedisOptions`].
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        // The URL may hold a password: errors describe the problem, never the URL.
        let client = redis::Client::open(url).map_err(|e| invalid(format!("invalid Redis URL ({:?})", e.kind())))?;
        Self::connect_with(client, prefix, RedisOptions::default()).await
    }

    /// Like [`connect`](Self::connect), with a `redis::Client` built by the caller (a private CA, a
    /// client certificate: see [`RedisStore::connect_with`]) and the timeouts in `options`.
    pub async fn connect_with(client: redis::Client, prefix: &str, options: RedisOptions) -> Result<Self, StoreError> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.command_timeout))
            .set_number_of_retries(1);
        let connection = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(redis_error)?;
        Ok(Self::new(
            Commands::Single(connection),
            Subscriptions::Single(Box::new(client)),
            prefix,
            options,
        ))
    }

    /// Sessions in a Redis Cluster, reached through any of `nodes` (`redis://host:port/`, with the
    /// credentials in the URL if any): each session's keys sit in one hash slot (the `{session}` tag),
    /// commands follow the cluster's redirections and failovers, and the one subscription
    /// connection goes to any node, the cluster carrying every publish to all of them.
    pub async fn connect_cluster(nodes: &[&str], prefix: &str, options: RedisOptions) -> Result<Self, StoreError> {
        let invalid_url = |e: redis::RedisError| invalid(format!("invalid Redis node URL ({:?})", e.kind()));
        let cluster = redis::cluster::ClusterClient::builder(nodes.iter().copied())
            .connection_timeout(options.connect_timeout)
            .response_timeout(options.command_timeout)
            .retries(2)
            .build()
            .map_err(invalid_url)?;
        let connection = cluster.get_async_connection().await.map_err(redis_error)?;
        let subscriptions = nodes
            .iter()
            .map(|node| redis::Client::open(*node))
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid_url)?;
        Ok(Self::new(
            Commands::Cluster(connection),
            Subscriptions::Cluster(subscriptions, Default::default()),
            prefix,
            options,
        ))
    }

    /// Sessions on the master that the Sentinels at `sentinels` (`redis://host:port/`) name
    /// `master`: after a failover, the next command (and the subscription) asks them again for the
    /// master, rather than keep writing to a demoted one.
    pub async fn connect_sentinel(
        sentinels: &[&str],
        master: &str,
        prefix: &str,
        options: RedisOptions,
    ) -> Result<Self, StoreError> {
        let sentinel = redis::sentinel::SentinelClient::build(
            sentinels.to_vec(),
            // A `String`: what `build` takes without the `tls-rustls` feature of `redis`.
            String::from(master),
            None,
            redis::sentinel::SentinelServerType::Master,
        )
        .map_err(|e| invalid(format!("invalid Sentinel URL ({:?})", e.kind())))?;
        Self::connect_sentinel_with(sentinel, prefix, options).await
    }

    /// Like [`connect_sentinel`](Self::connect_sentinel), with a `SentinelClient` built by the caller
    /// (`oauth_sdk_runtime::redis::sentinel`), for what URLs cannot say: the master's password or
    /// ACL user and its TLS, given as the client's `SentinelNodeConnectionInfo`. It must name
    /// `SentinelServerType::Master`.
    pub async fn connect_sentinel_with(
        sentinel: redis::sentinel::SentinelClient,
        prefix: &str,
        options: RedisOptions,
    ) -> Result<Self, StoreError> {
        let sentinel = Arc::new(tokio::sync::Mutex::new(sentinel));
        let connection = tokio::time::timeout(
            options.connect_timeout.saturating_mul(2),
            SentinelMaster::connect(sentinel.clone(), options),
        )
        .await
        .map_err(|_| unavailable("the Sentinel did not name a reachable master in time"))?
        .map_err(redis_error)?;
        Ok(Self::new(
            Commands::Sentinel(connection),
            Subscriptions::Sentinel(sentinel),
            prefix,
            options,
        ))
    }

    fn new(connection: Commands, subscriptions: Subscriptions, prefix: &str, options: RedisOptions) -> Self {
        let watchers = Arc::new(Watchers::default());
        let (requests, received) = mpsc::unbounded_channel();
        let subscriber = tokio::spawn(subscribe(
            subscriptions,
            options,
            connection.clone(),
            watchers.clone(),
            received,
        ));
        let script = |body: &str| Script::new(&format!("{NEXT_VERSION}{body}"));
        Self {
            hub: Arc::new(Hub {
                connection,
                prefix: prefix.to_owned(),
                store_script: script(STORE_SCRIPT),
                clear_script: script(CLEAR_SCRIPT),
                lock_script: Script::new(LOCK_SCRIPT),
                unlock_script: Script::new(UNLOCK_SCRIPT),
                lock_and_load_script: Script::new(LOCK_AND_LOAD_SCRIPT),
                watchers,
                requests,
                subscriber,
            }),
            sealing: None,
        }
    }

    /// Seal the sessions this handle's stores write with `keys` (AES-256-GCM; feature
    /// `encryption`): written sealed with the current key, read with any of them, bound to their
    /// session key. A session sealed with a key not given, or (unless
    /// [`SealingKeys::reading_unsealed`]) not sealed, is a [`StoreError`] whose
    /// [`is_sealing`](StoreError::is_sealing) is true, and is left as it is.
    #[cfg(feature = "encryption")]
    pub fn with_sealing(mut self, keys: SealingKeys) -> Self {
        self.sealing = Some(keys);
        self
    }

    /// The store of session `session` (a user id, a tenant id): no new connection; its change
    /// notifications come through this handle's one subscription, to it alone. Two stores of one
    /// session share its notifications.
    pub fn session(&self, session: &str) -> RedisStore {
        let base = base(&self.hub.prefix, session);
        let mut watchers = lock(&self.hub.watchers);
        let existing = watchers.get(&base).and_then(Weak::upgrade);
        let sender = existing.unwrap_or_else(|| {
            let sender = Arc::new(watch::channel(0).0);
            watchers.insert(base.clone(), Arc::downgrade(&sender));
            // Subscribed by the task (and again after each reconnection): a store is ready at once.
            let _ = self.hub.requests.send(Request::Subscribe(base.clone()));
            sender
        });
        drop(watchers);
        RedisStore {
            inner: Arc::new(Inner {
                hub: self.hub.clone(),
                base,
                versions: sender.subscribe(),
                sender: Some(sender),
                sealing: self.sealing.clone(),
            }),
        }
    }

    /// How many sessions have a store alive in this process.
    pub fn live_sessions(&self) -> usize {
        lock(&self.hub.watchers)
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
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
///
/// `connect` opens two connections for the one session; a service with many sessions makes one
/// [`RedisSessions`] and takes each session's store from it.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    hub: Arc<Hub>,
    /// The keys' common part: `PREFIX:{SESSION}` (the keys are made from it when used, which is
    /// rare: a session's store is used around logins and renewals only).
    base: String,
    versions: watch::Receiver<Version>,
    /// Shared by the stores of this session in this process; the last one dropped unsubscribes.
    sender: Option<Arc<watch::Sender<Version>>>,
    sealing: Option<SealingKeys>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let mut watchers = lock(&self.hub.watchers);
        drop(self.sender.take());
        let gone = watchers.get(&self.base).is_some_and(|w| w.strong_count() == 0);
        if gone {
            watchers.remove(&self.base);
            let _ = self.hub.requests.send(Request::Unsubscribe(self.base.clone()));
        }
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("session_key", &key(&self.inner.base, "session"))
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
    /// the URL) for session `session` under key prefix `prefix`, with the default [`RedisOptions`]:
    /// the simple path for one session. Many sessions (users, tenants) share one Redis under
    /// distinct session names; a process that holds many takes them from one [`RedisSessions`].
    ///
    /// `rediss://` checks the server's certificate against the system's roots. For a private
    /// certificate authority, or a client certificate, build the `redis::Client` and use
    /// [`connect_with`](Self::connect_with).
    pub async fn connect(url: &str, prefix: &str, session: &str) -> Result<Self, StoreError> {
        Ok(RedisSessions::connect(url, prefix).await?.session(session))
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
        Ok(RedisSessions::connect_with(client, prefix, options)
            .await?
            .session(session))
    }

    fn connection(&self) -> Commands {
        self.inner.hub.connection.clone()
    }
}

/// A session's fields as read: version, format, tokens.
type Fields = (Option<String>, Option<String>, Option<String>);

fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
}

impl Inner {
    /// The session its fields hold: none, or a version with its tokens or its tombstone.
    fn read(&self, fields: Fields) -> Result<Option<Versioned>, StoreError> {
        match fields {
            (None, None, None) => Ok(None),
            (Some(version), format, tokens) => self
                .parse(&version, format.as_deref().unwrap_or_default(), tokens.as_deref())
                .map(Some),
            (None, _, _) => Err(invalid("the stored session has no version")),
        }
    }

    /// Read the stored form: the version, and the tokens (none: a tombstone) if their format is one
    /// this SDK reads, opened if sealed.
    fn parse(&self, version: &str, format: &str, tokens: Option<&str>) -> Result<Versioned, StoreError> {
        parse(
            version,
            format,
            tokens,
            self.sealing.as_ref(),
            &key(&self.base, "session"),
        )
    }
}

fn parse(
    version: &str,
    format: &str,
    tokens: Option<&str>,
    keys: Option<&SealingKeys>,
    session_key: &str,
) -> Result<Versioned, StoreError> {
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
    let tokens = sealing::decode(keys, tokens, session_key, "redis")?;
    Ok(Versioned::live(version, tokens))
}

impl RedisStore {
    /// The store script, releasing `unlock` if the write is stored.
    async fn store_script(
        &self,
        expect: Expect,
        tokens: &TokenSet,
        unlock: Option<&LockToken>,
    ) -> Result<Swap, StoreError> {
        let expect = match expect {
            Expect::Any => "*".to_owned(),
            Expect::Empty => String::new(),
            Expect::Version(version) => version.to_string(),
        };
        let session_key = key(&self.inner.base, "session");
        let json = sealing::encode(self.inner.sealing.as_ref(), tokens, &session_key, "redis")?.to_string();
        let mut invocation = self.inner.hub.store_script.prepare_invoke();
        invocation
            .key(session_key)
            .key(key(&self.inner.base, "version"))
            .arg(expect)
            .arg(json)
            .arg(key(&self.inner.base, "changed"))
            .arg(FORMAT);
        if let Some(lock) = unlock {
            invocation.key(key(&self.inner.base, "lock")).arg(lock.as_str());
        }
        let reply: Vec<String> = invocation
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
                Ok(Swap::Conflict(Some(self.inner.parse(version, format, None)?)))
            }
            [conflict, version, format, tokens] if conflict == "conflict" => {
                Ok(Swap::Conflict(Some(self.inner.parse(version, format, Some(tokens))?)))
            }
            _ => Err(invalid("unexpected reply from the store script")),
        }
    }
}

impl TokenStore for RedisStore {
    async fn load(&self) -> Result<Option<Versioned>, StoreError> {
        let fields: Fields = redis::cmd("HMGET")
            .arg(key(&self.inner.base, "session"))
            .arg(&["version", "format", "tokens"])
            .query_async(&mut self.connection())
            .await
            .map_err(redis_error)?;
        self.inner.read(fields)
    }

    async fn store(&self, expect: Expect, tokens: &TokenSet) -> Result<Swap, StoreError> {
        self.store_script(expect, tokens, None).await
    }

    async fn try_lock_and_load(&self, lock: &LockToken, ttl: Duration) -> Result<Locked, StoreError> {
        // As bytes, so that fields that are no text are the read's error, with the lock taken.
        let reply: Vec<Vec<u8>> = self
            .inner
            .hub
            .lock_and_load_script
            .key(key(&self.inner.base, "lock"))
            .key(key(&self.inner.base, "session"))
            .arg(lock.as_str())
            .arg(ttl_millis(ttl))
            .invoke_async(&mut self.connection())
            .await
            .map_err(redis_error)?;
        let mut reply = reply.into_iter();
        match reply.next().as_deref() {
            Some(b"busy") => Ok(Locked::Busy),
            Some(b"taken") => {
                let mut field = || {
                    reply
                        .next()
                        .map(|field| String::from_utf8(field).map_err(|_| invalid("the stored session is not text")))
                        .transpose()
                };
                let stored = (|| {
                    let version = field()?.filter(|version| !version.is_empty());
                    self.inner.read((version, field()?, field()?))
                })();
                Ok(Locked::Taken(stored))
            }
            _ => Err(invalid("unexpected reply from the lock script")),
        }
    }

    async fn store_and_unlock(&self, expect: Expect, tokens: &TokenSet, lock: &LockToken) -> Result<Swap, StoreError> {
        self.store_script(expect, tokens, Some(lock)).await
    }

    async fn clear(&self) -> Result<(), StoreError> {
        self.inner
            .hub
            .clear_script
            .key(key(&self.inner.base, "session"))
            .key(key(&self.inner.base, "version"))
            .arg(key(&self.inner.base, "changed"))
            .arg(FORMAT)
            .invoke_async::<String>(&mut self.connection())
            .await
            .map(drop)
            .map_err(redis_error)
    }

    async fn try_lock(&self, lock: &LockToken, ttl: Duration) -> Result<LockAttempt, StoreError> {
        let taken: i64 = self
            .inner
            .hub
            .lock_script
            .key(key(&self.inner.base, "lock"))
            .arg(lock.as_str())
            .arg(ttl_millis(ttl))
            .invoke_async(&mut self.connection())
            .await
            .map_err(redis_error)?;
        Ok(if taken == 1 {
            LockAttempt::Acquired
        } else {
            LockAttempt::Busy
        })
    }

    async fn unlock(&self, lock: &LockToken) -> Result<(), StoreError> {
        self.inner
            .hub
            .unlock_script
            .key(key(&self.inner.base, "lock"))
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

/// How many channels one SUBSCRIBE names, and how many versions are read at once.
const BATCH: usize = 500;

/// How often an idle subscription connection is checked with a PING: a connection that died
/// without a word (a NAT's idle timeout, a failover that moved the address) is noticed, rather than
/// leave every session deaf.
const PING_EVERY: Duration = Duration::from_secs(30);

/// Every this many pings, the versions of all sessions are read again, as after a reconnection.
const CATCH_UP_EVERY: u32 = 10;

/// Follow the channels of the sessions this process holds, on one connection, reconnecting with
/// backoff. After each (re)subscription, and for each session subscribed later, read the current
/// version, so a version published while not subscribed is not missed; a session whose read fails
/// is read again at the next ping. Versions only grow (see [`NEXT_VERSION`]), so forwarding only
/// greater ones drops nothing but repeats. Ends when the [`RedisSessions`] is dropped.
async fn subscribe(
    subscriptions: Subscriptions,
    options: RedisOptions,
    connection: Commands,
    watchers: Arc<Watchers>,
    mut requests: mpsc::UnboundedReceiver<Request>,
) {
    let mut waits = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        // get_async_pubsub has no timeout of its own: one stuck handshake must not end the following.
        let connected = tokio::time::timeout(options.connect_timeout, subscriptions.connect()).await;
        if let Ok(Ok(pubsub)) = connected {
            let (mut sink, mut stream) = pubsub.split();
            let live: Vec<String> = lock(&watchers).keys().cloned().collect();
            let mut following = true;
            for bases in live.chunks(BATCH) {
                let channels: Vec<String> = bases.iter().map(|b| key(b, "changed")).collect();
                following = following && command(options, sink.subscribe(&channels)).await;
            }
            // If no read succeeds (the command connection may still be the one a restart of Redis
            // broke), versions may have been missed: start over rather than wait for the next one.
            let mut stale = Vec::new();
            if following && catch_up(&connection, &watchers, live, &mut stale).await {
                waits.reset();
                let mut pings = 0u32;
                let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
                loop {
                    tokio::select! {
                        message = stream.next() => match message {
                            Some(message) => route(&watchers, &message),
                            None => break,
                        },
                        _ = ping.tick() => {
                            let pinged = tokio::time::timeout(options.command_timeout, sink.ping::<redis::Value>()).await;
                            if !matches!(pinged, Ok(Ok(_))) {
                                break;
                            }
                            pings += 1;
                            let again = if pings.is_multiple_of(CATCH_UP_EVERY) {
                                lock(&watchers).keys().cloned().collect()
                            } else {
                                std::mem::take(&mut stale)
                            };
                            if !again.is_empty() && !catch_up(&connection, &watchers, again, &mut stale).await {
                                break;
                            }
                        }
                        request = requests.recv() => {
                            let Some(request) = request else { return };
                            // Sessions made together (at startup, say) are subscribed together.
                            let mut added = Vec::new();
                            let mut next = Some(request);
                            while let Some(request) = next.take() {
                                match request {
                                    Request::Subscribe(base) => added.push(base),
                                    Request::Unsubscribe(base) => {
                                        added.retain(|b| *b != base);
                                        // Unless the session came back meanwhile.
                                        if !lock(&watchers).contains_key(&base) {
                                            let _ = command(options, sink.unsubscribe(key(&base, "changed"))).await;
                                        }
                                    }
                                }
                                if added.len() < BATCH {
                                    next = requests.try_recv().ok();
                                }
                            }
                            if !added.is_empty() {
                                let channels: Vec<String> = added.iter().map(|b| key(b, "changed")).collect();
                                if !command(options, sink.subscribe(&channels)).await
                                    || !catch_up(&connection, &watchers, added, &mut stale).await
                                {
                                    break;
                                }
                            }
                        }
                    }
                }
            }
        }
        tokio::time::sleep(waits.next_delay()).await;
    }
}

/// Whether a subscription command succeeded in time.
async fn command(options: RedisOptions, command: impl std::future::Future<Output = redis::RedisResult<()>>) -> bool {
    matches!(tokio::time::timeout(options.command_timeout, command).await, Ok(Ok(())))
}

/// Read the current version of each of `bases`' sessions and hand it to its watcher; the sessions
/// whose read failed go to `stale`, to be read again. False if every read failed: the connection,
/// not a session, is the trouble.
async fn catch_up(connection: &Commands, watchers: &Watchers, bases: Vec<String>, stale: &mut Vec<String>) -> bool {
    let mut any_read = bases.is_empty();
    for bases in bases.chunks(BATCH) {
        // One command each (multiplexed on the wire): in a Cluster, the keys are in many slots.
        let reads = bases.iter().map(|base| {
            let mut connection = connection.clone();
            async move {
                connection
                    .hget::<_, _, Option<String>>(key(base, "session"), "version")
                    .await
            }
        });
        let versions = futures_util::future::join_all(reads).await;
        let watchers = lock(watchers);
        for (base, version) in bases.iter().zip(versions) {
            match version {
                Ok(version) => {
                    any_read = true;
                    if let (Some(watcher), Some(version)) = (watchers.get(base), version.and_then(|v| v.parse().ok())) {
                        publish(watcher, version);
                    }
                }
                Err(_) if watchers.contains_key(base) => stale.push(base.clone()),
                Err(_) => {}
            }
        }
    }
    any_read
}

/// A notification, to the one session whose channel it came on.
fn route(watchers: &Watchers, message: &redis::Msg) {
    let Ok(version) = message.get_payload::<Version>() else {
        return;
    };
    let Some(base) = message.get_channel_name().strip_suffix(":changed") else {
        return;
    };
    if let Some(watcher) = lock(watchers).get(base) {
        publish(watcher, version);
    }
}

fn publish(watcher: &Weak<watch::Sender<Version>>, version: Version) {
    if let Some(versions) = watcher.upgrade() {
        versions.send_if_modified(|newest| {
            let newer = version > *newest;
            if newer {
                *newest = version;
            }
            newer
        });
    }
}
