//! Where the sessions are: one Redis, a Redis Cluster, or a master found through Sentinel. The
//! commands and the subscription of a [`RedisSessions`](super::RedisSessions) go through these,
//! whatever the topology: a Cluster routes each session's keys (one hash slot, by the `{session}`
//! tag) and follows failovers itself; a Sentinel-found master is looked up again after a failover.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection, PubSub};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::SentinelClient;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

use super::RedisOptions;

/// The command connection: one multiplexed connection (per node, in a Cluster) for every session.
#[derive(Clone)]
pub(super) enum Commands {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(SentinelMaster),
}

impl ConnectionLike for Commands {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Commands::Single(c) => c.req_packed_command(cmd),
            Commands::Cluster(c) => c.req_packed_command(cmd),
            Commands::Sentinel(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Commands::Single(c) => c.req_packed_commands(cmd, offset, count),
            Commands::Cluster(c) => c.req_packed_commands(cmd, offset, count),
            Commands::Sentinel(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Commands::Single(c) => c.get_db(),
            Commands::Cluster(c) => c.get_db(),
            Commands::Sentinel(_) => 0,
        }
    }
}

/// Where the subscription connection goes.
pub(super) enum Subscriptions {
    Single(Box<redis::Client>),
    /// Any node: a Cluster delivers every publish to every node. Tried in turn.
    Cluster(Vec<redis::Client>, AtomicUsize),
    /// The master the Sentinel names now.
    Sentinel(Arc<tokio::sync::Mutex<SentinelClient>>),
}

impl Subscriptions {
    /// A new subscription connection (the caller bounds the wait).
    pub async fn connect(&self) -> RedisResult<PubSub> {
        match self {
            Subscriptions::Single(client) => client.get_async_pubsub().await,
            Subscriptions::Cluster(nodes, next) => {
                let node = &nodes[next.fetch_add(1, Relaxed) % nodes.len()];
                node.get_async_pubsub().await
            }
            Subscriptions::Sentinel(sentinel) => {
                let master = sentinel.lock().await.async_get_client().await?;
                master.get_async_pubsub().await
            }
        }
    }
}

/// The master of a Sentinel-watched group: a connection to the master the Sentinel names, made
/// again (asking the Sentinel) once a command finds it gone or demoted to a replica (`READONLY`).
#[derive(Clone)]
pub(super) struct SentinelMaster {
    shared: Arc<Shared>,
}

struct Shared {
    sentinel: Arc<tokio::sync::Mutex<SentinelClient>>,
    config: redis::AsyncConnectionConfig,
    current: tokio::sync::RwLock<Option<(u64, MultiplexedConnection)>>,
    generation: AtomicU64,
}

impl SentinelMaster {
    pub async fn connect(
        sentinel: Arc<tokio::sync::Mutex<SentinelClient>>,
        options: RedisOptions,
    ) -> RedisResult<Self> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.command_timeout));
        let master = Self {
            shared: Arc::new(Shared {
                sentinel,
                config,
                current: tokio::sync::RwLock::new(None),
                generation: AtomicU64::new(0),
            }),
        };
        master.connection().await?;
        Ok(master)
    }

    /// The current master connection, made if there is none.
    async fn connection(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(current) = self.shared.current.read().await.as_ref() {
            return Ok(current.clone());
        }
        let mut current = self.shared.current.write().await;
        if let Some(current) = current.as_ref() {
            return Ok(current.clone());
        }
        let client = self.shared.sentinel.lock().await.async_get_client().await?;
        let connection = client
            .get_multiplexed_async_connection_with_config(&self.shared.config)
            .await?;
        let generation = self.shared.generation.fetch_add(1, Relaxed) + 1;
        *current = Some((generation, connection.clone()));
        Ok((generation, connection))
    }

    /// After `error` on the connection of `generation`: forget it if it says the master is gone.
    async fn after(&self, generation: u64, error: &redis::RedisError) {
        let gone = error.is_io_error()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
            || error.is_timeout()
            || matches!(error.code(), Some("READONLY" | "MASTERDOWN" | "LOADING"));
        if gone {
            let mut current = self.shared.current.write().await;
            if current.as_ref().is_some_and(|(g, _)| *g == generation) {
                *current = None;
            }
        }
    }
}

impl ConnectionLike for SentinelMaster {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (generation, mut connection) = self.connection().await?;
            let outcome = connection.req_packed_command(cmd).await;
            if let Err(error) = &outcome {
                self.after(generation, error).await;
            }
            outcome
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (generation, mut connection) = self.connection().await?;
            let outcome = connection.req_packed_commands(cmd, offset, count).await;
            if let Err(error) = &outcome {
                self.after(generation, error).await;
            }
            outcome
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}
