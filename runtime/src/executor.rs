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
//! `UnexpectedResponse` holds a response): `exec` puts it on the API's answer, and `post`, which
//! progenitor calls before it reads the status, turns that answer into an `UnexpectedResponse`
//! carrying the report; `pre` returns one directly. `run` turns the report into the caller's typed
//! error, or calls the typed method once more.
//!
//! The generated code implements `ClientHooks` for progenitor's client with one line per hook, each
//! calling the function of the same name here.
//!
//! Sending again from `run`, by calling the typed method again, means no request has to be cloned up
//! front in case it is rejected: the hot path pays nothing for the retry it rarely needs.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use progenitor_client::{OperationInfo, ResponseValue};
use reqwest::header::{AUTHORIZATION, HeaderValue, WWW_AUTHENTICATE};
use reqwest::{Request, Response, StatusCode};
use tracing::Instrument;

use crate::challenge;
use crate::error::{AuthError, Error};
use crate::metrics::Counters;
use crate::session::Session;

/// How an operation is authorised (from the spec's `security`).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Never sends a token.
    Public,
    /// Sends the token when there is a session.
    Optional,
    /// Sends the token; only reachable through `Authenticated`.
    Required,
}

/// Which attempt at a call the generated client makes, and so what a rejected token leads to.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The first, of a call that can be sent again: renew, and send again.
    First,
    /// The first and only, of a call whose body is a stream: renew, and report the status.
    Only,
    /// The resend after a renewal: the API's answer stands.
    Resend,
}

/// progenitor's client's inner value: the session, if logged in, the attempt, and how the API's
/// operations are authorised.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct Executor {
    session: Option<Arc<Session>>,
    attempt: Attempt,
    access: fn(&str) -> Access,
    /// The calls' own timeout, replacing the HTTP client's (`with_timeout`).
    timeout: Option<Duration>,
}

impl Executor {
    /// The executor of a logged-out client, whose operations are authorised as `access` says.
    pub(crate) fn logged_out(access: fn(&str) -> Access, timeout: Option<Duration>) -> Self {
        Self {
            session: None,
            attempt: Attempt::First,
            access,
            timeout,
        }
    }

    /// The executor of a session's attempt.
    pub(crate) fn logged_in(
        session: Arc<Session>,
        attempt: Attempt,
        access: fn(&str) -> Access,
        timeout: Option<Duration>,
    ) -> Self {
        Self {
            session: Some(session),
            attempt,
            access,
            timeout,
        }
    }

    /// The session to authorise this operation with, if any.
    fn session_for(&self, info: &OperationInfo) -> Option<&Arc<Session>> {
        match (self.access)(info.operation_id) {
            Access::Public => None,
            Access::Optional | Access::Required => self.session.as_ref(),
        }
    }
}

/// progenitor's `ClientHooks::pre`: attach a token that is good for the skew, renewing it first if
/// it is not; set the call's own timeout, if it has one.
#[doc(hidden)]
pub async fn pre<E>(
    executor: &Executor,
    request: &mut Request,
    info: &OperationInfo,
) -> Result<(), progenitor_client::Error<E>> {
    if executor.timeout.is_some() {
        *request.timeout_mut() = executor.timeout;
    }
    let Some(session) = executor.session_for(info) else {
        return Ok(());
    };
    match session.token().await {
        Ok(token) => {
            request.headers_mut().insert(AUTHORIZATION, token.header().clone());
            Counters::bump(&session.counters().requests);
            Ok(())
        }
        Err(error) => Err(Report::Failed(error).into_error(StatusCode::OK)),
    }
}

