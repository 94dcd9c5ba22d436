//! A `redis-server` of a test's own, on a free loopback port, stopped by its pid when dropped. Fails
//! loudly when the binary is missing: a test that needs Redis never skips.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server` child process.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: Option<PathBuf>,
}

impl RedisServer {
    /// Start one that keeps nothing on disk.
    pub fn start() -> Self {
        Self::launch(free_port(), None)
    }

    /// Start one that persists to `dir` (append-only file), so that it comes back from
    /// [`restart`](Self::restart) with its data.
    pub fn start_persistent(dir: &Path) -> Self {
        Self::launch(free_port(), Some(dir.to_owned()))
    }

    fn launch(port: u16, dir: Option<PathBuf>) -> Self {
        let mut command = Command::new("redis-server");
        command.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""]);
        match &dir {
            Some(dir) => command
                .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
                .arg(dir),
            None => command.args(["--appendonly", "no"]),
        };
        let child = command.stdout(Stdio::null()).spawn().unwrap_or_else(|e| {
            panic!("cannot start redis-server ({e}): install Redis 7 so that `redis-server` is on PATH")
        });
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Self {
            child: Some(child),
            port,
            dir,
        }
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kill it (SIGKILL, by pid), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same port (and, if persistent, with the same data).
    pub fn restart(&mut self) {
        self.kill();
        *self = Self::launch(self.port, self.dir.take());
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}
