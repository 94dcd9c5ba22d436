//! A fleet of OS processes sharing one session: each runs `examples/shared_session.rs`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};

/// A child process killed when the test ends, also when it fails.
struct Worker {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Fleet {
    workers: Vec<Worker>,
    requests: usize,
}

/// `target/debug/examples/shared_session`, which `cargo test` builds with the tests. (A filtered
/// `cargo nextest run --test integration` does not rebuild examples: `cargo build --examples` first.)
fn shared_session_example() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let example = profile_dir
        .join("examples")
        .join(format!("shared_session{}", std::env::consts::EXE_SUFFIX));
    assert!(
        example.exists(),
        "{} is missing: run the tests with cargo test, which builds the examples",
        example.display()
    );
    example
}

impl Fleet {
    /// Start `processes` processes with `store_args` (`--redis ...` or `--file ...`), each resumed and
    /// ready to send `requests` concurrent calls.
    pub fn start(processes: usize, requests: usize, api: &str, store_args: &[&str]) -> Self {
        let example = shared_session_example();
        let workers = (0..processes)
            .map(|_| {
                let mut child = Command::new(&example)
                    .args(["--api", api, "--requests", &requests.to_string()])
                    .args(store_args)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("the shared_session example starts");
                let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
                let mut ready = String::new();
                let _ = stdout.read_line(&mut ready);
                assert_eq!(ready.trim(), "ready", "a process did not resume the session");
                Worker { child, stdout }
            })
            .collect();
        Self { workers, requests }
    }

    /// Start every process's calls at once, wait for all, and check that every call succeeded.
    pub async fn run(mut self) {
        for worker in &mut self.workers {
            worker
                .child
                .stdin
                .take()
                .expect("piped stdin")
                .write_all(b"go\n")
                .expect("go");
        }
        let expected = format!("succeeded={} failed=0", self.requests);
        for mut worker in self.workers {
            let (report, status) = tokio::task::spawn_blocking(move || {
                let report: Vec<String> = (&mut worker.stdout).lines().map_while(Result::ok).collect();
                (report, worker.child.wait())
            })
            .await
            .expect("joined");
            assert!(status.expect("waited").success(), "a process failed: {report:?}");
            assert_eq!(report.last(), Some(&expected));
        }
    }
}
