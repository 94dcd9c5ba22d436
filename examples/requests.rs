//! `cargo run --release --example requests -- CLIENT N [CONCURRENCY]`: N `GET /v1/me` against the
//! reference server in this process, on one thread, by CONCURRENCY callers (default 1) at once. CLIENT is `raw` (reqwest with a fixed bearer
//! header, the response parsed into `types::User`), `sdk` (`Authenticated<MemoryStore>::get_me`) or
//! `sdk-redis` (`Authenticated<RedisStore>`, with a `redis-server` of its own; it also prints how many
//! commands Redis processed during the N requests: none are needed on the request path).
//!
//! Wall-clock time on a shared machine is noisy; instruction counts are not. Count them with
//! callgrind for two values of N and divide the difference by the difference in N:
//!
//! ```sh
//! cargo build --release --example requests
//! for n in 1000 3000; do valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$n \
//!     target/release/examples/requests sdk $n 2>&1 | grep Collected; done
//! ```
//!
//! The numbers cover client and server together (they share the process), as they share the CPU in
//! `cargo bench --bench overhead`.

use oauth_sdk::{Client, ExposeSecret, MemoryStore, RedisStore, TokenStore};
use taskboard_server::{DEMO_CLIENT, DEMO_USER, RedisServer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client_kind = std::env::args().nth(1).unwrap_or_else(|| "sdk".into());
    let n: usize = std::env::args().nth(2).map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let concurrency: usize = std::env::args()
        .nth(3)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1)
        .max(1);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let server = taskboard_server::start(Default::default()).await?;
        let client = Client::builder(server.base_url(), DEMO_CLIENT.0)
            .client_secret(DEMO_CLIENT.1.into())
            .build()?;
        let api = client
            .clone()
            .login_password(MemoryStore::new(), DEMO_USER.0, DEMO_USER.1.into())
            .await?;
        let stored = api.store().load().await?.ok_or("no session")?;
        let bearer = format!(
            "Bearer {}",
            stored
                .tokens
                .as_ref()
                .ok_or("logged out")?
                .access_token()
                .expose_secret()
        );
        // With the SDK's default timeouts, as the SDK's own client has them.
        let raw = reqwest::Client::builder()
            .connect_timeout(oauth_sdk::DEFAULT_API_TIMEOUT)
            .timeout(oauth_sdk::DEFAULT_API_TIMEOUT)
            .build()?;
        let url = format!("{}/v1/me", server.base_url());
        let redis_server = (client_kind == "sdk-redis").then(RedisServer::start);
        let api_redis = match &redis_server {
            Some(redis_server) => {
                let store = RedisStore::connect(&redis_server.url(), "requests", "ada").await?;
                Some(client.login_password(store, DEMO_USER.0, DEMO_USER.1.into()).await?)
            }
            None => None,
        };
        let commands = |redis_server: &RedisServer| -> Result<u64, Box<dyn std::error::Error>> {
            let info = std::process::Command::new("redis-cli")
                .args(["-u", &redis_server.url(), "INFO", "stats"])
                .output()?;
            let text = String::from_utf8_lossy(&info.stdout).into_owned();
            let line = text
                .lines()
                .find(|l| l.starts_with("total_commands_processed:"))
                .ok_or("no INFO stats")?;
            Ok(line.trim_start_matches("total_commands_processed:").trim().parse()?)
        };
        let before = redis_server.as_ref().map(commands).transpose()?;
        // `concurrency` callers, each making its share of the `n` requests, interleaved on this thread.
        let caller = |requests: usize| {
            let (raw, url, bearer, api, api_redis, client_kind) =
                (&raw, &url, &bearer, &api, &api_redis, client_kind.as_str());
            async move {
                for _ in 0..requests {
                    match client_kind {
                        "raw" => {
                            let response = raw
                                .get(url)
                                .header("authorization", bearer)
                                .send()
                                .await?
                                .error_for_status()?;
                            let _user: oauth_sdk::types::User = serde_json::from_slice(&response.bytes().await?)?;
                        }
                        "sdk" => drop(api.get_me().await?),
                        "sdk-redis" => drop(api_redis.as_ref().ok_or("no Redis session")?.get_me().await?),
                        other => {
                            return Err(format!("unknown client `{other}`: raw, sdk or sdk-redis").into());
                        }
                    }
                }
                Ok::<_, Box<dyn std::error::Error>>(())
            }
        };
        let callers = (0..concurrency).map(|i| caller(n / concurrency + usize::from(i < n % concurrency)));
        for outcome in futures::future::join_all(callers).await {
            outcome?;
        }
        if let (Some(redis_server), Some(before)) = (&redis_server, before) {
            // Minus one: the INFO command that reads the counter.
            println!(
                "redis commands during {n} requests: {}",
                commands(redis_server)? - before - 1
            );
        }
        Ok(())
    })
}
