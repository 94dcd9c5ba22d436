//! The one place every generated request passes (progenitor's `ClientHooks`): attach the token,
//! send, and on a rejected token renew once and send once more.
//!
//! `exec` can only return `reqwest` errors, so a typed failure (session ended, token endpoint down,
//! stream not replayable) travels beside the call instead: [`run`], which every generated forwarder
//! calls, opens a task-local slot; the hooks put the failure there and let the generated code finish
//! with the API's own answer; `run` then returns the typed failure in its place.

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;

use progenitor_client::{ClientHooks, ClientInfo, OperationInfo, ResponseValue};
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Request, Response, StatusCode};

use crate::api;
use crate::challenge;
use crate::error::{AuthError, Error};
use crate::session::Session;

/// How an operation is authorised (generated from the spec's `security`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Never sends a token.
    Public,
    /// Sends the token when there is a session.
    #[allow(
        dead_code,
        reason = "generated only for specs with an optional security requirement"
    )]
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
        Self {
            session: Some(session),
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

impl ClientHooks<Executor> for api::Client {
    /// Attach a token that is good for the skew, renewing it first if it is not.
    async fn pre<E>(
        &self,
        request: &mut Request,
        info: &OperationInfo,
    ) -> Result<(), progenitor_client::Error<E>> {
        let Some(session) = self.inner().session_for(info) else {
            return Ok(());
        };
        match session.token().await {
            Ok(token) => {
                request
                    .headers_mut()
                    .insert(AUTHORIZATION, token.header().clone());
                Ok(())
            }
            Err(error) => {
                fail(Failure::Auth(error));
                Err(progenitor_client::Error::Custom(
                    "no access token; see oauth_sdk::Error".into(),
                ))
            }
        }
    }

    /// Send; if the API rejects the token, renew it (once for all requests that saw the same token)
    /// and send the request once more, unless its body is a stream that cannot be replayed.
    async fn exec(&self, request: Request, info: &OperationInfo) -> reqwest::Result<Response> {
        let http = self.client();
        let Some(session) = self.inner().session_for(info) else {
            return http.execute(request).await;
        };
        let sent = request.headers().get(AUTHORIZATION).cloned();
        let replay = request.try_clone();

        let response = http.execute(request).await?;
        if !rejects_token(&session.config().triggers, &response) {
            return Ok(response);
        }
        let token = match session.rejected(sent.as_ref()).await {
            Ok(token) => token,
            Err(error) => {
                fail(Failure::Auth(error));
                return Ok(response);
            }
        };
        let Some(mut replay) = replay else {
            fail(Failure::NotRetried(response.status()));
            return Ok(response);
        };
        tracing::debug!(status = %response.status(), operation = info.operation_id, "token rejected; sending again");
        replay
            .headers_mut()
            .insert(AUTHORIZATION, token.header().clone());
        http.execute(replay).await
    }
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

/// A typed failure, reported beside the generated call.
enum Failure {
    Auth(AuthError),
    NotRetried(StatusCode),
}

tokio::task_local! {
    static FAILURE: Cell<Option<Failure>>;
}

fn fail(failure: Failure) {
    // Outside `run` there is no caller to tell; the generated code then returns the API's answer.
    let _ = FAILURE.try_with(|slot| slot.set(Some(failure)));
}

/// Run a generated call, returning a typed failure the hooks reported in place of its outcome.
pub(crate) async fn run<T, E>(
    call: impl Future<Output = Result<ResponseValue<T>, progenitor_client::Error<E>>>,
) -> Result<ResponseValue<T>, Error<E>> {
    FAILURE
        .scope(Cell::new(None), async {
            let outcome = call.await;
            match FAILURE.try_with(Cell::take).ok().flatten() {
                Some(Failure::Auth(error)) => Err(error.into()),
                Some(Failure::NotRetried(status)) => Err(Error::NotRetried { status }),
                None => outcome.map_err(Error::from),
            }
        })
        .await
}
