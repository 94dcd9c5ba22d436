// A protected operation cannot be called before logging in: `Client` does not have it.
use oauth_sdk::Client;

async fn before_login(client: Client) {
    let _ = client.get_me().await;
}

fn main() {}
