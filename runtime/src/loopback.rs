//! The redirect of a command-line or desktop application (RFC 8252 section 7.3): an HTTP listener on
//! `127.0.0.1`, on a port the system chooses, that takes the authorization server's callback for one
//! pending login and shows the user a page saying they can close the window. Connections are served
//! concurrently, so an idle one (a browser's preconnect) does not hold up the callback, and a request
//! without the pending login's `state` (another local program, a web page probing the port) is
//! answered 400 and does not end the wait.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::authorization_code::{PendingLogin, carries_state};
use crate::error::{AuthorizationError, Error};

/// How long the generated `login_authorization_code_loopback` waits for the user, by default.
pub const DEFAULT_LOOPBACK_TIMEOUT: Duration = Duration::from_secs(300);

/// The most of a callback request the listener reads.
const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// How long one connection may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

const PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>Signed in</title></head>\
<body><p>The sign-in has reached the application. You can close this window.</p></body></html>";

const NOT_WAITED_FOR: &str = "This is not the sign-in the application is waiting for.";

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

    /// Listen on `addr` (port 0: the system chooses) for callbacks to `path`: for a provider that
    /// registers redirect URIs with their port. `addr` must be a loopback address (RFC 8252
    /// section 8.3): a listener on the network would let others bring callbacks.
    pub async fn bind_to(addr: SocketAddr, path: &str) -> Result<Self, Error> {
        if !addr.ip().is_loopback() {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{addr} is not a loopback address"),
            )));
        }
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

    /// Wait, for at most `timeout`, for the browser to bring the callback of `pending` (the login
    /// whose authorization request named this redirect URI); answer it with a page telling the user
    /// to close the window, and return the callback's query, for the generated
    /// `login_authorization_code`. Other requests (a browser's `/favicon.ico`, a callback without
    /// `pending`'s `state`) get 404 or 400 and do not end the wait.
    pub async fn wait(self, pending: &PendingLogin, timeout: Duration) -> Result<String, Error> {
        let mut connections = FuturesUnordered::new();
        let callback = async {
            loop {
                tokio::select! {
                    accepted = self.listener.accept() => {
                        let (stream, _) = accepted.map_err(io)?;
                        connections.push(answer(stream, &self.path, pending));
                    }
                    Some(Some(query)) = connections.next(), if !connections.is_empty() => return Ok(query),
                }
            }
        };
        match tokio::time::timeout(timeout, callback).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Error::Authorization(AuthorizationError::Timeout(timeout))),
        }
    }
}

/// Read one request and answer it; the callback's query if it is a `GET` of the redirect path with
/// the pending login's `state`.
async fn answer(mut stream: TcpStream, path: &str, pending: &PendingLogin) -> Option<String> {
    let target = tokio::time::timeout(READ_TIMEOUT, request_target(&mut stream))
        .await
        .ok()
        .flatten();
    let callback = target.and_then(|target| {
        let (at, query) = target.split_once('?').unwrap_or((&target, ""));
        (at == path).then(|| query.to_owned())
    });
    let (query, response) = match callback {
        Some(query) if carries_state(&query, pending) => {
            let page = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
                 Cache-Control: no-store\r\nConnection: close\r\n\r\n{PAGE}",
                PAGE.len()
            );
            (Some(query), page)
        }
        Some(_) => {
            let page = format!(
                "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{NOT_WAITED_FOR}",
                NOT_WAITED_FOR.len()
            );
            (None, page)
        }
        None => (
            None,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned(),
        ),
    };
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
    query
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
    use crate::authorization_code::{RequestParts, request};

    /// A pending login for `redirect_uri`, and its state.
    fn pending(redirect_uri: &str) -> (PendingLogin, String) {
        let endpoint = url::Url::parse("https://id.example.com/authorize").unwrap();
        let (_, pending) = request(RequestParts {
            endpoint: &endpoint,
            client_id: "app",
            redirect_uri,
            scopes: Vec::new(),
            parameters: &[],
            allow_http: false,
        })
        .unwrap()
        .into_parts();
        let state = serde_json::to_value(&pending).unwrap()["state"]
            .as_str()
            .unwrap()
            .to_owned();
        (pending, state)
    }

    async fn get(addr: &str, path: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn only_the_pending_login_s_callback_ends_the_wait() {
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
        let (pending, state) = pending(&uri);
        let waiting = tokio::spawn(async move { loopback.wait(&pending, Duration::from_secs(60)).await });
        // An idle connection (a browser's preconnect) holds nothing up.
        let _idle = TcpStream::connect(&addr).await.unwrap();
        assert!(get(&addr, "/favicon.ico").await.starts_with("HTTP/1.1 404"));
        let probe = get(&addr, "/callback?code=c&state=guess").await;
        assert!(
            probe.starts_with("HTTP/1.1 400") && probe.contains("not the sign-in"),
            "{probe}"
        );
        let page = get(&addr, &format!("/callback?code=c&state={state}")).await;
        assert!(
            page.starts_with("HTTP/1.1 200") && page.contains("close this window"),
            "{page}"
        );
        assert_eq!(waiting.await.unwrap().unwrap(), format!("code=c&state={state}"));
    }

    #[tokio::test(start_paused = true)]
    async fn no_callback_is_a_timeout() {
        let loopback = LoopbackRedirect::bind().await.unwrap();
        let (pending, _) = pending(loopback.redirect_uri());
        match loopback.wait(&pending, Duration::from_secs(5)).await {
            Err(Error::Authorization(AuthorizationError::Timeout(t))) => assert_eq!(t, Duration::from_secs(5)),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn only_loopback_addresses_are_listened_on() {
        let anywhere = SocketAddr::from(([0, 0, 0, 0], 0));
        assert!(matches!(
            LoopbackRedirect::bind_to(anywhere, "/cb").await,
            Err(Error::Authorization(AuthorizationError::Loopback(_)))
        ));
        let fixed = LoopbackRedirect::bind_to(SocketAddr::from(([127, 0, 0, 1], 0)), "cb")
            .await
            .unwrap();
        assert!(fixed.redirect_uri().ends_with("/cb"));
    }
}
