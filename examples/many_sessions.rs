//! `cargo run --release --example many_sessions -- [--sessions N] [--seconds S] [--concurrency C] [--token-seconds T] [--logins-over L] [--memory-store]`
//!
//! Thousands of sessions in one process: N sessions (default 10,000), each a user logged in through a
//! `SessionRegistry` whose stores come from one `RedisSessions` handle (or, with `--memory-store`,
//! each in a `MemoryStore` of its own, to tell what the shared store costs), against the reference server
//! (in a child process, so its memory is not counted) with access tokens of T seconds (default 30)
//! and refresh-token rotation, and a `redis-server` of its own. Logins are spread over L seconds
//! (default 10), so renewals spread over time too: a token is renewed 30 s before it expires (half-way
//! through its life if it lives less than a minute), so with L at least that renewal age, the
//! sessions renew at the steady rate N / (T - 30 s) (`--token-seconds 300 --logins-over 270`: five-
//! minute tokens, 37 renewals a second for 10,000 sessions). Then C workers (default 64) call
//! `GET /v1/me` as random users for S seconds in all (default 40), and the same load on one session
//! (the baseline) for a quarter of that, alternating in eight rounds after an uncounted one (see
//! `BASELINE_SHARE` for why the baseline's turns are short). It prints:
//!
//! - the Redis connections open (target: at most 4, whatever N);
//! - resident memory per idle session (target: at most 4 KiB);
//! - renewal latency, p50 and p99: from the call that found its token due to the renewed token in
//!   memory (the SDK's `renewal` span; calls go on with the old token meanwhile, still good);
//! - the throughput with N sessions against one session in the same run, the median of the rounds'
//!   ratios (target: at least 0.9);
//! - where the difference goes: the CPU time per call of this process, the server and Redis, under
//!   each load (from `/proc`, in 10 ms ticks; the machine is shared by all three);
//!
//! and ends with one line: `sessions=N redis_connections=M kib_per_session=K throughput_ratio=R`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

mod common;

use common::{ServerProcess, arg, flag, is_server, serve, ticks};
use oauth_sdk::{Client, MemoryStore, RedisSessions, SessionRegistry, TokenStore};
use taskboard_server::{DEMO_CLIENT, DEMO_USER, RedisServer};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4)
}

/// The duration of every renewal: the SDK's `renewal` spans, from start to close. Filtered to that
/// one span, so that no other span or event of the SDK is recorded.
#[derive(Clone, Default)]
struct RenewalTimes(Arc<std::sync::Mutex<Vec<Duration>>>);

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for RenewalTimes {
    fn on_new_span(
        &self,
        _: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Instant::now());
        }
    }

    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let started = ctx
            .span(&id)
            .and_then(|span| span.extensions().get::<Instant>().copied());
        if let Some(started) = started {
            self.0.lock().unwrap().push(started.elapsed());
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Runtime::new()?;
    if is_server() {
        return runtime.block_on(serve());
    }
    runtime.block_on(measure())
}

/// Calls and the latencies of calls that renewed a token, from the workers.
#[derive(Default)]
struct Load {
    calls: AtomicU64,
    failures: AtomicU64,
}

/// How many times the load on N sessions and the load on one alternate.
const ROUNDS: u32 = 8;
/// How many times longer each round's load on N sessions runs than its load on one. Renewals follow
/// the clock, not the calls: a session whose token comes due while the baseline runs renews in the
/// next load on N sessions, which so carries the renewals of both loads' time. With baselines a
/// quarter as long, that is 1.25 times the steady rate (twice, with equal turns), and no session
/// sits uncalled long enough for its calls to wait for a renewal (a quarter of its renewal window),
/// which in a service called steadily none would.
const BASELINE_SHARE: u32 = 4;
/// Each load's first, uncounted round.
const WARM_UP: Duration = Duration::from_secs(5);

