//! What the measuring examples share: their arguments, and the reference server in a child process
//! (the example itself, run with `--serve`), so that the server's CPU and memory are its own.

// Compiled into each example, which uses part of it.
#![allow(dead_code)]

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The number given after `name`, or `default`.
pub fn arg(name: &str, default: u64) -> Result<u64, Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let value = args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
    Ok(value.map(|v| v.parse()).transpose()?.unwrap_or(default))
}

/// Whether `name` is among the arguments.
pub fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

/// The CPU time `pid` has used (user and system), in ticks of 10 ms; 0 if it cannot be read.
pub fn ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

/// Whether this process is the server's child.
pub fn is_server() -> bool {
    flag("--serve")
}

/// The reference server, in a child process; killed when dropped.
pub struct ServerProcess(Child);

impl ServerProcess {
    /// Start it with access tokens of `token_seconds`: the child, and its base URL.
    pub fn start(token_seconds: u64) -> Result<(Self, String), Box<dyn std::error::Error>> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--serve", "--token-seconds", &token_seconds.to_string()])
            .stdout(Stdio::piped())
            .stdin(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let server = Self(child);
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        Ok((server, line.trim().to_owned()))
    }

    /// The child's process id (to read its CPU time).
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The child: serve until the parent closes stdin or is gone.
pub async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let server = taskboard_server::start(taskboard_server::Config {
        access_token_lifetime: Duration::from_secs(arg("--token-seconds", 30)?),
        ..Default::default()
    })
    .await?;
    println!("{}", server.base_url());
    tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new())).await??;
    Ok(())
}
