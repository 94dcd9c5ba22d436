//! The authorisation server: token endpoint, revocation, and the registry of issued tokens.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as Extract;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use serde_json::json;

use crate::{Counters, State};

/// All scopes the API knows.
pub(crate) const SCOPES: [&str; 2] = ["tasks.read", "tasks.write"];

/// Who a token speaks for.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    /// The user name, or the client id for client credentials.
    pub subject: String,
    pub client: String,
    pub scopes: Vec<String>,
}

pub(crate) struct AccessToken {
    principal: Arc<Principal>,
    expires: Instant,
}

struct RefreshToken {
    family: u64,
    /// Rotated already: presenting it again is reuse.
    used: bool,
}

/// Every token issued from one login: revoked together.
#[derive(Default)]
struct Family {
    access: Vec<String>,
    refresh: Vec<String>,
}

#[derive(Default)]
pub(crate) struct Tokens {
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
    families: HashMap<u64, (Arc<Principal>, Family)>,
    next_family: u64,
}

impl Tokens {
    /// A new family (one login's tokens) for `principal`.
    pub(crate) fn new_family(&mut self, principal: Principal) -> u64 {
        let family = self.next_family;
        self.next_family += 1;
        self.families.insert(family, (Arc::new(principal), Family::default()));
        family
    }

    pub(crate) fn revoke_family(&mut self, family: u64) -> bool {
        let Some((_, tokens)) = self.families.remove(&family) else {
            return false;
        };
        for token in tokens.access {
            self.access.remove(&token);
        }
        for token in tokens.refresh {
            self.refresh.remove(&token);
        }
        true
    }
}

/// The tokens the server has issued.
#[derive(Default)]
pub(crate) struct Registry {
    tokens: RwLock<Tokens>,
}

impl Registry {
    fn read(&self) -> RwLockReadGuard<'_, Tokens> {
        self.tokens.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Tokens> {
        self.tokens.write().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn refresh_token_is_current(&self, token: &str) -> bool {
        let tokens = self.read();
        tokens
            .refresh
            .get(token)
            .is_some_and(|refresh| !refresh.used && tokens.families.contains_key(&refresh.family))
    }

    /// The principal of a live access token.
    pub(crate) fn check(&self, token: &str) -> Option<Arc<Principal>> {
        let tokens = self.read();
        let access = tokens.access.get(token)?;
        (Instant::now() < access.expires).then(|| access.principal.clone())
    }
}

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/oauth/token", post(token))
        .route("/oauth/revoke", post(revoke))
        .route("/oauth/elsewhere", post(elsewhere))
}

/// Where a redirected token request lands: a client that follows the redirect has sent its
/// credentials here.
async fn elsewhere(Extract(state): Extract<Arc<State>>) -> Response {
    Counters::bump(&state.counters.redirected_token_requests);
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "not a token endpoint")
}

pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({"error": error, "error_description": description});
    let mut response = (status, axum::Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"taskboard\""),
        );
    }
    response
}

pub(crate) fn form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// Client authentication (RFC 6749 section 2.3.1): HTTP Basic with form-encoded parts, or the body.
pub(crate) fn authenticate_client(
    state: &State,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<String, Response> {
    let unauthorised = || {
        oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        )
    };
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .map(|encoded| {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| unauthorised())?;
            let decoded = String::from_utf8(decoded).map_err(|_| unauthorised())?;
            let (id, secret) = decoded.split_once(':').ok_or_else(unauthorised)?;
            let decode = |s: &str| {
                form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Ok::<_, Response>((decode(id).unwrap_or_default(), decode(secret)))
        })
        .transpose()?;
    let (id, secret) = match basic {
        Some(credentials) => credentials,
        None => (
            form.get("client_id").cloned().ok_or_else(unauthorised)?,
            form.get("client_secret").cloned(),
        ),
    };
    let known = state
        .config
        .clients
        .iter()
        .find(|(client, _)| *client == id)
        .ok_or_else(unauthorised)?;
    match (&known.1, secret) {
        (None, _) => Ok(id),
        (Some(expected), Some(given)) if *expected == given => Ok(id),
        _ => Err(unauthorised()),
    }
}

pub(crate) fn requested_scopes(form: &HashMap<String, String>) -> Result<Vec<String>, Response> {
    let Some(scope) = form.get("scope") else {
        return Ok(SCOPES.iter().map(|s| (*s).to_owned()).collect());
    };
    let scopes: Vec<String> = scope.split_whitespace().map(str::to_owned).collect();
    if let Some(unknown) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            &format!("unknown scope {unknown}"),
        ));
    }
    Ok(scopes)
}

async fn token(Extract(state): Extract<Arc<State>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(latency) = state.config.token_latency {
        tokio::time::sleep(latency).await;
    }
    if state.redirect_token_requests.load(std::sync::atomic::Ordering::Relaxed) {
        let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
        response
            .headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static("/oauth/elsewhere"));
        return response;
    }
    let form = form(&body);
    let counters = &state.counters;
    let grant = form.get("grant_type").map(String::as_str).unwrap_or_default();
    match grant {
        "password" => Counters::bump(&counters.password_grants),
        "client_credentials" => Counters::bump(&counters.client_credentials_grants),
        "refresh_token" => Counters::bump(&counters.refresh_grants),
        "authorization_code" => Counters::bump(&counters.authorization_code_grants),
        crate::authorize::DEVICE_CODE_GRANT => Counters::bump(&counters.device_code_grants),
        _ => {}
    }
    let client = match authenticate_client(&state, &headers, &form) {
        Ok(client) => client,
        Err(response) => return response,
    };
    let outcome = match grant {
        "password" => password(&state, &form, client),
        "client_credentials" => client_credentials(&state, &form, client),
        "refresh_token" => refresh(&state, &form, &client),
        "authorization_code" => crate::authorize::redeem_code(&state, &form, client),
        crate::authorize::DEVICE_CODE_GRANT => crate::authorize::redeem_device_code(&state, &form, client),
        _ => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "unsupported grant_type",
        )),
    };
    outcome.unwrap_or_else(|response| response)
}

