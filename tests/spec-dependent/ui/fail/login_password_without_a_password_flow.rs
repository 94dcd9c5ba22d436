// The spec declares only a client-credentials flow: there is no password login to call.
use oauth_sdk::{Client, MemoryStore};

async fn login(client: Client) {
    let _ = client.login_password(MemoryStore::new(), "ada", "secret".into()).await;
}

fn main() {}
