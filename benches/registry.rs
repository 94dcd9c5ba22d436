//! `cargo bench --bench registry`: what a `SessionRegistry` at its bound pays to let a session go.
//!
//! For each size N, a registry holding N sessions (each a `MemoryStore` session started from tokens,
//! no server) takes 20,000 more logins, and the time per login is measured twice in the same run:
//! bounded at N, where every login lets the least recently used session go, and unbounded, where
//! none is let go (the baseline). Between the rounds, a random tenth of the held sessions are used
//! through `get`, so that eviction has uses to catch up on. A cost that grew with N (a scan of every
//! session) would show as a ratio growing tenfold from one size to the next; a flat ratio is the
//! O(log n) heap. For scale, the last column times what eviction did before the heap: one pass over
//! N entries' keys and atomic last uses for the oldest, on a map of the same shape.
//!
//! First, the read path: the time per `get` of a session picked at random among N held, against
//! `get` of the one session of a registry that holds one (each an owned handle, dropped at once).

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime};

use oauth_sdk::{Client, Grant, MemoryStore, SessionRegistry, TokenSet};

const MORE: usize = 20_000;

fn tokens(i: usize) -> TokenSet {
    TokenSet::new(format!("access-{i}").into(), Grant::External, SystemTime::now())
        .with_refresh_token(format!("refresh-{i}").into())
        .with_lifetime(Duration::from_secs(3600))
}

/// The time per login of `MORE` logins into a registry holding `held` sessions, bounded at `held`
/// or not.
async fn per_login(client: &Client, held: usize, bounded: bool) -> Duration {
    let registry = SessionRegistry::new(client.clone(), |_: &str| MemoryStore::new());
    let registry = if bounded { registry.max_sessions(held) } else { registry };
    let login = async |i: usize| {
        registry
            .login(&format!("user-{i}"), |client, store| {
                client.start_session(store, tokens(i))
            })
            .await
            .expect("a session from tokens")
    };
    for i in 0..held {
        login(i).await;
    }
    // Uses on the read path, which eviction learns of lazily.
    let mut n: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..held / 10 {
        n ^= n << 13;
        n ^= n >> 7;
        n ^= n << 17;
        let _ = registry.get(&format!("user-{}", n % held as u64)).await;
    }
    let started = Instant::now();
    for i in held..held + MORE {
        login(i).await;
    }
    let took = started.elapsed() / MORE as u32;
    let metrics = registry.metrics();
    assert_eq!(metrics.evictions, if bounded { MORE as u64 } else { 0 }, "{metrics:?}");
    took
}

/// The time per `get` of a session held among `held`, picked at random, against `get` of one held
/// alone: what finding and handing out a session costs per call as their number grows.
async fn per_get(client: &Client, held: usize) -> Duration {
    let registry = SessionRegistry::new(client.clone(), |_: &str| MemoryStore::new());
    for i in 0..held {
        registry
            .login(&format!("user-{i}"), |client, store| {
                client.start_session(store, tokens(i))
            })
            .await
            .expect("a session from tokens");
    }
    let gets = 400_000;
    let mut n: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut key = String::with_capacity(24);
    let started = Instant::now();
    for _ in 0..gets {
        n ^= n << 13;
        n ^= n >> 7;
        n ^= n << 17;
        key.clear();
        let _ = write!(key, "user-{}", n % held as u64);
        std::hint::black_box(registry.get(&key).await.expect("a held session"));
    }
    started.elapsed() / gets
}

/// One pass for the oldest over `held` entries shaped like the registry's (key, last use).
fn scan(held: usize) -> Duration {
    let map: HashMap<String, AtomicU64> = (0..held)
        .map(|i| {
            (
                format!("user-{i}"),
                AtomicU64::new((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            )
        })
        .collect();
    let rounds = 200;
    let started = Instant::now();
    for _ in 0..rounds {
        let oldest = map
            .iter()
            .min_by_key(|(_, used)| used.load(Relaxed))
            .map(|(key, _)| key);
        std::hint::black_box(oldest);
    }
    started.elapsed() / rounds
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let client = Client::builder("http://127.0.0.1:9/", "bench")
            .build()
            .expect("a client");
        let one = per_get(&client, 1).await;
        for held in [10_000, 100_000] {
            let random = per_get(&client, held).await;
            println!(
                "get among {held}: {:.0} ns; of one held alone: {:.0} ns",
                random.as_secs_f64() * 1e9,
                one.as_secs_f64() * 1e9
            );
        }
        println!();
        println!("| sessions held | login, unbounded | login, evicting one | ratio | one scan of every entry |");
        println!("| ---: | ---: | ---: | ---: | ---: |");
        for held in [10_000, 100_000] {
            let unbounded = per_login(&client, held, false).await;
            let bounded = per_login(&client, held, true).await;
            println!(
                "| {held} | {:.2} µs | {:.2} µs | {:.2} | {:.0} µs |",
                unbounded.as_secs_f64() * 1e6,
                bounded.as_secs_f64() * 1e6,
                bounded.as_secs_f64() / unbounded.as_secs_f64(),
                scan(held).as_secs_f64() * 1e6
            );
        }
    });
}
