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
    tls: Option<Tls>,
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
        Self::launch(free_port(), None)
    }

    /// Start one that persists to `dir` (append-only file), so that it comes back from
    /// [`restart`](Self::restart) with its data.
    pub fn start_persistent(dir: &Path) -> Self {
        Self::launch(free_port(), Some(dir.to_owned()))
    }

    /// Start one that speaks only TLS (`rediss://`), with a certificate for 127.0.0.1 signed by a
    /// certificate authority made for it ([`ca_pem`](Self::ca_pem)), and only the ACL user
    /// [`TLS_USER`]. Needs `openssl` on PATH to make the certificates.
    pub fn start_tls() -> Self {
        let dir = std::env::temp_dir().join(format!("redis-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        make_certificates(&dir);
        let ca_pem = std::fs::read(dir.join("ca.crt")).expect("the CA certificate");
        let port = free_port();
        let mut server = Self::launch_with(port, None, Some(&dir));
        server.tls = Some(Tls { dir, ca_pem });
        server
    }

    /// The PEM certificate of the authority that signed a [`start_tls`](Self::start_tls) server's
    /// certificate.
    pub fn ca_pem(&self) -> &[u8] {
        self.tls.as_ref().map(|t| t.ca_pem.as_slice()).unwrap_or_default()
    }

    fn launch(port: u16, dir: Option<PathBuf>) -> Self {
        Self::launch_with(port, dir, None)
    }

    fn launch_with(port: u16, dir: Option<PathBuf>, tls: Option<&Path>) -> Self {
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
            tls: None,
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

    /// Start it again on the same port (and, if persistent, with the same data).
    pub fn restart(&mut self) {
        assert!(self.tls.is_none(), "restart is for plain servers");
        self.kill();
        *self = Self::launch(self.port, self.dir.take());
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
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
