// The flow the spec declares is there.
use oauth_sdk::{Client, MemoryStore};

async fn login(client: Client) {
    let _ = client.login_client_credentials(MemoryStore::new(), &[]).await;
}

fn main() {
    let _ = login;
}
