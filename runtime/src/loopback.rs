//! The redirect of a command-line or desktop application (RFC 8252 section 7.3): a one-request HTTP
//! listener on `127.0.0.1`, on a port the system chooses, that takes the authorization server's
//! callback and shows the user a page saying they can close the window.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::error::{AuthorizationError, Error};

/// How long the generated `login_authorization_code_loopback` waits for the user, by default.
pub const DEFAULT_LOOPBACK_TIMEOUT: Duration = Duration::from_secs(300);

/// The most of a callback request the listener reads.
const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// How long one connection may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

const PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>Signed in</title></head>\
<body><p>The sign-in has reached the application. You can close this window.</p></body></html>";

/// A loopback redirect: bind it, put its [`redirect_uri`](Self::redirect_uri) in the authorization
/// request, send the user to the request's URL, and [`wait`](Self::wait) for the callback.
///
/// The generated `login_authorization_code_loopback` does all of this; use the type directly to
/// choose the port (a provider that registers exact redirect URIs) or to keep the pending login.
#[derive(Debug)]
pub struct LoopbackRedirect {
    listener: TcpListener,
    redirect_uri: String,
    path: String,
}

impl LoopbackRedirect {
    /// Listen on `127.0.0.1`, on a port the system chooses, for `http://127.0.0.1:PORT/callback`.
    pub async fn bind() -> Result<Self, Error> {
        Self::bind_to(SocketAddr::from(([127, 0, 0, 1], 0)), "/callback").await
    }

    /// Listen on `addr` (port 0: the system chooses) for callbacks to `path`.
    pub async fn bind_to(addr: SocketAddr, path: &str) -> Result<Self, Error> {
        let listener = TcpListener::bind(addr).await.map_err(io)?;
        let addr = listener.local_addr().map_err(io)?;
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        Ok(Self {
            listener,
            redirect_uri: format!("http://{addr}{path}"),
            path,
        })
    }

    /// The redirect URI to name in the authorization request.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Wait, for at most `timeout`, for the browser to bring the callback; answer it with a page
    /// telling the user to close the window, and return the callback's query (for the generated
    /// `login_authorization_code`). Requests for other paths (a browser's `/favicon.ico`) get 404
    /// and do not end the wait.
    pub async fn wait(self, timeout: Duration) -> Result<String, Error> {
        let callback = async {
            loop {
                let (stream, _) = self.listener.accept().await.map_err(io)?;
                if let Some(query) = self.answer(stream).await {
                    return Ok(query);
                }
            }
        };
        match tokio::time::timeout(timeout, callback).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Error::Authorization(AuthorizationError::Timeout(timeout))),
        }
    }

    /// Read one request; the callback's query if it is a `GET` of the redirect path.
    async fn answer(&self, mut stream: TcpStream) -> Option<String> {
        let target = tokio::time::timeout(READ_TIMEOUT, request_target(&mut stream))
            .await
            .ok()
            .flatten();
        let query = target.and_then(|target| {
            let (path, query) = target.split_once('?').unwrap_or((&target, ""));
            (path == self.path).then(|| query.to_owned())
        });
        let response = match &query {
            Some(_) => format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
                 Cache-Control: no-store\r\nConnection: close\r\n\r\n{PAGE}",
                PAGE.len()
            ),
            None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned(),
        };
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
        query
    }
}

/// The target of a `GET` request (`/callback?code=...`), read up to the end of its headers.
async fn request_target(stream: &mut TcpStream) -> Option<String> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 || buffer.len() + read > MAX_REQUEST_BYTES {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    let line = buffer.split(|&b| b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    match (parts.next(), parts.next()) {
        (Some("GET"), Some(target)) => Some(target.to_owned()),
        _ => None,
    }
}

fn io(error: std::io::Error) -> Error {
    Error::Authorization(AuthorizationError::Loopback(Arc::new(error)))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: &str, path: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn the_callback_is_answered_and_its_query_returned_other_paths_are_not() {
        let loopback = LoopbackRedirect::bind().await.unwrap();
        let uri = loopback.redirect_uri().to_owned();
        assert!(
            uri.starts_with("http://127.0.0.1:") && uri.ends_with("/callback"),
            "{uri}"
        );
        let addr = uri
            .trim_start_matches("http://")
            .trim_end_matches("/callback")
            .to_owned();
        let waiting = tokio::spawn(loopback.wait(Duration::from_secs(60)));
        assert!(get(&addr, "/favicon.ico").await.starts_with("HTTP/1.1 404"));
        let page = get(&addr, "/callback?code=c&state=s").await;
        assert!(
            page.starts_with("HTTP/1.1 200") && page.contains("close this window"),
            "{page}"
        );
        assert_eq!(waiting.await.unwrap().unwrap(), "code=c&state=s");
    }

    #[tokio::test(start_paused = true)]
    async fn no_callback_is_a_timeout() {
        let loopback = LoopbackRedirect::bind().await.unwrap();
        match loopback.wait(Duration::from_secs(5)).await {
            Err(Error::Authorization(AuthorizationError::Timeout(t))) => assert_eq!(t, Duration::from_secs(5)),
            other => panic!("{other:?}"),
        }
    }
}
