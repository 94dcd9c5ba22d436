//! `cargo run --release --example renewal_cost -- [--alone N] [--rate R] [--seconds S]`
//!
//! What a renewal costs next to a call, against the reference server (a child process) and a
//! `redis-server` of its own, with sessions in one `RedisSessions` handle:
//!
//! 1. alone: N calls (`GET /v1/me`, default 4,000), then N renewals (`refresh()`), by 64 workers on
//!    64 sessions, each with the CPU time the client and the server spent per operation;
//! 2. under load: 64 workers calling for S seconds (default 5), in six rounds that alternate between
//!    the calls alone and the calls beside R renewals a second (default 770, what 10,000 sessions with
//!    30-second tokens make in `many_sessions`) on 200 other sessions: each round's calls a second,
//!    and the CPU of the client, the server, Redis, and the machine's idle time.
//!
//! CPU times come from `/proc` (10 ms ticks), so they are only as fine as the counts allow.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

mod common;

use common::{ServerProcess, arg, is_server, serve, ticks};
use oauth_sdk::{Client, RedisSessions};
use taskboard_server::{DEMO_CLIENT, DEMO_USER, RedisServer};

/// The machine's idle ticks.
fn idle_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    cpu.get(3).copied().unwrap_or(0) + cpu.get(4).copied().unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Runtime::new()?;
    if is_server() {
        return runtime.block_on(serve());
    }
    runtime.block_on(measure())
}

async fn measure() -> Result<(), Box<dyn std::error::Error>> {
    let rate = arg("--rate", 770)?.max(1);
    let seconds = Duration::from_secs(arg("--seconds", 5)?);
    let redis = RedisServer::start();
    let (server, base_url) = ServerProcess::start(3600)?;
    let client = Client::builder(&base_url, DEMO_CLIENT.0)
        .client_secret(DEMO_CLIENT.1.into())
        .build()?;
    let handle = RedisSessions::connect(&redis.url(), "renewal-cost").await?;
    let login = |key: String| {
        let (client, store) = (client.clone(), handle.session(&key));
        async move { client.login_password(store, DEMO_USER.0, DEMO_USER.1.into()).await }
    };
    let mut callers = Vec::new();
    for i in 0..64 {
        callers.push(login(format!("caller-{i}")).await?);
    }
    let mut renewers = Vec::new();
    for i in 0..200 {
        renewers.push(login(format!("renewer-{i}")).await?);
    }
    let (me, server_pid) = (std::process::id(), server.pid());

    // Alone.
    let alone = arg("--alone", 4_000)?.max(64);
    for renew in [false, true] {
        let (client_before, server_before, started) = (ticks(me), ticks(server_pid), Instant::now());
        let mut workers = Vec::new();
        for api in callers.clone() {
            workers.push(tokio::spawn(async move {
                for _ in 0..alone / 64 {
                    let done = if renew {
                        api.refresh().await.is_ok()
                    } else {
                        api.get_me().await.is_ok()
                    };
                    if !done {
                        return false;
                    }
                }
                true
            }));
        }
        for worker in workers {
            if !worker.await? {
                return Err("a call or renewal failed".into());
            }
        }
        let per = |ticks: u64| ticks as f64 * 10_000.0 / (alone / 64 * 64) as f64;
        println!(
            "alone: {} {}s in {:.2} s; CPU per {}: client {:.0} µs, server {:.0} µs",
            alone / 64 * 64,
            if renew { "renewal" } else { "call" },
            started.elapsed().as_secs_f64(),
            if renew { "renewal" } else { "call" },
            per(ticks(me) - client_before),
            per(ticks(server_pid) - server_before),
        );
    }

    // Under load.
    let redis_pid = redis.pid().ok_or("redis-server is not running")?;
    let mut rates = [Vec::new(), Vec::new()];
    for round in 0..6 {
        let renewing = round % 2 == 1;
        let stop = Arc::new(AtomicBool::new(false));
        let mut renewals = Vec::new();
        if renewing {
            let every = Duration::from_secs_f64(renewers.len() as f64 / rate as f64);
            let count = renewers.len() as f64;
            for (i, api) in renewers.clone().into_iter().enumerate() {
                let stop = stop.clone();
                // Staggered, so that the renewals spread evenly over each period.
                let first = tokio::time::Instant::now() + every.mul_f64(i as f64 / count);
                renewals.push(tokio::spawn(async move {
                    let mut tick = tokio::time::interval_at(first, every);
                    let mut done = 0u64;
                    while !stop.load(Relaxed) {
                        tick.tick().await;
                        if api.refresh().await.is_ok() {
                            done += 1;
                        }
                    }
                    done
                }));
            }
        }
        let calls = Arc::new(AtomicU64::new(0));
        let before = (ticks(me), ticks(server_pid), ticks(redis_pid), idle_ticks());
        let started = Instant::now();
        let mut workers = Vec::new();
        for api in callers.clone() {
            let calls = calls.clone();
            workers.push(tokio::spawn(async move {
                while started.elapsed() < seconds {
                    if api.get_me().await.is_ok() {
                        calls.fetch_add(1, Relaxed);
                    }
                }
            }));
        }
        for worker in workers {
            worker.await?;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let after = (ticks(me), ticks(server_pid), ticks(redis_pid), idle_ticks());
        stop.store(true, Relaxed);
        let mut renewed = 0;
        for renewal in renewals {
            renewed += renewal.await?;
        }
        let cores = |a: u64, b: u64| (b - a) as f64 / 100.0 / elapsed;
        let rate = calls.load(Relaxed) as f64 / elapsed;
        rates[usize::from(renewing)].push(rate);
        println!(
            "round {round}: {rate:.0} calls/s, {:.0} renewals/s; cores: client {:.2}, server {:.2}, redis {:.2}, idle {:.2}",
            renewed as f64 / elapsed,
            cores(before.0, after.0),
            cores(before.1, after.1),
            cores(before.2, after.2),
            cores(before.3, after.3),
        );
    }
    let ratios: Vec<f64> = rates[1]
        .iter()
        .zip(&rates[0])
        .map(|(with, without)| with / without)
        .collect();
    println!("calls/s beside renewals against calls alone, per pair of rounds: {ratios:.3?}");
    Ok(())
}
