//! `cargo run --release --example soak -- [--requests N] [--processes P] [--concurrency C]`
//!
//! The soak: N requests (default 1,000,000) through `Authenticated<RedisStore>` against the reference
//! server with one-second access tokens and refresh-token rotation, from P processes (default 4) at a
//! total concurrency of C (default 64), all sharing one session in a `redis-server` of its own. It
//! prints the failures (expected: none), the refreshes against the number expected from the elapsed
//! time, the refresh tokens reused (expected: none), and each process's resident memory at each
//! quarter of its share (expected: flat).

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use oauth_sdk::{Client, RedisStore};
use taskboard_server::{Config, DEMO_CLIENT, DEMO_USER, RedisServer};

const LIFETIME: Duration = Duration::from_secs(1);

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn number(name: &str, default: u64) -> Result<u64, Box<dyn std::error::Error>> {
    Ok(arg(name).map(|v| v.parse()).transpose()?.unwrap_or(default))
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--worker") {
        worker().await
    } else {
        coordinator().await
    }
}

async fn coordinator() -> Result<(), Box<dyn std::error::Error>> {
    let (requests, processes, concurrency) = (
        number("--requests", 1_000_000)?,
        number("--processes", 4)?,
        number("--concurrency", 64)?,
    );
    let server = taskboard_server::start(Config {
        access_token_lifetime: LIFETIME,
        ..Config::default()
    })
    .await?;
    let redis = RedisServer::start();
    let client = Client::builder(server.base_url(), DEMO_CLIENT.0)
        .client_secret(DEMO_CLIENT.1.into())
        .build()?;
    client
        .login_password(
            RedisStore::connect(&redis.url(), "soak", "ada").await?,
            DEMO_USER.0,
            DEMO_USER.1.into(),
        )
        .await?;

    println!(
        "soak: {requests} requests, {processes} processes, concurrency {concurrency}, {}s tokens, rotation on",
        LIFETIME.as_secs()
    );
    let started = Instant::now();
    let exe = std::env::current_exe()?;
    let children: Vec<_> = (0..processes)
        .map(|i| {
            let share = requests / processes + u64::from(i < requests % processes);
            Command::new(&exe)
                .args(["--worker", "--api", &server.base_url(), "--redis", &redis.url()])
                .args([
                    "--requests",
                    &share.to_string(),
                    "--concurrency",
                    &(concurrency / processes).max(1).to_string(),
                ])
                .stdout(Stdio::piped())
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    let mut failed = 0;
    for child in children {
        let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await??;
        for line in output.stdout.lines() {
            let line = line?;
            println!("  {line}");
            if let Some(n) = line.split("failed=").nth(1).and_then(|s| s.split_whitespace().next()) {
                failed += n.parse::<u64>()?;
            }
        }
        if !output.status.success() {
            failed += 1;
        }
    }
    let elapsed = started.elapsed();
    let counted = server.counters();
    // A one-second token is renewed at half-life: one refresh per half second of the run.
    let expected = elapsed.as_secs_f64() / (LIFETIME.as_secs_f64() / 2.0);
    println!(
        "elapsed:               {:.1} s ({:.0} requests/s)",
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64()
    );
    println!("failed requests:       {failed} (expected 0)");
    println!(
        "refreshes:             {} (about {expected:.0} expected: one per token, at half-life)",
        counted.refreshes_accepted
    );
    println!("refreshes refused:     {} (expected 0)", counted.refreshes_rejected);
    println!("refresh tokens reused: {} (expected 0)", counted.reused_refresh_tokens);
    println!("API answers 200/403:   {}/{}", counted.api(200), counted.api(403));
    if failed > 0 || counted.reused_refresh_tokens > 0 || counted.refreshes_rejected > 0 {
        return Err("the soak saw failures".into());
    }
    Ok(())
}

async fn worker() -> Result<(), Box<dyn std::error::Error>> {
    let (requests, concurrency) = (number("--requests", 0)?, number("--concurrency", 16)?);
    let client = Client::builder(arg("--api").ok_or("--api")?, DEMO_CLIENT.0)
        .client_secret(DEMO_CLIENT.1.into())
        .build()?;
    let api = client
        .resume(RedisStore::connect(&arg("--redis").ok_or("--redis")?, "soak", "ada").await?)
        .await?;
    let (next, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let memory = Arc::new(std::sync::Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (api, next, failed, memory) = (api.clone(), next.clone(), failed.clone(), memory.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Relaxed);
                    if n >= requests {
                        return;
                    }
                    if let Err(error) = api.get_me().await
                        && failed.fetch_add(1, Relaxed) < 5
                    {
                        eprintln!("request failed: {error}");
                    }
                    if requests >= 4 && (n + 1) % (requests / 4) == 0 {
                        memory.lock().unwrap_or_else(|p| p.into_inner()).push(rss_kib());
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await?;
    }
    let metrics = api.metrics();
    let memory: Vec<String> = memory
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|k| format!("{}", k / 1024))
        .collect();
    println!(
        "process {}: requests={requests} failed={} refreshed={} adopted={} resent={} rss_mib_at_quarters=[{}]",
        std::process::id(),
        failed.load(Relaxed),
        metrics.refreshes,
        metrics.adopted_from_store,
        metrics.resent,
        memory.join(", ")
    );
    Ok(())
}
