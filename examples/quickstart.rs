//! `cargo run --example quickstart`
//!
//! Starts the Taskboard reference server in this process (access tokens live two seconds, refresh
//! tokens rotate, reuse revokes the session), logs in with the in-memory store, creates a project and
//! tasks, and keeps calling across several token lifetimes. Then it says what happened.

use std::time::{Duration, Instant};

use oauth_sdk::types::{NewProject, NewTask, TaskPatch, TaskStatus};
use oauth_sdk::{Client, MemoryStore};
use taskboard_server::{DEMO_CLIENT, DEMO_USER};

const TOKEN_LIFETIME: Duration = Duration::from_secs(2);
const RUN_FOR: Duration = Duration::from_secs(7);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = taskboard_server::start(taskboard_server::Config {
        access_token_lifetime: TOKEN_LIFETIME,
        ..Default::default()
    })
    .await?;
    println!(
        "Reference server at {} (access tokens live {}s).",
        server.base_url(),
        TOKEN_LIFETIME.as_secs()
    );

    let client = Client::builder(server.base_url(), DEMO_CLIENT.0)
        .client_secret(DEMO_CLIENT.1.into())
        .revocation_url("/oauth/revoke")
        .build()?;
    let health = client.health().await?;
    println!(
        "Health (a public call, before login): {} {}",
        health.status, health.version
    );

    let api = client
        .login_password(MemoryStore::new(), DEMO_USER.0, DEMO_USER.1.into())
        .await?;
    let me = api.get_me().await?;
    println!("Logged in as {} with scopes {}.", me.username, me.scopes.join(", "));

    let project = api
        .create_project(&NewProject {
            name: "Launch".try_into()?,
            description: Some("Quickstart demo".into()),
        })
        .await?;
    let mut tasks = Vec::new();
    for title in ["Write the spec", "Generate the SDK", "Ship it"] {
        tasks.push(
            api.create_task(
                &project.id,
                &NewTask {
                    title: title.try_into()?,
                    status: None,
                },
            )
            .await?
            .into_inner(),
        );
    }
    println!("Created project {} with {} tasks.", project.id, tasks.len());

    println!(
        "Calling the API for {}s, across several token lifetimes...",
        RUN_FOR.as_secs()
    );
    let (mut calls, mut failures) = (0u32, 0u32);
    let started = Instant::now();
    while started.elapsed() < RUN_FOR {
        let task = &tasks[calls as usize % tasks.len()];
        let status = if calls % 2 == 0 {
            TaskStatus::Doing
        } else {
            TaskStatus::Done
        };
        let outcomes = [
            api.list_tasks(&project.id, None).await.map(drop),
            api.update_task(
                &task.id,
                &TaskPatch {
                    title: None,
                    status: Some(status),
                },
            )
            .await
            .map(drop),
        ];
        for outcome in outcomes {
            calls += 1;
            if let Err(error) = outcome {
                failures += 1;
                eprintln!("call failed: {error}");
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    api.logout().await?;

    let counted = server.counters();
    println!();
    println!("What happened:");
    println!("  calls made:            {calls}");
    println!("  failed calls:          {failures} (expected 0)");
    println!(
        "  token refreshes:       {} (one per token, each before it expired: a {}s token is renewed at half-life)",
        counted.refreshes_accepted,
        TOKEN_LIFETIME.as_secs()
    );
    println!(
        "  answers 401/403:       {} (expected 0: tokens are renewed ahead of expiry)",
        counted.api(401) + counted.api(403)
    );
    println!(
        "  refresh tokens reused: {} (expected 0: rotation-safe)",
        counted.reused_refresh_tokens
    );
    println!(
        "  logged out:            the refresh token was revoked ({} revocation)",
        counted.revocations
    );
    if failures > 0 || counted.reused_refresh_tokens > 0 || counted.api(403) > 0 {
        return Err("the quickstart saw failures".into());
    }
    Ok(())
}
