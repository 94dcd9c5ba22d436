//! A `redis-server` of a test's own, on a free loopback port, stopped by its pid when dropped. Fails
//! loudly when the binary is missing: a test that needs Redis never skips.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// A running `redis-server` child process.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: Option<PathBuf>,
    tls: Option<Tls>,
    /// Further `redis-server` arguments, kept for a restart.
    extra: Vec<String>,
    /// The working directory of a server that persists nothing: its own, so that a file it writes
    /// anyway (a replica's copy of its master's data) is read by no other server.
    scratch: PathBuf,
}

/// A TLS-only server's certificate authority, and the ACL user it admits.
struct Tls {
    dir: PathBuf,
    ca_pem: Vec<u8>,
}

/// The ACL user of [`RedisServer::start_tls`]: the only user that may log in.
pub const TLS_USER: (&str, &str) = ("app", "s3cret-pass");

impl RedisServer {
    /// Start one that keeps nothing on disk.
    pub fn start() -> Self {
        Self::launch(None, None, None, Vec::new())
    }

    /// Start one with further `redis-server` arguments (`--cluster-enabled yes`, `--replicaof ..`);
    /// `{port}` in them is replaced with the port it listens on.
    pub fn start_with(args: &[&str]) -> Self {
        Self::launch(None, None, None, args.iter().map(|a| (*a).to_owned()).collect())
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process's id, while it runs (to read its CPU time, say).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Start one that persists to `dir` (append-only file), so that it comes back from
    /// [`restart`](Self::restart) with its data.
    pub fn start_persistent(dir: &Path) -> Self {
        Self::launch(None, Some(dir.to_owned()), None, Vec::new())
    }

    /// Start one that speaks only TLS (`rediss://`), with a certificate for 127.0.0.1 signed by a
    /// certificate authority made for it ([`ca_pem`](Self::ca_pem)), and only the ACL user
    /// [`TLS_USER`]. Needs `openssl` on PATH to make the certificates.
    pub fn start_tls() -> Self {
        let dir = std::env::temp_dir().join(format!("redis-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        make_certificates(&dir);
        let ca_pem = std::fs::read(dir.join("ca.crt")).expect("the CA certificate");
        let mut server = Self::launch(None, None, Some(&dir), Vec::new());
        server.tls = Some(Tls { dir, ca_pem });
        server
    }

    /// The PEM certificate of the authority that signed a [`start_tls`](Self::start_tls) server's
    /// certificate.
    pub fn ca_pem(&self) -> &[u8] {
        self.tls.as_ref().map(|t| t.ca_pem.as_slice()).unwrap_or_default()
    }

    /// Start on `port`, or on a free one. A free port found by binding and releasing it can be taken
    /// by another test's server before this one binds it: that server then exits, and this one tries
    /// another port, rather than leave the test talking to someone else's Redis.
    fn launch(port: Option<u16>, dir: Option<PathBuf>, tls: Option<&Path>, extra: Vec<String>) -> Self {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let chosen = port.unwrap_or_else(free_port);
            let args: Vec<String> = extra.iter().map(|a| a.replace("{port}", &chosen.to_string())).collect();
            let scratch = std::env::temp_dir().join(format!("redis-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&scratch).expect("a temporary directory");
            match Self::try_launch(chosen, dir.as_deref().unwrap_or(&scratch), dir.is_some(), tls, &args) {
                Ok(child) => {
                    return Self {
                        child: Some(child),
                        port: chosen,
                        dir,
                        tls: None,
                        extra,
                        scratch,
                    };
                }
                Err(log) => {
                    let _ = std::fs::remove_dir_all(&scratch);
                    if port.is_none() && attempts < 5 && log.contains("in use") {
                        continue;
                    }
                    panic!("redis-server did not start on port {chosen}:\n{log}");
                }
            }
        }
    }

    /// Spawn redis-server and wait until it says it accepts connections; on failure, its log.
    fn try_launch(
        port: u16,
        dir: &Path,
        persistent: bool,
        tls: Option<&Path>,
        extra: &[String],
    ) -> Result<Child, String> {
        let mut command = Command::new("redis-server");
        command.args(["--bind", "127.0.0.1", "--save", ""]);
        match tls {
            None => command.args(["--port", &port.to_string()]),
            Some(certs) => command
                .args([
                    "--port",
                    "0",
                    "--tls-port",
                    &port.to_string(),
                    "--tls-auth-clients",
                    "no",
                ])
                .arg("--tls-cert-file")
                .arg(certs.join("server.crt"))
                .arg("--tls-key-file")
                .arg(certs.join("server.key"))
                .arg("--tls-ca-cert-file")
                .arg(certs.join("ca.crt"))
                .args(["--user", "default", "off"])
                .args([
                    "--user",
                    TLS_USER.0,
                    "on",
                    &format!(">{}", TLS_USER.1),
                    "~*",
                    "&*",
                    "+@all",
                ]),
        };
        match persistent {
            true => command.args(["--appendonly", "yes", "--appendfsync", "always"]),
            false => command.args(["--appendonly", "no"]),
        };
        command.arg("--dir").arg(dir);
        command.args(extra);
        let mut child = command.stdout(Stdio::piped()).spawn().unwrap_or_else(|e| {
            panic!("cannot start redis-server ({e}): install Redis 7 so that `redis-server` is on PATH")
        });
        // The log, line by line, until redis-server exits. Read to the end, also once it is ready: a
        // full pipe would stop the server at its next log line.
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        // Its own word, not a connection to the port, which could be another test's server. Generous:
        // on a busy machine a start (loading an append-only file, say) can take seconds.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = String::new();
        loop {
            match log.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.contains("Ready to accept connections") => return Ok(child),
                Ok(line) => {
                    seen.push_str(&line);
                    seen.push('\n');
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = child.wait();
                    return Err(seen);
                }
                Err(RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("{seen}(not ready after 60 s)"));
                }
            }
        }
    }

    /// `redis://127.0.0.1:PORT/`, or for a TLS server `rediss://USER:PASSWORD@127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        match &self.tls {
            None => format!("redis://127.0.0.1:{}/", self.port),
            Some(_) => format!("rediss://{}:{}@127.0.0.1:{}/", TLS_USER.0, TLS_USER.1, self.port),
        }
    }