async fn measure() -> Result<(), Box<dyn std::error::Error>> {
    let renewal_times = RenewalTimes::default();
    let only_renewals = tracing_subscriber::filter::filter_fn(|meta| meta.is_span() && meta.name() == "renewal");
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(renewal_times.clone().with_filter(only_renewals)),
    )?;
    let sessions = arg("--sessions", 10_000)?;
    let seconds = arg("--seconds", 40)?;
    let concurrency = arg("--concurrency", 64)?;
    let redis = RedisServer::start();
    let token_seconds = arg("--token-seconds", 30)?;
    let logins_over = Duration::from_secs(arg("--logins-over", 10)?);
    let (server, base_url) = ServerProcess::start(token_seconds)?;
    let client = Client::builder(&base_url, DEMO_CLIENT.0)
        .client_secret(DEMO_CLIENT.1.into())
        .build()?;
    let run = Run {
        sessions,
        seconds,
        concurrency,
        token_seconds,
        logins_over,
        base_url,
        renewal_times,
        pids: [std::process::id(), server.pid(), redis.pid().unwrap_or(0)],
    };
    if flag("--memory-store") {
        let registry = SessionRegistry::new(client, |_: &str| MemoryStore::new());
        return run.measure(Arc::new(registry), &redis).await;
    }
    let handle = RedisSessions::connect(&redis.url(), "bench").await?;
    let registry = SessionRegistry::new(client, move |user: &str| handle.session(user));
    run.measure(Arc::new(registry), &redis).await
}

/// What a run is asked to do, and how it measures.
struct Run {
    sessions: u64,
    seconds: u64,
    concurrency: u64,
    token_seconds: u64,
    logins_over: Duration,
    base_url: String,
    renewal_times: RenewalTimes,
    /// This process, the server's and Redis's, whose CPU time is read.
    pids: [u32; 3],
}

