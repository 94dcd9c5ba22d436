//! The Taskboard API of `openapi/taskboard.json`, in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State as Extract};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::State;
use crate::oauth::Principal;

#[derive(Debug, Clone, Serialize)]
struct Project {
    id: String,
    name: String,
    description: Option<String>,
    created_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum TaskStatus {
    Todo,
    Doing,
    Done,
}

#[derive(Debug, Clone, Serialize)]
struct Task {
    id: String,
    project_id: String,
    title: String,
    status: TaskStatus,
}

#[derive(Deserialize)]
struct NewProject {
    name: String,
    description: Option<String>,
}

#[derive(Deserialize)]
struct NewTask {
    title: String,
    status: Option<TaskStatus>,
}

#[derive(Deserialize)]
struct TaskPatch {
    title: Option<String>,
    status: Option<TaskStatus>,
}

#[derive(Deserialize)]
struct PageQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

#[derive(Deserialize)]
struct TaskQuery {
    status: Option<TaskStatus>,
}

#[derive(Default)]
struct Records {
    projects: Vec<Project>,
    tasks: Vec<Task>,
    attachments: HashMap<String, u64>,
    next_id: u64,
}

impl Records {
    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{}", self.next_id)
    }
}

/// The API's state.
#[derive(Default)]
pub(crate) struct Data {
    records: Mutex<Records>,
}

impl Data {
    fn lock(&self) -> MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) fn routes(state: Arc<State>) -> Router<Arc<State>> {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/me", get(me))
        .route("/v1/projects", get(list_projects).post(create_project))
        .route("/v1/projects/{project_id}", get(get_project))
        .route("/v1/projects/{project_id}/tasks", get(list_tasks).post(create_task))
        .route(
            "/v1/tasks/{task_id}",
            axum::routing::patch(update_task).delete(delete_task),
        )
        .route("/v1/tasks/{task_id}/attachment", put(put_attachment))
        .route_layer(middleware::from_fn_with_state(state, latency_and_count))
}

/// Delay by the configured latency, and count every API response by status.
async fn latency_and_count(Extract(state): Extract<Arc<State>>, request: Request, next: Next) -> Response {
    if let Some(latency) = state.config.api_latency {
        tokio::time::sleep(latency).await;
    }
    let response = next.run(request).await;
    state.counters.api_status(response.status().as_u16());
    response
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(json!({"error": code, "message": message}))).into_response()
}

/// RFC 6750: the bearer token, if it is live and has `scope`.
fn authorize(state: &State, headers: &HeaderMap, scope: &str) -> Result<Arc<Principal>, Response> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let Some(principal) = presented.and_then(|token| state.tokens.check(token)) else {
        let challenge = match presented {
            Some(_) => r#"Bearer realm="taskboard", error="invalid_token", error_description="expired or revoked""#,
            None => r#"Bearer realm="taskboard""#,
        };
        let mut response = error(
            state.config.invalid_token_status,
            "invalid_token",
            "the access token is missing, expired or revoked",
        );
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        return Err(response);
    };
    if !principal.scopes.iter().any(|s| s == scope) {
        let mut response = error(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            &format!("needs scope {scope}"),
        );
        let challenge = format!(r#"Bearer realm="taskboard", error="insufficient_scope", scope="{scope}""#);
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        return Err(response);
    }
    Ok(principal)
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| error(StatusCode::BAD_REQUEST, "invalid_body", &e.to_string()))
}

fn not_found(what: &str) -> Response {
    error(StatusCode::NOT_FOUND, "not_found", &format!("no such {what}"))
}

type Answer = Result<Response, Response>;

async fn health() -> Response {
    axum::Json(json!({"status": "ok", "version": "1.0.0"})).into_response()
}

async fn me(Extract(state): Extract<Arc<State>>, headers: HeaderMap) -> Answer {
    let principal = authorize(&state, &headers, "tasks.read")?;
    Ok(axum::Json(json!({
        "id": format!("user-{}", principal.subject),
        "username": principal.subject,
        "display_name": null,
        "scopes": principal.scopes,
    }))
    .into_response())
}

