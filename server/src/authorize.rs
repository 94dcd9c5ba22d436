//! The logins that start at the authorization server rather than at the token endpoint: the
//! authorization endpoint (authorization code with PKCE, RFC 6749 section 4.1 and RFC 7636) and device
//! authorization (RFC 8628). The "user" is the first configured user, who approves at once unless
//! [`Server::deny_logins`](crate::Server::deny_logins) is on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State as Extract};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::oauth::{Principal, authenticate_client, form, issue, oauth_error, requested_scopes};
use crate::{Counters, State};

/// RFC 8628 section 3.4's grant type.
pub(crate) const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// What `slow_down` adds to a device code's interval (RFC 8628 section 3.5).
const SLOW_DOWN: Duration = Duration::from_secs(5);

/// An authorization code, bound to what its redemption must repeat.
struct Code {
    principal: Principal,
    redirect_uri: String,
    challenge: String,
    expires: Instant,
    /// Redeemed already: presenting it again revokes the tokens it was redeemed for (RFC 6749
    /// section 4.1.2).
    redeemed: Option<u64>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Decision {
    Pending,
    Approved,
    Denied,
}

struct Device {
    client: String,
    scopes: Vec<String>,
    user_code: String,
    expires: Instant,
    interval: Duration,
    last_poll: Option<Instant>,
    decision: Decision,
}

/// The codes the server has handed out.
#[derive(Default)]
pub(crate) struct Grants {
    codes: Mutex<HashMap<String, Code>>,
    /// By device code.
    devices: Mutex<HashMap<String, Device>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/oauth/authorize", get(authorize))
        .route("/oauth/device_authorization", post(device_authorization))
        .route("/device", get(verify_device))
}

fn random(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// A page for the user, not a redirect: what an authorization server shows when it cannot trust the
/// redirect URI (RFC 6749 section 4.1.2.1).
fn page(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text.to_owned(),
    )
        .into_response()
}

/// `redirect_uri` with `params` added to its query.
fn redirect(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        query.append_pair(name, value);
    }
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    let location = format!("{redirect_uri}{separator}{}", query.finish());
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Whether `given` is a redirect URI registered for the server: exactly, or for a loopback one on
/// any port (RFC 8252 section 7.3).
fn registered(state: &State, given: &str) -> bool {
    let Ok(uri) = given.parse::<axum::http::Uri>() else {
        return false;
    };
    let loopback = matches!(uri.host(), Some("127.0.0.1" | "[::1]" | "localhost"));
    state.config.redirect_uris.iter().any(|registered| {
        let Ok(registered) = registered.parse::<axum::http::Uri>() else {
            return false;
        };
        registered.scheme() == uri.scheme()
            && registered.host() == uri.host()
            && registered.path_and_query() == uri.path_and_query()
            && (loopback || registered.port_u16() == uri.port_u16())
    })
}

async fn authorize(Extract(state): Extract<Arc<State>>, Query(query): Query<HashMap<String, String>>) -> Response {
    let param = |name: &str| query.get(name).map(String::as_str);
    let Some(client) = param("client_id").filter(|id| state.config.clients.iter().any(|(c, _)| c == id)) else {
        return page(StatusCode::BAD_REQUEST, "unknown client_id");
    };
    let Some(redirect_uri) = param("redirect_uri").filter(|uri| registered(&state, uri)) else {
        return page(StatusCode::BAD_REQUEST, "redirect_uri is not registered");
    };
    let back = |params: &[(&str, &str)]| {
        let mut params = params.to_vec();
        params.extend(param("state").map(|s| ("state", s)));
        params.push(("iss", &state.issuer));
        redirect(redirect_uri, &params)
    };
    let refuse = |error: &str, description: &str| back(&[("error", error), ("error_description", description)]);
    if param("response_type") != Some("code") {
        return refuse("unsupported_response_type", "only response_type=code");
    }
    let (Some(challenge), Some("S256")) = (param("code_challenge"), param("code_challenge_method")) else {
        return refuse("invalid_request", "PKCE with S256 is required");
    };
    // RFC 7636 section 4.2: base64url of a SHA-256 digest is 43 characters.
    if challenge.len() != 43 {
        return refuse("invalid_request", "code_challenge is not an S256 challenge");
    }
    let scopes = match requested_scopes(&query) {
        Ok(scopes) => scopes,
        Err(_) => return refuse("invalid_scope", "unknown scope"),
    };
    if state.deny_logins.load(std::sync::atomic::Ordering::Relaxed) {
        return refuse("access_denied", "the user declined");
    }
    let code = random("ac_");
    let principal = Principal {
        subject: state.config.users.first().map(|(u, _)| u.clone()).unwrap_or_default(),
        client: client.to_owned(),
        scopes,
    };
    lock(&state.grants.codes).insert(
        code.clone(),
        Code {
            principal,
            redirect_uri: redirect_uri.to_owned(),
            challenge: challenge.to_owned(),
            expires: Instant::now() + state.config.authorization_code_lifetime,
            redeemed: None,
        },
    );
    back(&[("code", &code)])
}

/// The authorization-code grant: the code once, by its client, with its redirect URI and verifier.
pub(crate) fn redeem_code(state: &State, form: &HashMap<String, String>, client: String) -> Result<Response, Response> {
    let refused = |description: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description);
    let presented = form.get("code").ok_or_else(|| refused("code is missing"))?;
    let mut codes = lock(&state.grants.codes);
    let code = codes.get_mut(presented).ok_or_else(|| refused("unknown code"))?;
    if let Some(family) = code.redeemed {
        Counters::bump(&state.counters.codes_replayed);
        if state.tokens.write().revoke_family(family) {
            Counters::bump(&state.counters.families_revoked);
        }
        return Err(refused(
            "the code was already used; the tokens issued for it are revoked",
        ));
    }
    // Whatever happens next, the code is spent: a wrong verifier cannot be retried.
    code.redeemed = Some(u64::MAX);
    if Instant::now() >= code.expires {
        return Err(refused("the code has expired"));
    }
    if code.principal.client != client {
        return Err(refused("the code was issued to another client"));
    }
    if form.get("redirect_uri") != Some(&code.redirect_uri) {
        return Err(refused("redirect_uri does not match the authorization request's"));
    }
    let verifier = form
        .get("code_verifier")
        .ok_or_else(|| refused("code_verifier is missing"))?;
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != code.challenge {
        return Err(refused("code_verifier does not match the code_challenge"));
    }
    let mut tokens = state.tokens.write();
    let family = tokens.new_family(code.principal.clone());
    code.redeemed = Some(family);
    Ok(issue(state, &mut tokens, family, true))
}