impl Run {
    async fn measure<S: TokenStore>(
        self,
        registry: Arc<SessionRegistry<Client, S>>,
        redis: &RedisServer,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let Run {
            sessions,
            seconds,
            concurrency,
            token_seconds,
            logins_over,
            base_url,
            renewal_times,
            pids,
        } = self;

        // Warm up what every session shares (the HTTP connection pool, the Redis connections), then
        // measure memory around the sessions alone.
        let warm = registry
            .login("warm-up", |c, s| c.login_password(s, DEMO_USER.0, DEMO_USER.1.into()))
            .await?;
        warm.get_me().await?;
        let before = rss_kib();
        let started = Instant::now();
        let next = Arc::new(AtomicU64::new(0));
        let mut logins = Vec::new();
        for _ in 0..concurrency {
            let (registry, next) = (registry.clone(), next.clone());
            logins.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Relaxed);
                    if i >= sessions {
                        return Ok::<_, oauth_sdk::Error>(());
                    }
                    // Spread over the login period, so that the tokens expire (and are renewed) spread out.
                    let due = logins_over.mul_f64(i as f64 / sessions as f64);
                    tokio::time::sleep_until((started + due).into()).await;
                    registry
                        .login(&format!("user-{i}"), |c, s| {
                            c.login_password(s, DEMO_USER.0, DEMO_USER.1.into())
                        })
                        .await?;
                }
            }));
        }
        for login in logins {
            login.await??;
        }
        let after = rss_kib();
        let kib_per_session = after.saturating_sub(before) as f64 / sessions as f64;
        let redis_connections = redis_connections(redis).await?;
        println!("access tokens live {token_seconds} s; {concurrency} workers; {seconds} s of load per run");
        println!(
            "{sessions} sessions logged in in {:.1} s; resident memory {before} KiB before, {after} KiB after: \
         {kib_per_session:.2} KiB per session; Redis connections: {redis_connections}",
            started.elapsed().as_secs_f64()
        );

        // The two loads alternate in rounds, and the ratio is the median of each round's, so that a
        // shared machine's drift hits both alike. A first round of a few seconds each, not counted,
        // warms what sat idle since the logins.
        renewal_times.0.lock().unwrap().clear();
        let (many, one, ratios) = rounds(
            concurrency,
            &pids,
            Duration::from_secs(seconds),
            {
                let registry = registry.clone();
                move |n| {
                    let registry = registry.clone();
                    async move {
                        // As a handler has its user's id: no allocation per call.
                        let mut key = [0u8; 24];
                        match registry.get(user_key(n % sessions, &mut key)).await {
                            Ok(api) => api.get_me().await.is_ok(),
                            Err(_) => false,
                        }
                    }
                }
            },
            {
                let warm = warm.clone();
                move |_| {
                    let warm = warm.clone();
                    async move { warm.get_me().await.is_ok() }
                }
            },
        )
        .await;
        let mut latencies = std::mem::take(&mut *renewal_times.0.lock().unwrap());
        let ratio = median(&ratios);
        let (many_rate, one_rate) = (many.rate, one.rate);
        latencies.sort();
        let percentile = |p: f64| {
            latencies
                .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        println!(
            "{} sessions: {many_rate:.0} calls/s ({} failed); one session: {one_rate:.0} calls/s ({} failed); \
         ratio per round {ratios:.3?}",
            sessions, many.failures, one.failures
        );
        println!(
            "CPU per call: {sessions} sessions: {}; one session: {}",
            many.cpu_per_call(),
            one.cpu_per_call()
        );
        println!(
            "renewals: {} ({:.0} a second of load on {sessions} sessions; p50 {:.1} ms, p99 {:.1} ms); registry {:?}",
            latencies.len(),
            latencies.len() as f64 / (seconds as f64 + WARM_UP.as_secs_f64()),
            percentile(0.5),
            percentile(0.99),
            registry.metrics()
        );
        // What the server and the load themselves make of many tokens against one, without the SDK:
        // plain reqwest with each session's access token, while those outlive the run.
        if token_seconds >= 600 {
            let http = reqwest::Client::new();
            let url = format!("{base_url}/v1/me");
            let mut headers = Vec::new();
            for i in 0..sessions {
                let api = registry.get(&format!("user-{i}")).await?;
                if let oauth_sdk::SessionState::Active(tokens) = &*api.session_changes().borrow() {
                    let bearer = format!(
                        "Bearer {}",
                        oauth_sdk::ExposeSecret::expose_secret(tokens.access_token())
                    );
                    headers.push(reqwest::header::HeaderValue::try_from(bearer)?);
                }
            }
            let headers = Arc::new(headers);
            let raw = |pick: fn(u64, usize) -> usize| {
                let (http, url, headers) = (http.clone(), url.clone(), headers.clone());
                move |n: u64| {
                    let request = http
                        .get(&url)
                        .header(reqwest::header::AUTHORIZATION, &headers[pick(n, headers.len())]);
                    async move { request.send().await.is_ok_and(|r| r.status().is_success()) }
                }
            };
            let (raw_many, raw_one, raw_ratios) = rounds(
                concurrency,
                &pids,
                Duration::from_secs(seconds),
                raw(|n, len| (n % len as u64) as usize),
                raw(|_, _| 0),
            )
            .await;
            println!(
                "plain reqwest, {} tokens: {:.0} calls/s ({} failed); one token: {:.0} calls/s ({} failed); ratio per round \
             {raw_ratios:.3?}, median {:.3}",
                headers.len(),
                raw_many.rate,
                raw_many.failures,
                raw_one.rate,
                raw_one.failures,
                median(&raw_ratios)
            );
            println!(
                "plain reqwest, CPU per call: {} tokens: {}; one token: {}",
                headers.len(),
                raw_many.cpu_per_call(),
                raw_one.cpu_per_call()
            );
        }
        let (mut ahead, mut late, mut rejected, mut refreshes, mut adopted, mut resent) = (0, 0, 0, 0, 0, 0);
        for i in 0..sessions {
            let m = registry.get(&format!("user-{i}")).await?.metrics();
            ahead += m.renewals_ahead_of_expiry;
            late += m.renewals_after_expiry;
            rejected += m.renewals_after_rejection;
            refreshes += m.refreshes;
            adopted += m.adopted_from_store;
            resent += m.resent;
        }
        println!(
            "over all sessions: {ahead} renewals ahead of expiry, {late} after expiry, {rejected} after a rejection; \
             {refreshes} refreshes, {adopted} adopted from the store, {resent} requests resent"
        );
        println!(
            "sessions={sessions} redis_connections={redis_connections} kib_per_session={kib_per_session:.2} throughput_ratio={ratio:.3}"
        );
        Ok(())
    }
}

