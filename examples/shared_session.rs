//! One process of a fleet sharing one session: resume it from Redis (or a file), then make concurrent
//! calls.
//!
//! ```sh
//! cargo run --example shared_session -- --api http://127.0.0.1:8080 --redis redis://127.0.0.1:6379/ \
//!     --prefix taskboard --session ada --requests 100
//! cargo run --example shared_session -- --api http://127.0.0.1:8080 --file ~/.taskboard/session.json
//! ```
//!
//! It prints `ready`, waits for a line on standard input (so a test can start many at once), sends
//! `--requests` concurrent `GET /v1/me`, prints `succeeded=N failed=M`, and exits non-zero if any call
//! failed. However many processes do this on an expired session, the session is renewed once.

use std::io::BufRead;

use oauth_sdk::{Authenticated, Client, FileStore, RedisStore, TokenStore};
use taskboard_server::DEMO_CLIENT;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let api_url = arg("--api").ok_or("--api URL is required")?;
    let requests: usize = arg("--requests").unwrap_or_else(|| "100".into()).parse()?;
    let client = Client::builder(api_url, DEMO_CLIENT.0)
        .client_secret(DEMO_CLIENT.1.into())
        .build()?;
    match arg("--file") {
        Some(path) => run(client.resume(FileStore::new(path)).await?, requests).await,
        None => {
            let redis = arg("--redis").ok_or("--redis URL or --file PATH is required")?;
            let prefix = arg("--prefix").unwrap_or_else(|| "taskboard".into());
            let session = arg("--session").ok_or("--session NAME is required")?;
            let store = RedisStore::connect(&redis, &prefix, &session).await?;
            run(client.resume(store).await?, requests).await
        }
    }
}

/// The same code for any store: it is a type parameter.
async fn run<S: TokenStore>(api: Authenticated<S>, requests: usize) -> Result<(), Box<dyn std::error::Error>> {
    println!("ready");
    let mut go = String::new();
    std::io::stdin().lock().read_line(&mut go)?;

    let calls: Vec<_> = (0..requests)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move { api.get_me().await.map(drop) })
        })
        .collect();
    let (mut succeeded, mut failed) = (0, 0);
    for call in calls {
        match call.await? {
            Ok(()) => succeeded += 1,
            Err(error) => {
                failed += 1;
                eprintln!("call failed: {error}");
            }
        }
    }
    println!("succeeded={succeeded} failed={failed}");
    if failed > 0 {
        return Err(format!("{failed} call(s) failed").into());
    }
    Ok(())
}
