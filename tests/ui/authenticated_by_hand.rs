// An `Authenticated` comes only from a login or a resume; it cannot be built by hand.
use oauth_sdk::{Authenticated, Client, MemoryStore};

fn forge(client: Client) -> Authenticated<MemoryStore> {
    Authenticated::new(client, MemoryStore::new())
}

fn main() {}
