//! The one place every generated request passes (progenitor's `ClientHooks`): attach the token,
//! send, and on a rejected token renew once and send once more.
//!
//! Every generated forwarder calls [`run`] with a closure that makes the typed call on the generated
//! client for an [`Attempt`]: the first, the only one (a streamed body cannot be sent twice), or the
//! resend after a renewal. The attempt is part of the client's [`Executor`], so `exec` knows whether a
//! rejected token calls for a renewal and a resend, or whether the API's answer stands.
//!
//! When the token was rejected, or none could be had, the hooks tell `run` with a [`Report`] carried in
//! the extensions of a `reqwest::Response` (progenitor's errors hold only its own types, and
//! `UnexpectedResponse` holds a response): `exec` puts it on the API's answer, which the generated
//! code then hands back unread (codegen's `rewrite` gives every status `match` a first arm for it);
//! `pre` puts it on an empty one. `run` turns the report into the caller's typed error, or calls the
//! typed method once more.
//!
//! Sending again from `run`, by calling the typed method again, means no request has to be cloned up
//! front in case it is rejected: the hot path pays nothing for the retry it rarely needs.

use std::future::Future;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use progenitor_client::{ClientHooks, ClientInfo, OperationInfo, ResponseValue};
use reqwest::header::{AUTHORIZATION, HeaderValue, WWW_AUTHENTICATE};
use reqwest::{Request, Response, StatusCode};

use crate::api;
use crate::challenge;
use crate::error::{AuthError, Error};
use crate::metrics::Counters;
use crate::session::Session;

/// How an operation is authorised (generated from the spec's `security`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code, reason = "which variants the generated table uses depends on the spec")]
pub(crate) enum Access {
    /// Never sends a token.
    Public,
    /// Sends the token when there is a session.
    Optional,
    /// Sends the token; only reachable through `Authenticated`.
    Required,
}

/// Which attempt at a call the generated client makes, and so what a rejected token leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// The first, of a call that can be sent again: renew, and send again.
    First,
    /// The first and only, of a call whose body is a stream: renew, and report the status.
    Only,
    /// The resend after a renewal: the API's answer stands.
    Resend,
}

/// The generated client's inner value: the session, if logged in, and the attempt.
#[derive(Debug, Clone)]
pub(crate) struct Executor {
    session: Option<Arc<Session>>,
    attempt: Attempt,
}

impl Executor {
    pub(crate) fn logged_out() -> Self {
        Self {
            session: None,
            attempt: Attempt::First,
        }
    }

    /// The session to authorise this operation with, if any.
    fn session_for(&self, info: &OperationInfo) -> Option<&Arc<Session>> {
        match api::operation_access(info.operation_id) {
            Access::Public => None,
            Access::Optional | Access::Required => self.session.as_ref(),
        }
    }
}

/// A logged-in session's generated client, once per [`Attempt`] (they differ only in their
/// [`Executor`]). Cheap to clone.
#[derive(Clone)]
pub(crate) struct Attempts(Arc<[api::Client; 3]>);

impl Attempts {
    pub(crate) fn new(base_url: &str, http: &reqwest::Client, session: &Arc<Session>) -> Self {
        let client = |attempt| {
            let executor = Executor {
                session: Some(session.clone()),
                attempt,
            };
            api::Client::new_with_client(base_url, http.clone(), executor)
        };
        Self(Arc::new([
            client(Attempt::First),
            client(Attempt::Only),
            client(Attempt::Resend),
        ]))
    }

    pub(crate) fn get(&self, attempt: Attempt) -> &api::Client {
        &self.0[attempt as usize]
    }
}

impl ClientHooks<Executor> for api::Client {
    /// Attach a token that is good for the skew, renewing it first if it is not.
    async fn pre<E>(&self, request: &mut Request, info: &OperationInfo) -> Result<(), progenitor_client::Error<E>> {
        let Some(session) = self.inner().session_for(info) else {
            return Ok(());
        };
        match session.token().await {
            Ok(token) => {
                request.headers_mut().insert(AUTHORIZATION, token.header().clone());
                Counters::bump(&session.counters().requests);
                Ok(())
            }
            Err(error) => Err(progenitor_client::Error::UnexpectedResponse(
                Report::Failed(error).on(Response::from(http::Response::new(Vec::<u8>::new()))),
            )),
        }
    }

    /// Send; if the API rejects the token, renew it (once for all requests that saw the same token)
    /// and report whether [`run`] should send the call once more.
    ///
    /// The request goes into reqwest's (small, boxed) future before this one is made, so every call's
    /// future need not hold the request too.
    fn exec(&self, request: Request, info: &OperationInfo) -> impl Future<Output = reqwest::Result<Response>> {
        let session = self.inner().session_for(info);
        let attempt = self.inner().attempt;
        let sent = session.and_then(|_| request.headers().get(AUTHORIZATION).cloned());
        let sending = self.client().execute(request);
        async move {
            let response = sending.await?;
            match session {
                Some(session) if attempt != Attempt::Resend && rejects_token(&session.config().triggers, &response) => {
                    // Boxed: the rare path's state stays out of every call's future.
                    Ok(Box::pin(rejected(session, attempt, sent, response, info)).await)
                }
                _ => Ok(response),
            }
        }
    }
}