/// progenitor's `ClientHooks::exec`: send; once answered (or dropped), start the renewal `pre` found
/// due, if any; if the API rejects the token, renew it (once for all requests that saw the same
/// token) and put on the answer whether [`run`] should send the call once more. Each attempt runs
/// in a `call` span (DEBUG) with the operation id, the attempt and the status; a renewal it starts
/// runs in its `renewal` span inside it.
///
/// The request goes into reqwest's (small, boxed) future before this one is made, so every call's
/// future need not hold the request too.
#[doc(hidden)]
pub fn exec(
    executor: &Executor,
    http: &reqwest::Client,
    request: Request,
    info: &OperationInfo,
) -> impl Future<Output = reqwest::Result<Response>> + Send {
    let session = executor.session_for(info);
    let attempt = executor.attempt;
    let span = tracing::debug_span!(
        "call",
        operation = info.operation_id,
        ?attempt,
        status = tracing::field::Empty
    );
    let sent = session.and_then(|_| request.headers().get(AUTHORIZATION).cloned());
    let sending = http.execute(request);
    // Made before the future, so that a call dropped even before it is polled lets a renewal start.
    let answered = Answered(session);
    async move {
        let response = sending.await;
        drop(answered);
        let response = response?;
        tracing::Span::current().record("status", response.status().as_u16());
        match session {
            Some(session) if attempt != Attempt::Resend && rejects_token(&session.config().triggers, &response) => {
                // Boxed: the rare path's state stays out of every call's future.
                Ok(Box::pin(rejected(session, attempt, sent, response, info)).await)
            }
            _ => Ok(response),
        }
    }
    .instrument(span)
}

/// Tells the session that a call has its answer, or never will, when dropped: the renewal the call
/// found due, if any, starts then (`Session::call_answered`).
struct Answered<'a>(Option<&'a Arc<Session>>);

impl Drop for Answered<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.0 {
            session.call_answered();
        }
    }
}

/// progenitor's `ClientHooks::post`, which runs before the generated code reads the status: an
/// answer that carries a [`Report`] becomes an error carrying it, so no status the spec types can
/// swallow it, and [`run`] acts on it.
#[doc(hidden)]
pub async fn post<E>(result: &reqwest::Result<Response>) -> Result<(), progenitor_client::Error<E>> {
    match result
        .as_ref()
        .ok()
        .and_then(|r| Some((r.extensions().get::<Report>()?, r.status())))
    {
        Some((report, status)) => Err(report.clone().into_error(status)),
        None => Ok(()),
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
enum Report {
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

    /// This report as the error progenitor's generated code returns: an empty answer with the
    /// API's status, carrying it.
    fn into_error<E>(self, status: StatusCode) -> progenitor_client::Error<E> {
        let mut empty = http::Response::new(Vec::<u8>::new());
        *empty.status_mut() = status;
        progenitor_client::Error::UnexpectedResponse(self.on(Response::from(empty)))
    }
}

type Outcome<T, E> = Result<ResponseValue<T>, progenitor_client::Error<E>>;

/// Run a generated call: once, or, if the hooks report that its token was rejected and renewed, twice.
/// A typed failure the hooks report takes the place of the call's outcome.
#[doc(hidden)]
pub async fn run<T, E, F>(resendable: bool, call: impl Fn(Attempt) -> F) -> Result<ResponseValue<T>, Error<E>>
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
#[doc(hidden)]
pub enum Upload {
    /// A body that was in memory.
    Buffered(Bytes),
    /// Behind a mutex, not a `Cell`: the call's future holds the upload across its awaits, and must
    /// stay `Send` so that it can be spawned.
    Stream(Mutex<Option<reqwest::Body>>),
}

impl Upload {
    /// Keep `body`, as bytes if it has them.
    pub fn new(body: impl Into<reqwest::Body>) -> Self {
        let body = body.into();
        match body.as_bytes() {
            Some(bytes) => Upload::Buffered(Bytes::copy_from_slice(bytes)),
            None => Upload::Stream(Mutex::new(Some(body))),
        }
    }

    /// Whether the call can be sent twice.
    pub fn is_resendable(&self) -> bool {
        matches!(self, Upload::Buffered(_))
    }

    /// The body to send (a stream only the first time; `run` never asks twice for one).
    pub fn body(&self) -> reqwest::Body {
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