    /// Kill it (SIGKILL, by pid), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kill it (SIGKILL, by pid) through a shared reference, as a crash would: a node of a topology
    /// that tests hold behind an `Arc`. Reaped when dropped.
    pub fn crash(&self) {
        if let Some(pid) = self.pid() {
            let killed = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            assert!(killed.is_ok_and(|s| s.success()), "kill -KILL {pid} failed");
        }
    }

    /// Start it again on the same port (and, if persistent, with the same data).
    pub fn restart(&mut self) {
        assert!(self.tls.is_none(), "restart is for plain servers");
        self.kill();
        *self = Self::launch(Some(self.port), self.dir.take(), None, std::mem::take(&mut self.extra));
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.scratch);
        if let Some(tls) = &self.tls {
            let _ = std::fs::remove_dir_all(&tls.dir);
        }
    }
}

/// A CA, and a server certificate for 127.0.0.1 it signs, in `dir` (`ca.crt`, `server.crt`,
/// `server.key`), made with the `openssl` command.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run openssl ({e}): install OpenSSL so that `openssl` is on PATH"));
        assert!(
            output.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\n",
    )
    .expect("write the extensions file");
    std::fs::write(
        dir.join("ca.ext"),
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n",
    )
    .expect("write the extensions file");
    openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key"]);
    openssl(&[
        "req",
        "-new",
        "-key",
        "ca.key",
        "-subj",
        "/CN=test Redis CA",
        "-out",
        "ca.csr",
    ]);
    openssl(&[
        "x509", "-req", "-in", "ca.csr", "-signkey", "ca.key", "-days", "2", "-extfile", "ca.ext", "-out", "ca.crt",
    ]);
    openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "server.key",
    ]);
    openssl(&[
        "req",
        "-new",
        "-key",
        "server.key",
        "-subj",
        "/CN=127.0.0.1",
        "-out",
        "server.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.crt",
    ]);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}