fn password(state: &State, form: &HashMap<String, String>, client: String) -> Result<Response, Response> {
    let (username, password) = (form.get("username"), form.get("password"));
    let valid = state
        .config
        .users
        .iter()
        .any(|(u, p)| Some(u) == username && Some(p) == password);
    if !valid {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "wrong username or password",
        ));
    }
    let principal = Principal {
        subject: username.cloned().unwrap_or_default(),
        client,
        scopes: requested_scopes(form)?,
    };
    let mut tokens = state.tokens.write();
    let family = tokens.new_family(principal);
    Ok(issue(state, &mut tokens, family, true))
}

fn client_credentials(state: &State, form: &HashMap<String, String>, client: String) -> Result<Response, Response> {
    let confidential = state
        .config
        .clients
        .iter()
        .any(|(id, secret)| *id == client && secret.is_some());
    if !confidential {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "public clients cannot use this grant",
        ));
    }
    let principal = Principal {
        subject: client.clone(),
        client,
        scopes: requested_scopes(form)?,
    };
    let mut tokens = state.tokens.write();
    let family = tokens.new_family(principal);
    // RFC 6749 section 4.4.3: no refresh token for client credentials.
    Ok(issue(state, &mut tokens, family, false))
}

fn refresh(state: &State, form: &HashMap<String, String>, client: &str) -> Result<Response, Response> {
    let counters = &state.counters;
    let rejected = |description: &str| {
        Counters::bump(&counters.refreshes_rejected);
        oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
    };
    let presented = form
        .get("refresh_token")
        .ok_or_else(|| rejected("refresh_token is missing"))?;
    let mut tokens = state.tokens.write();
    let Some(refresh) = tokens.refresh.get(presented) else {
        return Err(rejected("unknown or revoked refresh token"));
    };
    let family = refresh.family;
    if refresh.used {
        // RFC 9700 section 4.14.2: a rotated refresh token presented again means one of the two
        // holders is an attacker; revoke everything issued from this grant.
        Counters::bump(&counters.reused_refresh_tokens);
        if tokens.revoke_family(family) {
            Counters::bump(&counters.families_revoked);
        }
        return Err(rejected("refresh token reused; the session is revoked"));
    }
    let owner = tokens.families.get(&family).map(|(p, _)| p.client.clone());
    if owner.as_deref() != Some(client) {
        return Err(rejected("refresh token was issued to another client"));
    }
    if state.config.rotate_refresh_tokens
        && let Some(refresh) = tokens.refresh.get_mut(presented)
    {
        refresh.used = true;
    }
    if state.config.revoke_access_on_refresh {
        let previous: Vec<String> = tokens
            .families
            .get_mut(&family)
            .map(|(_, f)| std::mem::take(&mut f.access))
            .unwrap_or_default();
        for token in previous {
            tokens.access.remove(&token);
        }
    }
    Counters::bump(&counters.refreshes_accepted);
    // Without rotation no new refresh token is issued: the presented one stays valid (RFC 6749 section 6).
    Ok(issue(state, &mut tokens, family, state.config.rotate_refresh_tokens))
}

/// Issue an access token (and, with `with_refresh`, a refresh token) in `family`.
pub(crate) fn issue(state: &State, tokens: &mut Tokens, family: u64, with_refresh: bool) -> Response {
    let lifetime = state.config.access_token_lifetime;
    let access = format!("at_{}", uuid::Uuid::new_v4().simple());
    let refresh = with_refresh.then(|| format!("rt_{}", uuid::Uuid::new_v4().simple()));
    let Some((principal, issued)) = tokens.families.get_mut(&family) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "the session is revoked");
    };
    let principal = principal.clone();
    issued.access.push(access.clone());
    issued.refresh.extend(refresh.clone());
    let scope = principal.scopes.join(" ");
    tokens.access.insert(
        access.clone(),
        AccessToken {
            principal,
            expires: Instant::now() + lifetime,
        },
    );
    if let Some(refresh) = &refresh {
        tokens
            .refresh
            .insert(refresh.clone(), RefreshToken { family, used: false });
    }
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs_f64().ceil() as u64,
        "scope": scope,
    });
    if let Some(refresh) = refresh {
        body["refresh_token"] = json!(refresh);
    }
    let mut response = axum::Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// RFC 7009: revoking a refresh token revokes its whole grant; an unknown token is not an error.
async fn revoke(Extract(state): Extract<Arc<State>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = form(&body);
    Counters::bump(&state.counters.revocations);
    if let Err(response) = authenticate_client(&state, &headers, &form) {
        return response;
    }
    let Some(token) = form.get("token") else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "token is missing");
    };
    let mut tokens = state.tokens.write();
    if let Some(family) = tokens.refresh.get(token).map(|r| r.family) {
        if tokens.revoke_family(family) {
            Counters::bump(&state.counters.families_revoked);
        }
    } else {
        tokens.access.remove(token);
    }
    StatusCode::OK.into_response()
}
