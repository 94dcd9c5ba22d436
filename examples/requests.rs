//! `cargo run --release --example requests -- CLIENT N`: N sequential `GET /v1/me` against the
//! reference server in this process, on one thread. CLIENT is `raw` (reqwest with a fixed bearer
//! header, the response parsed into `types::User`) or `sdk` (`Authenticated<MemoryStore>::get_me`).
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

use oauth_sdk::{Client, ExposeSecret, MemoryStore, TokenStore};
use taskboard_server::{DEMO_CLIENT, DEMO_USER};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client_kind = std::env::args().nth(1).unwrap_or_else(|| "sdk".into());
    let n: usize = std::env::args()
        .nth(2)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let server = taskboard_server::start(Default::default()).await?;
        let client = Client::builder(server.base_url(), DEMO_CLIENT.0)
            .client_secret(DEMO_CLIENT.1.into())
            .build()?;
        let api = client
            .login_password(MemoryStore::new(), DEMO_USER.0, DEMO_USER.1.into())
            .await?;
        let stored = api.store().load().await?.ok_or("no session")?;
        let bearer = format!("Bearer {}", stored.tokens.access_token().expose_secret());
        let (raw, url) = (
            reqwest::Client::new(),
            format!("{}/v1/me", server.base_url()),
        );
        for _ in 0..n {
            match client_kind.as_str() {
                "raw" => {
                    let response = raw
                        .get(&url)
                        .header("authorization", &bearer)
                        .send()
                        .await?
                        .error_for_status()?;
                    let _user: oauth_sdk::types::User =
                        serde_json::from_slice(&response.bytes().await?)?;
                }
                "sdk" => drop(api.get_me().await?),
                other => return Err(format!("unknown client `{other}`: raw or sdk").into()),
            }
        }
        Ok(())
    })
}