async fn list_projects(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
) -> Answer {
    authorize(&state, &headers, "tasks.read")?;
    let limit = query.limit.unwrap_or(20).clamp(1, 100) as usize;
    let start = match query.cursor.as_deref().map(str::parse::<usize>) {
        None => 0,
        Some(Ok(start)) => start,
        Some(Err(_)) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "invalid_cursor",
                "cursor is not one this server gave",
            ));
        }
    };
    let records = state.data.lock();
    let items: Vec<_> = records.projects.iter().skip(start).take(limit).cloned().collect();
    let next = start + items.len();
    let next_cursor = (next < records.projects.len()).then(|| next.to_string());
    Ok(axum::Json(json!({"items": items, "next_cursor": next_cursor})).into_response())
}

async fn create_project(Extract(state): Extract<Arc<State>>, headers: HeaderMap, body: Bytes) -> Answer {
    authorize(&state, &headers, "tasks.write")?;
    let new: NewProject = json_body(&body)?;
    if new.name.is_empty() {
        return Err(error(StatusCode::BAD_REQUEST, "invalid_body", "name must not be empty"));
    }
    let mut records = state.data.lock();
    let project = Project {
        id: records.id("prj"),
        name: new.name,
        description: new.description,
        created_at: chrono::Utc::now().to_rfc3339(),
    };
    records.projects.push(project.clone());
    Ok((StatusCode::CREATED, axum::Json(project)).into_response())
}

async fn get_project(Extract(state): Extract<Arc<State>>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    authorize(&state, &headers, "tasks.read")?;
    let records = state.data.lock();
    let project = records
        .projects
        .iter()
        .find(|p| p.id == id)
        .ok_or_else(|| not_found("project"))?;
    Ok(axum::Json(project.clone()).into_response())
}

async fn list_tasks(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    Path(project): Path<String>,
    Query(query): Query<TaskQuery>,
) -> Answer {
    authorize(&state, &headers, "tasks.read")?;
    let records = state.data.lock();
    if !records.projects.iter().any(|p| p.id == project) {
        return Err(not_found("project"));
    }
    let items: Vec<_> = records
        .tasks
        .iter()
        .filter(|t| t.project_id == project && query.status.is_none_or(|s| s == t.status))
        .cloned()
        .collect();
    Ok(axum::Json(json!({"items": items})).into_response())
}

async fn create_task(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    Path(project): Path<String>,
    body: Bytes,
) -> Answer {
    authorize(&state, &headers, "tasks.write")?;
    let new: NewTask = json_body(&body)?;
    let mut records = state.data.lock();
    if !records.projects.iter().any(|p| p.id == project) {
        return Err(not_found("project"));
    }
    let task = Task {
        id: records.id("tsk"),
        project_id: project,
        title: new.title,
        status: new.status.unwrap_or(TaskStatus::Todo),
    };
    records.tasks.push(task.clone());
    Ok((StatusCode::CREATED, axum::Json(task)).into_response())
}

async fn update_task(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
    authorize(&state, &headers, "tasks.write")?;
    let patch: TaskPatch = json_body(&body)?;
    let mut records = state.data.lock();
    let task = records
        .tasks
        .iter_mut()
        .find(|t| t.id == id)
        .ok_or_else(|| not_found("task"))?;
    if let Some(title) = patch.title {
        task.title = title;
    }
    if let Some(status) = patch.status {
        task.status = status;
    }
    Ok(axum::Json(task.clone()).into_response())
}

async fn delete_task(Extract(state): Extract<Arc<State>>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    authorize(&state, &headers, "tasks.write")?;
    let mut records = state.data.lock();
    let before = records.tasks.len();
    records.tasks.retain(|t| t.id != id);
    if records.tasks.len() == before {
        return Err(not_found("task"));
    }
    records.attachments.remove(&id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn put_attachment(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
    authorize(&state, &headers, "tasks.write")?;
    let mut records = state.data.lock();
    if !records.tasks.iter().any(|t| t.id == id) {
        return Err(not_found("task"));
    }
    let size = body.len() as u64;
    records.attachments.insert(id.clone(), size);
    Ok(axum::Json(json!({"task_id": id, "size": size})).into_response())
}