async fn device_authorization(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form = form(&body);
    let client = match authenticate_client(&state, &headers, &form) {
        Ok(client) => client,
        Err(response) => return response,
    };
    let scopes = match requested_scopes(&form) {
        Ok(scopes) => scopes,
        Err(response) => return response,
    };
    let device_code = random("dc_");
    let user_code = uuid::Uuid::new_v4().simple().to_string()[..8].to_uppercase();
    let lifetime = state.config.device_code_lifetime;
    let interval = state.config.device_interval;
    lock(&state.grants.devices).insert(
        device_code.clone(),
        Device {
            client,
            scopes,
            user_code: user_code.clone(),
            expires: Instant::now() + lifetime,
            interval,
            last_poll: None,
            decision: Decision::Pending,
        },
    );
    let verification_uri = format!("{}/device", state.issuer);
    let body = serde_json::json!({
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": verification_uri,
        "verification_uri_complete": format!("{verification_uri}?user_code={user_code}"),
        "expires_in": lifetime.as_secs(),
        "interval": interval.as_secs(),
    });
    axum::Json(body).into_response()
}

/// The verification page: the user (signed in as the demo user) approves the code, or declines it
/// with `deny=1` or while [`Server::deny_logins`](crate::Server::deny_logins) is on.
async fn verify_device(Extract(state): Extract<Arc<State>>, Query(query): Query<HashMap<String, String>>) -> Response {
    let Some(user_code) = query.get("user_code") else {
        return page(StatusCode::BAD_REQUEST, "user_code is missing");
    };
    let deny = query.contains_key("deny") || state.deny_logins.load(std::sync::atomic::Ordering::Relaxed);
    let mut devices = lock(&state.grants.devices);
    let Some(device) = devices
        .values_mut()
        .find(|d| d.user_code.eq_ignore_ascii_case(user_code) && d.decision == Decision::Pending)
    else {
        return page(StatusCode::NOT_FOUND, "no pending login has this code");
    };
    device.decision = if deny { Decision::Denied } else { Decision::Approved };
    page(
        StatusCode::OK,
        if deny {
            "Declined."
        } else {
            "Approved: return to your device."
        },
    )
}

/// The device-code grant: `authorization_pending` until the user decides, `slow_down` for a poll
/// sooner than the interval (and, with `device_slow_down`, for the first poll), then the tokens once.
pub(crate) fn redeem_device_code(
    state: &State,
    form: &HashMap<String, String>,
    client: String,
) -> Result<Response, Response> {
    let error = |code: &str, description: &str| oauth_error(StatusCode::BAD_REQUEST, code, description);
    let presented = form
        .get("device_code")
        .ok_or_else(|| error("invalid_request", "device_code is missing"))?;
    let mut devices = lock(&state.grants.devices);
    let device = devices
        .get_mut(presented)
        .ok_or_else(|| error("invalid_grant", "unknown device code"))?;
    if device.client != client {
        return Err(error("invalid_grant", "the device code was issued to another client"));
    }
    let now = Instant::now();
    if now >= device.expires {
        devices.remove(presented);
        return Err(error("expired_token", "the device code has expired"));
    }
    let too_soon = device.last_poll.is_some_and(|last| now < last + device.interval);
    let first_slowed = state.config.device_slow_down && device.last_poll.is_none();
    device.last_poll = Some(now);
    if too_soon || first_slowed {
        device.interval += SLOW_DOWN;
        Counters::bump(&state.counters.device_slow_downs);
        return Err(error("slow_down", "poll less often"));
    }
    match device.decision {
        Decision::Pending => Err(error("authorization_pending", "the user has not decided yet")),
        Decision::Denied => {
            devices.remove(presented);
            Err(error("access_denied", "the user declined"))
        }
        Decision::Approved => {
            let principal = Principal {
                subject: state.config.users.first().map(|(u, _)| u.clone()).unwrap_or_default(),
                client,
                scopes: device.scopes.clone(),
            };
            devices.remove(presented);
            let mut tokens = state.tokens.write();
            let family = tokens.new_family(principal);
            Ok(issue(state, &mut tokens, family, true))
        }
    }
}