/// The API rejected the token of a first attempt: renew it, and put on the API's answer what `run` is
/// to do.
async fn rejected(
    session: &Arc<Session>,
    attempt: Attempt,
    sent: Option<HeaderValue>,
    response: Response,
    info: &OperationInfo,
) -> Response {
    let report = match session.rejected(sent.as_ref()).await {
        Err(error) => Report::Failed(error),
        Ok(_) if attempt == Attempt::First => {
            Counters::bump(&session.counters().resent);
            Report::SendAgain
        }
        Ok(_) => Report::NotRetried(response.status()),
    };
    tracing::debug!(status = %response.status(), operation = info.operation_id, ?report, "access token rejected");
    report.on(response)
}

/// A trigger status, unless the API says the token lacks a scope (RFC 6750): renewing cannot help.
fn rejects_token(triggers: &[StatusCode], response: &Response) -> bool {
    triggers.contains(&response.status())
        && !challenge::is_insufficient_scope(
            response
                .headers()
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .map(|v| v.as_bytes()),
        )
}

/// What the hooks made of an attempt, for [`run`].
#[derive(Debug, Clone)]
pub(crate) enum Report {
    /// No token could be had.
    Failed(AuthError),
    /// The token was rejected and has been renewed: send the call again.
    SendAgain,
    /// The token was rejected and has been renewed, but the body cannot be sent twice.
    NotRetried(StatusCode),
}

impl Report {
    /// `response`, carrying this report.
    fn on(self, mut response: Response) -> Response {
        response.extensions_mut().insert(self);
        response
    }

    /// Whether `response` carries a report: if so, the generated code must hand it back unread.
    pub(crate) fn is_on(response: &Response) -> bool {
        response.extensions().get::<Report>().is_some()
    }
}

type Outcome<T, E> = Result<ResponseValue<T>, progenitor_client::Error<E>>;

/// Run a generated call: once, or, if the hooks report that its token was rejected and renewed, twice.
/// A typed failure the hooks report takes the place of the call's outcome.
pub(crate) async fn run<T, E, F>(resendable: bool, call: impl Fn(Attempt) -> F) -> Result<ResponseValue<T>, Error<E>>
where
    F: Future<Output = Outcome<T, E>>,
{
    let first = if resendable { Attempt::First } else { Attempt::Only };
    let report = match call(first).await {
        Err(progenitor_client::Error::UnexpectedResponse(mut response)) => match response.extensions_mut().remove() {
            Some(report) => report,
            None => return Err(progenitor_client::Error::UnexpectedResponse(response).into()),
        },
        outcome => return outcome.map_err(Error::from),
    };
    match report {
        Report::SendAgain => call(Attempt::Resend).await.map_err(|e| match e {
            progenitor_client::Error::UnexpectedResponse(mut response) => match response.extensions_mut().remove() {
                // `pre` could not have a token for the resend.
                Some(Report::Failed(error)) => error.into(),
                _ => progenitor_client::Error::UnexpectedResponse(response).into(),
            },
            other => other.into(),
        }),
        Report::Failed(error) => Err(error.into()),
        Report::NotRetried(status) => Err(Error::NotRetried { status }),
    }
}

/// A request body given by value, kept so the call can be sent again: a buffered body is kept as
/// bytes (copied once); a stream can be sent only once.
#[allow(
    dead_code,
    reason = "used by generated forwarders of operations with a raw body, if the spec has any"
)]
pub(crate) enum Upload {
    Buffered(Bytes),
    /// Behind a mutex, not a `Cell`: the call's future holds the upload across its awaits, and must
    /// stay `Send` so that it can be spawned.
    Stream(Mutex<Option<reqwest::Body>>),
}

#[allow(
    dead_code,
    reason = "used by generated forwarders of operations with a raw body, if the spec has any"
)]
impl Upload {
    pub(crate) fn new(body: impl Into<reqwest::Body>) -> Self {
        let body = body.into();
        match body.as_bytes() {
            Some(bytes) => Upload::Buffered(Bytes::copy_from_slice(bytes)),
            None => Upload::Stream(Mutex::new(Some(body))),
        }
    }

    pub(crate) fn is_resendable(&self) -> bool {
        matches!(self, Upload::Buffered(_))
    }

    /// The body to send (a stream only the first time; `run` never asks twice for one).
    pub(crate) fn body(&self) -> reqwest::Body {
        match self {
            Upload::Buffered(bytes) => reqwest::Body::from(bytes.clone()),
            Upload::Stream(body) => body
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take()
                .unwrap_or_else(|| reqwest::Body::from(Bytes::new())),
        }
    }
}
