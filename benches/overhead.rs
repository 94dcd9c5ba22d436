//! `cargo bench --bench overhead`: what the SDK costs over raw reqwest, and the refresh storm.
//!
//! Against the reference server on loopback (its own runtime thread), in one run:
//! - `GET /v1/me` throughput and p50/p99 latency at concurrency 1, 32 and 256 for raw reqwest with a
//!   fixed bearer header (the limit), `Authenticated<MemoryStore>`, and the seed-style client (the Axios
//!   pattern in Rust: read and parse the tokens from Redis before every request, refresh on 403 without
//!   single flight). Cases alternate within each round; ratios are paired per round, then the median is
//!   taken, so drift on a shared machine hits every case alike.
//! - a refresh storm: 1,000 concurrent requests on an expired (or revoked) token, with rotation and
//!   reuse detection on.
//!
//! Writes `BENCHMARKS.md` and `benches/ratios.svg`. `BENCH_QUICK=1` runs a short smoke version and
//! writes nothing. Needs `redis-server` on PATH (it starts its own on a free port).

use std::fmt::Write as _;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oauth_sdk::types::User;
use oauth_sdk::{Authenticated, Client, MemoryStore, RedisStore};
use redis::AsyncCommands;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::{Deserialize, Serialize};
use taskboard_server::{Config, DEMO_CLIENT, DEMO_USER, RedisServer, Server};

const CONCURRENCY: [usize; 3] = [1, 32, 256];
const STORM: usize = 1000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Case {
    Raw,
    Sdk,
    SdkRedis,
    Seed,
}

impl Case {
    const ALL: [Case; 4] = [Case::Raw, Case::Sdk, Case::SdkRedis, Case::Seed];

    fn name(self) -> &'static str {
        match self {
            Case::Raw => "raw reqwest",
            Case::Sdk => "Authenticated<MemoryStore>",
            Case::SdkRedis => "Authenticated<RedisStore>",
            Case::Seed => "seed-style (Redis per request)",
        }
    }
}

/// The clients under test, all logged in to the same server.
struct Clients {
    raw: reqwest::Client,
    raw_header: HeaderValue,
    me_url: String,
    sdk: Authenticated<MemoryStore>,
    sdk_redis: Authenticated<RedisStore>,
    seed: Arc<SeedClient>,
}

impl Clients {
    async fn call(&self, case: Case) -> Result<User, String> {
        match case {
            Case::Raw => {
                let response = self
                    .raw
                    .get(&self.me_url)
                    .header(AUTHORIZATION, self.raw_header.clone())
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if response.status() != StatusCode::OK {
                    return Err(response.status().to_string());
                }
                let body = response.bytes().await.map_err(|e| e.to_string())?;
                serde_json::from_slice(&body).map_err(|e| e.to_string())
            }
            Case::Sdk => self
                .sdk
                .get_me()
                .await
                .map(|r| r.into_inner())
                .map_err(|e| e.to_string()),
            Case::SdkRedis => self
                .sdk_redis
                .get_me()
                .await
                .map(|r| r.into_inner())
                .map_err(|e| e.to_string()),
            Case::Seed => self.seed.get_me().await,
        }
    }
}

/// The seed's two Axios interceptors, in Rust: tokens from Redis before every request; on a 403,
/// refresh (each request on its own) and retry once.
struct SeedClient {
    http: reqwest::Client,
    redis: redis::aio::MultiplexedConnection,
    key: String,
    base_url: String,
}

#[derive(Serialize, Deserialize)]
struct SeedTokens {
    access_token: String,
    refresh_token: String,
}

impl SeedClient {
    async fn tokens(&self) -> Result<SeedTokens, String> {
        let raw: String = self.redis.clone().get(&self.key).await.map_err(|e| e.to_string())?;
        serde_json::from_str(&raw).map_err(|e| e.to_string())
    }

    async fn send(&self, access_token: &str) -> Result<reqwest::Response, String> {
        self.http
            .get(format!("{}/v1/me", self.base_url))
            .bearer_auth(access_token)
            .send()
            .await
            .map_err(|e| e.to_string())
    }

    async fn get_me(&self) -> Result<User, String> {
        let tokens = self.tokens().await?;
        let mut response = self.send(&tokens.access_token).await?;
        if response.status() == StatusCode::FORBIDDEN {
            let access_token = self.refresh().await?;
            response = self.send(&access_token).await?;
        }
        if response.status() != StatusCode::OK {
            return Err(response.status().to_string());
        }
        response.json().await.map_err(|e| e.to_string())
    }

