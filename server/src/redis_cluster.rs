//! Redis topologies of a test's own, from `redis-server` processes on free loopback ports: a Cluster
//! of three masters with a replica each, and a master with a replica behind a Sentinel. Commands go
//! through `redis-cli`, which ships with Redis. Each fails loudly when a binary is missing.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::RedisServer;

/// Run `redis-cli -p PORT ARGS...` and return what it printed.
fn cli(port: u16, args: &[&str]) -> String {
    cli_as(None, port, args)
}

/// [`cli`], with a password if the server wants one.
fn cli_as(password: Option<&str>, port: u16, args: &[&str]) -> String {
    let mut command = Command::new("redis-cli");
    command.args(["-h", "127.0.0.1", "-p", &port.to_string()]);
    if let Some(password) = password {
        command.args(["--no-auth-warning", "-a", password]);
    }
    let output = command
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run redis-cli ({e}): install Redis 7 so that `redis-cli` is on PATH"));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Wait, for at most 60 s, until `done` holds.
fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "{what} did not happen within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{name}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

/// A Redis Cluster: three masters, each with one replica.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    dir: PathBuf,
}

impl RedisCluster {
    /// Start six nodes and join them into a cluster of three masters with a replica each; returns
    /// once every node sees the cluster as `ok`.
    pub fn start() -> Self {
        let dir = scratch("redis-cluster");
        let config = format!("{}/nodes-{{port}}.conf", dir.display());
        let nodes: Vec<RedisServer> = (0..6)
            .map(|_| {
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &config,
                    "--cluster-node-timeout",
                    "3000",
                ])
            })
            .collect();
        let addresses: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())).collect();
        let mut create = vec!["--cluster", "create"];
        create.extend(addresses.iter().map(String::as_str));
        create.extend(["--cluster-replicas", "1", "--cluster-yes"]);
        let output = cli(nodes[0].port(), &create);
        assert!(output.contains("[OK]"), "the cluster was not created:\n{output}");
        let cluster = Self { nodes, dir };
        cluster.until_ok();
        cluster
    }

    fn until_ok(&self) {
        for node in &self.nodes {
            until("the cluster's state ok", || {
                cli(node.port(), &["CLUSTER", "INFO"]).contains("cluster_state:ok")
            });
        }
    }

    /// `redis://127.0.0.1:PORT/` of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Fail the master serving `key` over to its replica (`CLUSTER FAILOVER`: the replica takes over
    /// once it has caught up, so no write is lost), and wait until the cluster agrees.
    pub fn fail_over(&self, key: &str) {
        let slot = self.slot_of(key);
        let master = self.master_of(&slot);
        let replica = self
            .nodes
            .iter()
            .find(|n| {
                let role = cli(n.port(), &["ROLE"]);
                role.starts_with("slave") && role.lines().nth(2).map(str::trim) == Some(master.to_string().as_str())
            })
            .expect("a replica of the master")
            .port();
        let answer = cli(replica, &["CLUSTER", "FAILOVER"]);
        assert!(answer.contains("OK"), "CLUSTER FAILOVER: {answer}");
        until("the failover", || self.master_of(&slot) == replica);
        self.until_ok();
    }

    /// Crash the master serving `key` (SIGKILL: no handover, no last sync with its replica), and
    /// wait until its replica, elected once the others have marked the master failed (after the
    /// `cluster-node-timeout` of 3 s), serves the slot and every live node sees the cluster as `ok`.
    pub fn crash_master_of(&self, key: &str) {
        let slot = self.slot_of(key);
        let master = self.master_of(&slot);
        let crashed = self
            .nodes
            .iter()
            .find(|n| n.port() == master)
            .expect("the master is a node of the cluster");
        crashed.crash();
        let witness = self.nodes.iter().find(|n| n.port() != master).expect("a live node");
        until("the replica's takeover", || {
            let now = self.master_of_as_seen_by(witness.port(), &slot);
            now != 0 && now != master
        });
        for node in self.nodes.iter().filter(|n| n.port() != master) {
            until("the cluster's state ok", || {
                cli(node.port(), &["CLUSTER", "INFO"]).contains("cluster_state:ok")
            });
        }
    }

    fn slot_of(&self, key: &str) -> String {
        cli(self.nodes[0].port(), &["CLUSTER", "KEYSLOT", key])
            .trim()
            .to_owned()
    }

    /// The port of the master serving `slot`, as the first node sees it.
    fn master_of(&self, slot: &str) -> u16 {
        self.master_of_as_seen_by(self.nodes[0].port(), slot)
    }

    /// The port of the master serving `slot` that is not marked failed, as node `port` sees it; 0
    /// if none.
    fn master_of_as_seen_by(&self, port: u16, slot: &str) -> u16 {
        let slot: u16 = slot.parse().expect("a slot number");
        let nodes = cli(port, &["CLUSTER", "NODES"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| match range.split_once('-') {
                Some((from, to)) => {
                    from.parse::<u16>().is_ok_and(|f| f <= slot) && to.parse::<u16>().is_ok_and(|t| slot <= t)
                }
                None => range.parse::<u16>().is_ok_and(|s| s == slot),
            });
            if serves {
                let port = fields[1].split(['@', ':']).nth(1).and_then(|p| p.parse().ok());
                return port.expect("a node address");
            }
        }
        0
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A master and its replica, watched by one Sentinel (quorum 1) as `mymaster`.
pub struct RedisSentinel {
    master: RedisServer,
    replica: RedisServer,
    sentinel: Child,
    sentinel_port: u16,
    dir: PathBuf,
    /// The master's and the replica's password, if they want one (the Sentinel wants none).
    password: Option<String>,
}

/// The name the Sentinel knows the master by.
pub const SENTINEL_MASTER: &str = "mymaster";

impl RedisSentinel {
    /// Start the master, the replica and the Sentinel; returns once the Sentinel knows both.
    pub fn start() -> Self {
        Self::start_with_password(None)
    }

    /// [`start`](Self::start), with the master and the replica wanting `password` (`requirepass`);
    /// the Sentinel knows it (`auth-pass`), and clients must bring it.
    pub fn start_with_password(password: Option<&str>) -> Self {
        let mut auth: Vec<&str> = Vec::new();
        if let Some(password) = password {
            auth.extend(["--requirepass", password, "--masterauth", password]);
        }
        let master = RedisServer::start_with(&auth);
        let master_port = master.port().to_string();
        let mut replica_args = vec!["--replicaof", "127.0.0.1", &master_port];
        replica_args.extend(&auth);
        let replica = RedisServer::start_with(&replica_args);
        until("the replica's sync", || {
            cli_as(password, replica.port(), &["INFO", "replication"]).contains("master_link_status:up")
        });
        let dir = scratch("redis-sentinel");
        let sentinel_port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let config = dir.join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "port {sentinel_port}\nbind 127.0.0.1\ndir {}\nsentinel monitor {SENTINEL_MASTER} 127.0.0.1 {} 1\n\
                 sentinel down-after-milliseconds {SENTINEL_MASTER} 2000\nsentinel failover-timeout {SENTINEL_MASTER} 10000\n{}",
                dir.display(),
                master.port(),
                password.map_or_else(String::new, |p| format!("sentinel auth-pass {SENTINEL_MASTER} {p}\n"))
            ),
        )
        .expect("write sentinel.conf");
        let sentinel = Command::new("redis-server")
            .arg(&config)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server --sentinel ({e}): install Redis 7"));
        let topology = Self {
            master,
            replica,
            sentinel,
            sentinel_port,
            dir,
            password: password.map(str::to_owned),
        };
        until("the Sentinel's view of the replica", || {
            cli(sentinel_port, &["SENTINEL", "REPLICAS", SENTINEL_MASTER])
                .contains(&topology.replica.port().to_string())
        });
        topology
    }

    /// `redis://127.0.0.1:PORT/` of the Sentinel.
    pub fn sentinel_url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.sentinel_port)
    }

    /// The port of the master as the Sentinel names it now.
    pub fn master_port(&self) -> u16 {
        let answer = cli(
            self.sentinel_port,
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_MASTER],
        );
        answer.lines().nth(1).and_then(|p| p.trim().parse().ok()).unwrap_or(0)
    }

    /// Fail the master over to the replica (`SENTINEL FAILOVER`), and wait until the Sentinel
    /// names the replica as master and it takes writes.
    pub fn fail_over(&self) {
        let before = self.master_port();
        let answer = cli(self.sentinel_port, &["SENTINEL", "FAILOVER", SENTINEL_MASTER]);
        assert!(answer.contains("OK"), "SENTINEL FAILOVER: {answer}");
        until("the Sentinel's failover", || self.promoted_other_than(before));
    }

    /// Crash the master (SIGKILL: no handover, no last sync with the replica), and wait until the
    /// Sentinel, once it has found the master down (after `down-after-milliseconds`, 2 s), names the
    /// replica as master and it takes writes.
    pub fn crash_master(&self) {
        let before = self.master_port();
        [&self.master, &self.replica]
            .into_iter()
            .find(|n| n.port() == before)
            .expect("the Sentinel names one of the two as master")
            .crash();
        until("the Sentinel's failover after the crash", || {
            self.promoted_other_than(before)
        });
    }

    /// Whether the Sentinel names a master other than `before`, and it says it is one.
    fn promoted_other_than(&self, before: u16) -> bool {
        let now = self.master_port();
        now != before && now != 0 && cli_as(self.password.as_deref(), now, &["ROLE"]).starts_with("master")
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        let _ = self.sentinel.kill();
        let _ = self.sentinel.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