/// `user-{i}`, written into `buffer`.
fn user_key(i: u64, buffer: &mut [u8; 24]) -> &str {
    use std::io::Write;
    let mut cursor = std::io::Cursor::new(&mut buffer[..]);
    let _ = write!(cursor, "user-{i}");
    let len = cursor.position() as usize;
    std::str::from_utf8(&buffer[..len]).unwrap_or_default()
}

#[derive(Default)]
struct Outcome {
    rate: f64,
    failures: u64,
    calls: u64,
    /// The CPU ticks each of the measured processes used meanwhile.
    ticks: [u64; 3],
}

impl Outcome {
    /// Add one of `rounds` rounds: the mean rate, the total failures, calls and CPU ticks.
    fn add(&mut self, round: &Outcome, rounds: u32) {
        self.rate += round.rate / f64::from(rounds);
        self.failures += round.failures;
        self.calls += round.calls;
        for (total, ticks) in self.ticks.iter_mut().zip(round.ticks) {
            *total += ticks;
        }
    }

    /// CPU time per call of each measured process, in microseconds.
    fn cpu_per_call(&self) -> String {
        let per = |ticks: u64| ticks as f64 * 10_000.0 / self.calls.max(1) as f64;
        format!(
            "this process {:.1}, server {:.1}, Redis {:.1} µs",
            per(self.ticks[0]),
            per(self.ticks[1]),
            per(self.ticks[2])
        )
    }
}

/// The median of `values`.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    (sorted[sorted.len() / 2] + sorted[(sorted.len() - 1) / 2]) / 2.0
}

/// `many` and `one` in turn, `many` for `seconds` in all and `one` for a `BASELINE_SHARE`th of it, over
/// an uncounted warm-up round and `ROUNDS` counted ones: their mean outcomes, and each round's ratio
/// of rates.
async fn rounds<F, Fut, G, Gut>(
    concurrency: u64,
    pids: &[u32; 3],
    seconds: Duration,
    many: F,
    one: G,
) -> (Outcome, Outcome, Vec<f64>)
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
    G: Fn(u64) -> Gut + Clone + Send + 'static,
    Gut: std::future::Future<Output = bool> + Send,
{
    let (mut many_total, mut one_total, mut ratios) = (Outcome::default(), Outcome::default(), Vec::new());
    for round in 0..=ROUNDS {
        let phase = if round == 0 { WARM_UP } else { seconds / ROUNDS };
        let a = load(concurrency, pids, phase, many.clone()).await;
        let b = load(concurrency, pids, phase / BASELINE_SHARE, one.clone()).await;
        if round > 0 {
            ratios.push(a.rate / b.rate);
            many_total.add(&a, ROUNDS);
            one_total.add(&b, ROUNDS);
        }
    }
    (many_total, one_total, ratios)
}

/// `concurrency` workers making the call `call(n)` makes for the n-th, for `duration`; the CPU time
/// of the processes `pids` meanwhile.
async fn load<F, Fut>(concurrency: u64, pids: &[u32; 3], duration: Duration, call: F) -> Outcome
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let load = Arc::new(Load::default());
    let before = pids.map(ticks);
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..concurrency {
        let (load, call) = (load.clone(), call.clone());
        workers.push(tokio::spawn(async move {
            // Random users, a sequence of each worker's own (xorshift): workers that followed one
            // sequence would queue behind one renewal and go on in a convoy.
            let mut n = worker.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            while started.elapsed() < duration {
                n ^= n << 13;
                n ^= n >> 7;
                n ^= n << 17;
                if !call(n).await {
                    load.failures.fetch_add(1, Relaxed);
                }
                load.calls.fetch_add(1, Relaxed);
            }
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = pids.map(ticks);
    let calls = load.calls.load(Relaxed);
    Outcome {
        rate: calls as f64 / elapsed,
        failures: load.failures.load(Relaxed),
        calls,
        ticks: [0, 1, 2].map(|i| after[i].saturating_sub(before[i])),
    }
}

/// The clients Redis has connected, but the one asking.
async fn redis_connections(redis: &RedisServer) -> Result<usize, Box<dyn std::error::Error>> {
    let mut connection = oauth_sdk::redis::Client::open(redis.url())?
        .get_multiplexed_async_connection()
        .await?;
    let list: String = oauth_sdk::redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut connection)
        .await?;
    Ok(list.lines().count() - 1)
}