    async fn refresh(&self) -> Result<String, String> {
        let tokens = self.tokens().await?;
        let response = self
            .http
            .post(format!("{}/oauth/token", self.base_url))
            .basic_auth(DEMO_CLIENT.0, Some(DEMO_CLIENT.1))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &tokens.refresh_token),
            ])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("refresh: {}", response.status()));
        }
        let fresh: SeedTokens = response.json().await.map_err(|e| e.to_string())?;
        let raw = serde_json::to_string(&fresh).map_err(|e| e.to_string())?;
        self.redis
            .clone()
            .set::<_, _, ()>(&self.key, raw)
            .await
            .map_err(|e| e.to_string())?;
        Ok(fresh.access_token)
    }

    /// Log in and put the pair in Redis, as the seed does.
    async fn login(&self) -> Result<(), String> {
        let response = password_grant(&self.http, &self.base_url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let tokens: SeedTokens = response.json().await.map_err(|e| e.to_string())?;
        let raw = serde_json::to_string(&tokens).map_err(|e| e.to_string())?;
        self.redis
            .clone()
            .set::<_, _, ()>(&self.key, raw)
            .await
            .map_err(|e| e.to_string())
    }
}

/// The demo user's password-grant request to the reference server's token endpoint, made by hand.
fn password_grant(http: &reqwest::Client, base_url: &str) -> reqwest::RequestBuilder {
    http.post(format!("{base_url}/oauth/token"))
        .basic_auth(DEMO_CLIENT.0, Some(DEMO_CLIENT.1))
        .form(&[
            ("grant_type", "password"),
            ("username", DEMO_USER.0),
            ("password", DEMO_USER.1),
        ])
}

/// Requests done in one timed run of one case at one concurrency.
struct Sample {
    throughput: f64,
    p50: Duration,
    p99: Duration,
    errors: usize,
}

async fn measure(clients: &Arc<Clients>, case: Case, concurrency: usize, length: Duration) -> Sample {
    let deadline = Instant::now() + length;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let clients = clients.clone();
            tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0);
                while Instant::now() < deadline {
                    let started = Instant::now();
                    if clients.call(case).await.is_err() {
                        errors += 1;
                    }
                    latencies.push(started.elapsed());
                }
                (latencies, errors)
            })
        })
        .collect();
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for worker in workers {
        let (l, e) = worker.await.expect("worker");
        latencies.extend(l);
        errors += e;
    }
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
    };
    Sample {
        throughput: latencies.len() as f64 / length.as_secs_f64(),
        p50: at(0.50).unwrap_or_default(),
        p99: at(0.99).unwrap_or_default(),
        errors,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn sdk_client(server: &Server) -> Client {
    Client::builder(server.base_url(), DEMO_CLIENT.0)
        .client_secret(DEMO_CLIENT.1.into())
        .build()
        .expect("client")
}

async fn logged_in_clients(server: &Server, redis: &RedisServer, key: &str) -> Arc<Clients> {
    let sdk = sdk_client(server)
        .login_password(MemoryStore::new(), DEMO_USER.0, DEMO_USER.1.into())
        .await
        .expect("login");
    let redis_store = RedisStore::connect(&redis.url(), "bench", key)
        .await
        .expect("redis store");
    let sdk_redis = sdk_client(server)
        .login_password(redis_store, DEMO_USER.0, DEMO_USER.1.into())
        .await
        .expect("login");
    // Raw reqwest as a careful user sets it up: the same connect and total timeouts the SDK's
    // default client has.
    let raw = http_client();
    let login: serde_json::Value = password_grant(&raw, &server.base_url())
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("raw login")
        .json()
        .await
        .expect("token JSON");
    let raw_header = HeaderValue::try_from(format!("Bearer {}", login["access_token"].as_str().unwrap_or_default()))
        .expect("header");
    let redis_client = redis::Client::open(redis.url().as_str()).expect("redis URL");
    let seed = Arc::new(SeedClient {
        http: http_client(),
        redis: redis_client
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection"),
        key: key.to_owned(),
        base_url: server.base_url(),
    });
    seed.login().await.expect("seed login");
    Arc::new(Clients {
        raw,
        raw_header,
        me_url: format!("{}/v1/me", server.base_url()),
        sdk,
        sdk_redis,
        seed,
    })
}

/// One storm: `STORM` concurrent requests at once on a token the server no longer accepts.
struct Storm {
    refreshes: u64,
    failures: usize,
    reused: u64,
    all_done: Duration,
}

async fn storm(case: Case, revoked_not_expired: bool, redis: &RedisServer, servers: &tokio::runtime::Handle) -> Storm {
    let lifetime = if revoked_not_expired {
        Duration::from_secs(3600)
    } else {
        Duration::from_millis(500)
    };
    let config = Config {
        access_token_lifetime: lifetime,
        ..Config::default()
    };
    let server = servers
        .spawn(taskboard_server::start(config))
        .await
        .expect("server task")
        .expect("server");
    let clients = logged_in_clients(&server, redis, &format!("seed:storm:{}", uuid::Uuid::new_v4())).await;
    if revoked_not_expired {
        // Make a refresh happen behind the clients' backs: the server revokes the access tokens.
        let stored = oauth_sdk::TokenStore::load(clients.sdk.store())
            .await
            .expect("load")
            .expect("session");
        revoke(
            &server,
            oauth_sdk::ExposeSecret::expose_secret(stored.tokens.as_ref().expect("a live session").access_token()),
        )
        .await;
        revoke(&server, &clients.seed.tokens().await.expect("seed tokens").access_token).await;
    } else {
        tokio::time::sleep(lifetime + Duration::from_millis(100)).await;
    }
    let before = server.counters();
    let started = Instant::now();
    let calls: Vec<_> = (0..STORM)
        .map(|_| {
            let clients = clients.clone();
            tokio::spawn(async move { clients.call(case).await.is_ok() })
        })
        .collect();
    let mut failures = 0;
    for call in calls {
        if !call.await.unwrap_or(false) {
            failures += 1;
        }
    }
    let all_done = started.elapsed();
    let after = server.counters();
    Storm {
        refreshes: after.refresh_grants - before.refresh_grants,
        failures,
        reused: after.reused_refresh_tokens - before.reused_refresh_tokens,
        all_done,
    }
}

/// A reqwest client with the SDK's default API timeouts.
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(oauth_sdk::DEFAULT_API_TIMEOUT)
        .timeout(oauth_sdk::DEFAULT_API_TIMEOUT)
        .build()
        .expect("reqwest client")
}

