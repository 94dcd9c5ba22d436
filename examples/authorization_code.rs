//! `cargo run --example authorization_code`
//!
//! The authorization-code login with PKCE, end to end against the Taskboard reference server, as a
//! web application does it: step one makes the authorization URL and a pending login, which the web
//! application keeps in the user's session (here: serialised to JSON, as it would be); the user's
//! browser goes to the URL and comes back to the redirect URI with a code (here the example is the
//! browser, following the redirect itself); step two checks the callback and redeems the code. Then
//! it calls the API, renews the session, and shows what a forged callback gets.

use oauth_sdk::{AuthorizationError, Client, Error, MemoryStore, PendingLogin};
use taskboard_server::DEMO_CLIENT;

/// Where the authorization server sends the browser back (the reference server accepts loopback
/// redirect URIs on any port, as RFC 8252 asks).
const REDIRECT_URI: &str = "http://127.0.0.1:8400/callback";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = taskboard_server::start(taskboard_server::Config::default()).await?;
    let client = Client::builder(server.base_url(), DEMO_CLIENT.0)
        .client_secret(DEMO_CLIENT.1.into())
        .build()?;

    // Step one, in the handler of "Sign in": the URL to redirect to, and what to keep.
    let (url, pending) = client
        .authorization_request(REDIRECT_URI, &["tasks.read"])?
        .into_parts();
    let kept_in_the_web_session = serde_json::to_string(&pending)?;
    println!(
        "1. Redirecting the user to {}",
        url.as_str().split('?').next().unwrap_or_default()
    );
    println!("   keeping {pending:?}");

    // The user's browser: the authorization server approves the demo user and redirects back.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let answer = browser.get(url).send().await?;
    let callback = answer.headers()["location"].to_str()?.to_owned();
    println!("2. The browser comes back to {REDIRECT_URI}?code=…&state=…&iss=…");

    // Step two, in the handler of the redirect URI (possibly another process).
    let pending: PendingLogin = serde_json::from_str(&kept_in_the_web_session)?;
    let forged = format!("{REDIRECT_URI}?code=stolen&state=guessed");
    match client
        .clone()
        .login_authorization_code(MemoryStore::new(), &pending, &forged)
        .await
    {
        Err(Error::Authorization(AuthorizationError::StateMismatch)) => {
            println!("   (a forged callback is refused before its code is used: StateMismatch)")
        }
        other => return Err(format!("a forged callback was not refused: {other:?}").into()),
    }
    let api = client
        .login_authorization_code(MemoryStore::new(), &pending, &callback)
        .await?;
    let me = api.get_me().await?;
    println!("3. Logged in as {} with scopes {}.", me.username, me.scopes.join(", "));

    api.refresh().await?;
    println!(
        "4. Renewed with the refresh token; still {}. The server counted {} code redeemed, {} refresh.",
        api.get_me().await?.username,
        server.counters().authorization_code_grants,
        server.counters().refreshes_accepted
    );
    Ok(())
}
