// The spec declares only a client-credentials flow: there is no authorization-code login. (The
// demo's build.rs declares a device flow, so the copy has a device login.)
use oauth_sdk::{Client, MemoryStore};

async fn login(client: Client) {
    let _ = client.authorization_request("http://127.0.0.1/callback", &[]);
    let _ = client
        .login_authorization_code_loopback(MemoryStore::new(), &[], |url| println!("{url}"))
        .await;
}

fn main() {}
