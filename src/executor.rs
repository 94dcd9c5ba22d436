//! The one place every generated request passes (progenitor's `ClientHooks`): attach the token,
//! send, and on a rejected token renew once and send once more.
//!
//! Every generated forwarder calls [`run`] with a closure that makes the typed call. `run` opens a
//! task-local [`Attempt`] around it; the hooks report there what the API's answer means: the token was
//! rejected and has been renewed (send again), or a typed failure (session ended, token endpoint down,
//! a stream that cannot be sent twice). `exec` can only return `reqwest` errors, so this is also how
//! a typed failure reaches the caller: the generated code finishes with the API's own answer, and
//! `run` returns the reported failure in its place.
//!
//! Sending again from `run`, by calling the typed method once more, means no request has to be cloned
//! up front in case it is rejected: the hot path pays nothing for the retry it rarely needs.

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;

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

/// The generated client's inner value: the session, if logged in.
#[derive(Debug, Clone)]
pub(crate) struct Executor {
    session: Option<Arc<Session>>,
}

impl Executor {
    pub(crate) fn logged_out() -> Self {
        Self { session: None }
    }

    pub(crate) fn logged_in(session: Arc<Session>) -> Self {
        Self { session: Some(session) }
    }

    /// The session to authorise this operation with, if any.
    fn session_for(&self, info: &OperationInfo) -> Option<&Arc<Session>> {
        match api::operation_access(info.operation_id) {
            Access::Public => None,
            Access::Optional | Access::Required => self.session.as_ref(),
        }
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
            Err(error) => {
                report_failure(error);
                Err(progenitor_client::Error::Custom(
                    "no access token; see oauth_sdk::Error".into(),
                ))
            }
        }
    }

    /// Send; if the API rejects the token, renew it (once for all requests that saw the same token)
    /// and have [`run`] send the call once more, unless its body is a stream that cannot be replayed.
    ///
    /// The request goes into reqwest's (small, boxed) future before this one is made, so every call's
    /// future need not hold the request too.
    fn exec(&self, request: Request, info: &OperationInfo) -> impl Future<Output = reqwest::Result<Response>> {
        let session = self.inner().session_for(info);
        let sent = session.and_then(|_| request.headers().get(AUTHORIZATION).cloned());
        let sending = self.client().execute(request);
        async move {
            let response = sending.await?;
            match session {
                Some(session) if rejects_token(&session.config().triggers, &response) => {
                    // Boxed: the rare path's state stays out of every call's future.
                    Box::pin(rejected(session, sent, response, info)).await
                }
                _ => Ok(response),
            }
        }
    }
}

/// The API rejected the token: renew it and tell `run` whether to send the call again. The API's answer
/// is returned as it is; `run` decides what the caller sees.
async fn rejected(
    session: &Arc<Session>,
    sent: Option<HeaderValue>,
    response: Response,
    info: &OperationInfo,
) -> reqwest::Result<Response> {
    let Ok((first, resendable)) = ATTEMPT.try_with(|a| (a.first, a.resendable)) else {
        return Ok(response);
    };
    if !first {
        // The one resend was rejected too: the API's answer stands.
        return Ok(response);
    }
    let report = match session.rejected(sent.as_ref()).await {
        Err(error) => Report::Failed(error),
        Ok(_) if resendable => {
            Counters::bump(&session.counters().resent);
            Report::SendAgain
        }
        Ok(_) => Report::NotRetried(response.status()),
    };
    tracing::debug!(status = %response.status(), operation = info.operation_id, ?report, "access token rejected");
    let _ = ATTEMPT.try_with(|a| a.report.set(Some(Box::new(report))));
    Ok(response)
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

/// What the hooks made of one attempt.
#[derive(Debug)]
enum Report {
    /// No token could be had.
    Failed(AuthError),
    /// The token was rejected and has been renewed: send the call again.
    SendAgain,
    /// The token was rejected and has been renewed, but the body cannot be sent twice.
    NotRetried(StatusCode),
}

/// One attempt at a call, as the hooks see it. Kept to two words: the task-local is swapped in and
/// out on every poll, and a report is rare.
struct Attempt {
    first: bool,
    resendable: bool,
    report: Cell<Option<Box<Report>>>,
}

tokio::task_local! {
    static ATTEMPT: Attempt;
}

fn report_failure(error: AuthError) {
    // Outside `run` there is no caller to tell; the generated code then returns the API's answer.
    let _ = ATTEMPT.try_with(|a| a.report.set(Some(Box::new(Report::Failed(error)))));
}

type Outcome<T, E> = Result<ResponseValue<T>, progenitor_client::Error<E>>;

/// Run a generated call: once, or, if the hooks say its token was rejected and renewed, twice. A
/// typed failure the hooks report takes the place of the call's outcome.
pub(crate) async fn run<T, E, F>(resendable: bool, call: impl Fn() -> F) -> Result<ResponseValue<T>, Error<E>>
where
    F: Future<Output = Outcome<T, E>>,
{
    let (outcome, report) = attempt(true, resendable, call()).await;
    let (outcome, report) = match report.as_deref() {
        Some(Report::SendAgain) => attempt(false, false, call()).await,
        _ => (outcome, report),
    };
    match report.map(|r| *r) {
        Some(Report::Failed(error)) => Err(error.into()),
        Some(Report::NotRetried(status)) => Err(Error::NotRetried { status }),
        Some(Report::SendAgain) | None => outcome.map_err(Error::from),
    }
}

async fn attempt<T, E>(
    first: bool,
    resendable: bool,
    call: impl Future<Output = Outcome<T, E>>,
) -> (Outcome<T, E>, Option<Box<Report>>) {
    let attempt = Attempt {
        first,
        resendable,
        report: Cell::new(None),
    };
    ATTEMPT
        .scope(attempt, async {
            (call.await, ATTEMPT.try_with(|a| a.report.take()).ok().flatten())
        })
        .await
}

/// A request body given by value, kept so the call can be sent again: a buffered body is kept as
/// bytes (copied once); a stream can be sent only once.
#[allow(
    dead_code,
    reason = "used by generated forwarders of operations with a raw body, if the spec has any"
)]
pub(crate) enum Upload {
    Buffered(Bytes),
    Stream(Cell<Option<reqwest::Body>>),
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
            None => Upload::Stream(Cell::new(Some(body))),
        }
    }

    pub(crate) fn is_resendable(&self) -> bool {
        matches!(self, Upload::Buffered(_))
    }

    /// The body to send (a stream only the first time; `run` never asks twice for one).
    pub(crate) fn body(&self) -> reqwest::Body {
        match self {
            Upload::Buffered(bytes) => reqwest::Body::from(bytes.clone()),
            Upload::Stream(body) => body.take().unwrap_or_else(|| reqwest::Body::from(Bytes::new())),
        }
    }
}