async fn revoke(server: &Server, token: &str) {
    reqwest::Client::new()
        .post(format!("{}/oauth/revoke", server.base_url()))
        .basic_auth(DEMO_CLIENT.0, Some(DEMO_CLIENT.1))
        .form(&[("token", token)])
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("revoke");
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!(
        "{cores} cores ({cpu}), {}, {rustc}, release profile",
        std::env::consts::OS
    )
}

fn main() {
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let (rounds, length) = if quick {
        (1, Duration::from_millis(300))
    } else {
        (20, Duration::from_millis(700))
    };

    // The server gets a runtime (and thread) of its own, so client and server work are not interleaved
    // on one scheduler; the clients get the other core.
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let redis = RedisServer::start();

    let server = server_runtime
        .block_on(taskboard_server::start(Config::default()))
        .expect("server");
    let clients = runtime.block_on(logged_in_clients(&server, &redis, "seed:throughput"));

    // Warm up connections and caches.
    runtime.block_on(async {
        for case in Case::ALL {
            measure(&clients, case, 32, Duration::from_millis(200)).await;
        }
    });

    if let Some(focus) = std::env::var("BENCH_FOCUS").ok().and_then(|c| c.parse().ok()) {
        runtime.block_on(focus_on(&clients, focus));
        return;
    }

    // samples[case][concurrency] -> per round
    let mut samples: Vec<Vec<Vec<Sample>>> = Case::ALL
        .iter()
        .map(|_| CONCURRENCY.iter().map(|_| Vec::new()).collect())
        .collect();
    for round in 0..rounds {
        for (ci, &concurrency) in CONCURRENCY.iter().enumerate() {
            // Alternate the order from round to round.
            let mut order = Case::ALL;
            order.rotate_left(round % Case::ALL.len());
            for case in order {
                let sample = runtime.block_on(measure(&clients, case, concurrency, length));
                samples[case as usize][ci].push(sample);
            }
        }
        eprintln!("round {}/{rounds} done", round + 1);
    }

    let storms: Vec<(Case, bool, Storm)> = [
        (Case::Sdk, false),
        (Case::Seed, false),
        (Case::Sdk, true),
        (Case::Seed, true),
    ]
    .into_iter()
    .map(|(case, revoked)| {
        (
            case,
            revoked,
            runtime.block_on(storm(case, revoked, &redis, server_runtime.handle())),
        )
    })
    .collect();

    let report = report(&samples, &storms, rounds, length);
    println!("{report}");
    if quick {
        return;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let path = format!("{root}/BENCHMARKS.md");
    let document = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::write(&path, with_results(&document, &report)).expect("write BENCHMARKS.md");
    std::fs::write(format!("{root}/benches/ratios.svg"), svg(&samples)).expect("write ratios.svg");
    eprintln!("wrote BENCHMARKS.md (between its result markers) and benches/ratios.svg");
}

/// `BENCH_FOCUS=32`: raw reqwest and the two `Authenticated` clients only, at one concurrency, in 30
/// short rounds rotating which goes first; prints the median ratios and writes nothing. For checking a
/// change quickly.
async fn focus_on(clients: &Arc<Clients>, concurrency: usize) {
    let cases = [Case::Raw, Case::Sdk, Case::SdkRedis];
    let mut ratios = vec![Vec::new(); cases.len()];
    for round in 0..30 {
        let mut order = cases;
        order.rotate_left(round % cases.len());
        let mut throughput = [0.0; 3];
        for case in order {
            let at = cases.iter().position(|c| *c == case).unwrap_or_default();
            throughput[at] = measure(clients, case, concurrency, Duration::from_millis(500))
                .await
                .throughput;
        }
        for (at, ratios) in ratios.iter_mut().enumerate() {
            ratios.push(throughput[at] / throughput[0]);
        }
    }
    for (case, ratios) in cases.iter().zip(ratios).skip(1) {
        let mut sorted = ratios.clone();
        sorted.sort_by(f64::total_cmp);
        println!(
            "concurrency {concurrency}: {} / raw = {:.3} (median of {}; quartiles {:.3}–{:.3})",
            case.name(),
            median(ratios),
            sorted.len(),
            sorted[sorted.len() / 4],
            sorted[sorted.len() * 3 / 4]
        );
    }
}

const BEGIN: &str = "<!-- results:begin (written by cargo bench --bench overhead) -->";
const END: &str = "<!-- results:end -->";

/// The document with the text between its result markers replaced (the markers appended if absent);
/// what is outside them is written by hand and kept.
fn with_results(document: &str, results: &str) -> String {
    let block = format!("{BEGIN}\n{results}{END}");
    match (document.find(BEGIN), document.find(END)) {
        (Some(begin), Some(end)) if begin < end => {
            format!("{}{block}{}", &document[..begin], &document[end + END.len()..])
        }
        _ => format!("{document}{}{block}\n", if document.is_empty() { "" } else { "\n" }),
    }
}

fn ratio(samples: &[Vec<Vec<Sample>>], case: Case, ci: usize) -> f64 {
    median(ratios(samples, case, ci))
}

/// Throughput over raw reqwest's, one per round.
fn ratios(samples: &[Vec<Vec<Sample>>], case: Case, ci: usize) -> Vec<f64> {
    let base = &samples[Case::Raw as usize][ci];
    let this = &samples[case as usize][ci];
    base.iter()
        .zip(this)
        .map(|(b, t)| t.throughput / b.throughput)
        .collect()
}

fn report(samples: &[Vec<Vec<Sample>>], storms: &[(Case, bool, Storm)], rounds: usize, length: Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## Results\n");
    let _ = writeln!(
        out,
        "Command: `cargo bench --bench overhead` (rewrites this section and `benches/ratios.svg`).\n"
    );
    let _ = writeln!(
        out,
        "Date: {}. Machine: {}.\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine()
    );
    let _ = writeln!(
        out,
        "Setup: the reference server on loopback in the same process (its own runtime thread), the clients on \
         another runtime thread. `GET /v1/me`, response parsed into `types::User` by every client. {rounds} \
         rounds of {:.1} s per case and concurrency, cases alternating; medians over rounds. Ratios are \
         throughput over raw reqwest's in the same round, then the median.\n",
        length.as_secs_f64()
    );
    let _ = writeln!(out, "### Throughput and latency\n");
    let _ = writeln!(
        out,
        "| concurrency | client | requests/s | p50 | p99 | errors | ratio to raw | ratio, rounds min–max |"
    );
    let _ = writeln!(out, "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (ci, concurrency) in CONCURRENCY.iter().enumerate() {
        for case in Case::ALL {
            let runs = &samples[case as usize][ci];
            let throughput = median(runs.iter().map(|s| s.throughput).collect());
            let p50 = median(runs.iter().map(|s| s.p50.as_secs_f64() * 1e6).collect());
            let p99 = median(runs.iter().map(|s| s.p99.as_secs_f64() * 1e6).collect());
            let errors: usize = runs.iter().map(|s| s.errors).sum();
            let each = ratios(samples, case, ci);
            let (low, high) = each
                .iter()
                .fold((f64::INFINITY, 0.0f64), |(l, h), r| (l.min(*r), h.max(*r)));
            let _ = writeln!(
                out,
                "| {concurrency} | {} | {throughput:.0} | {p50:.0} µs | {p99:.0} µs | {errors} | {:.3} | {low:.2}–{high:.2} |",
                case.name(),
                ratio(samples, case, ci)
            );
        }
    }
    let _ = writeln!(out, "\n![throughput ratios](benches/ratios.svg)\n");
    let _ = writeln!(
        out,
        "Targets: `Authenticated<MemoryStore>` at least 0.95x raw at concurrency 1 and 0.97x at 32; \
         `Authenticated<RedisStore>` at least 0.95x at 32.\n"
    );
    let _ = writeln!(
        out,
        "### Refresh storm: {STORM} concurrent requests on a token the server no longer accepts\n"
    );
    let _ = writeln!(
        out,
        "Rotation and reuse detection on (the reference server's default).\n"
    );
    let _ = writeln!(
        out,
        "| token | client | refresh requests | reused refresh tokens | failed requests | time until all done |"
    );
    let _ = writeln!(out, "| --- | --- | ---: | ---: | ---: | ---: |");
    for (case, revoked, storm) in storms {
        let token = if *revoked {
            "revoked (client thinks it valid)"
        } else {
            "expired"
        };
        let _ = writeln!(
            out,
            "| {token} | {} | {} | {} | {} | {:.0} ms |",
            case.name(),
            storm.refreshes,
            storm.reused,
            storm.failures,
            storm.all_done.as_secs_f64() * 1e3
        );
    }
    out
}

/// Grouped bars of throughput ratio to raw reqwest, per concurrency.
fn svg(samples: &[Vec<Vec<Sample>>]) -> String {
    let (width, height, left, top, bottom) = (760.0, 360.0, 60.0, 40.0, 60.0);
    let plot_h = height - top - bottom;
    let y = |r: f64| top + plot_h * (1.0 - (r / 1.1).clamp(0.0, 1.0));
    let group_w = (width - left - 20.0) / CONCURRENCY.len() as f64;
    let colours = [
        ("Authenticated&lt;MemoryStore&gt;", Case::Sdk, "#2b6cb0"),
        ("Authenticated&lt;RedisStore&gt;", Case::SdkRedis, "#38a169"),
        ("seed-style (Redis per request)", Case::Seed, "#c05621"),
    ];
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">
<text x="{left}" y="20" font-size="14">Throughput relative to raw reqwest (GET /v1/me; 1.0 = raw)</text>
"#
    );
    let right = width - 20.0;
    for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let (line_y, label_x, label_y) = (y(tick), left - 6.0, y(tick) + 4.0);
        let _ = writeln!(
            out,
            r##"<line x1="{left}" x2="{right}" y1="{line_y}" y2="{line_y}" stroke="#ddd"/><text x="{label_x}" y="{label_y}" text-anchor="end">{tick:.2}</text>"##
        );
    }
    let one = y(1.0);
    let _ = writeln!(
        out,
        r##"<line x1="{left}" x2="{right}" y1="{one}" y2="{one}" stroke="#333" stroke-dasharray="4 3"/>"##
    );
    for (ci, concurrency) in CONCURRENCY.iter().enumerate() {
        let x0 = left + group_w * ci as f64 + group_w * 0.15;
        let bar_w = group_w * 0.7 / colours.len() as f64;
        for (bi, (_, case, colour)) in colours.iter().enumerate() {
            let r = ratio(samples, *case, ci);
            let x = x0 + bar_w * bi as f64;
            let _ = writeln!(
                out,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{colour}"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{r:.2}</text>"#,
                y(r),
                bar_w - 4.0,
                y(0.0) - y(r),
                x + bar_w / 2.0 - 2.0,
                y(r) - 4.0
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">concurrency {concurrency}</text>"#,
            x0 + group_w * 0.35,
            height - bottom + 18.0
        );
    }
    for (i, (name, _, colour)) in colours.iter().enumerate() {
        let x = left + 230.0 * i as f64;
        let _ = writeln!(
            out,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{colour}"/><text x="{}" y="{}">{name}</text>"#,
            height - 24.0,
            x + 16.0,
            height - 14.0
        );
    }
    out.push_str("</svg>\n");
    out
}
