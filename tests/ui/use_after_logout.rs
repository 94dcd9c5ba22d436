// `logout` consumes the session: it cannot be used afterwards.
use oauth_sdk::{Authenticated, MemoryStore};

async fn after_logout(api: Authenticated<MemoryStore>) {
    api.logout().await.unwrap();
    let _ = api.get_me().await;
}

fn main() {}
