// A session can only live in a `TokenStore`.
use oauth_sdk::Client;

struct NotAStore;

async fn login(client: Client) {
    let _ = client.login_password(NotAStore, "ada", "secret".into()).await;
}

fn main() {}
