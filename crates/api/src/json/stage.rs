//! Stage requests under `/api/v1/stage`: bulk staging of any number of
//! files, their progress, cancel, release of their pins. Only the
//! requester or an administrator may see or change a request.

use crate::body::BulkObject;
use crate::error::ApiError;
use crate::model::rfc3339;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bale_catalog::{StageRequest, StageState};
use bale_core::Principal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/stage", post(create))
        .route("/stage/{id}", get(status).delete(delete))
        .route("/stage/{id}/progress", get(progress))
        .route("/stage/{id}/cancel", post(cancel))
        .route("/stage/{id}/release", post(release))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StageBody {
    paths: Vec<String>,
    /// Seconds the staged files stay pinned (default: a day).
    lifetime_s: Option<u64>,
}

async fn create(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(o): Extension<crate::origin::Origin>,
    BulkObject(b): BulkObject<StageBody>,
) -> Result<Response, ApiError> {
    let lifetime = b.lifetime_s.map(std::time::Duration::from_secs);
    let id = st.svc.stage(&who, b.paths, lifetime).await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("{}/api/v1/stage/{id}", o.base()))],
        Json(json!({ "id": id })),
    )
        .into_response())
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::bad_request(format!("{id:?} is not a stage request id")))
}

/// The wire form of a request: per file its state, error only when there
/// is one; times as RFC 3339.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestJson<'a> {
    id: i64,
    owner: &'a str,
    created_at: String,
    started_at: Option<String>,
    completed_at: Option<String>,
    #[serde(rename = "lifetime_s")]
    lifetime_s: u64,
    counts: Counts,
    files: Vec<FileJson<'a>>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "UPPERCASE")]
struct Counts {
    submitted: usize,
    started: usize,
    completed: usize,
    failed: usize,
    cancelled: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FileJson<'a> {
    path: &'a str,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<String>,
}

fn request_json(r: &StageRequest) -> RequestJson<'_> {
    let mut counts = Counts::default();
    for f in &r.files {
        *match f.state {
            StageState::Submitted => &mut counts.submitted,
            StageState::Started => &mut counts.started,
            StageState::Completed => &mut counts.completed,
            StageState::Failed => &mut counts.failed,
            StageState::Cancelled => &mut counts.cancelled,
        } += 1;
    }
    RequestJson {
        id: r.id,
        owner: &r.owner,
        created_at: rfc3339(r.created),
        started_at: r.started.map(rfc3339),
        completed_at: r.completed.map(rfc3339),
        lifetime_s: r.lifetime_s,
        counts,
        files: r
            .files
            .iter()
            .map(|f| FileJson {
                path: &f.path,
                state: f.state.as_str(),
                error: f.error.as_deref(),
                started_at: f.started.map(rfc3339),
                finished_at: f.finished.map(rfc3339),
            })
            .collect(),
    }
}

async fn status(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let r = st.svc.stage_status(&who, parse_id(&id)?).await?;
    Ok(Json(request_json(&r)).into_response())
}

/// Files, bytes, packages and volumes done, and the time left from the
/// timing model (`modelled_s_left`: what a real library of these media
/// takes; `time_left_s`: what this one takes at its time scale).
async fn progress(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let p = st.svc.stage_progress(&who, parse_id(&id)?).await?;
    Ok(Json(json!({
        "id": parse_id(&id)?,
        "files": p.files,
        "files_done": p.files_done,
        "files_failed": p.files_failed,
        "files_cancelled": p.files_cancelled,
        "bytes": p.bytes,
        "bytes_done": p.bytes_done,
        "packages": p.packages,
        "packages_done": p.packages_done,
        "volumes": p.volumes,
        "volumes_done": p.volumes_done,
        "mounts_left": p.mounts_left,
        "modelled_s_left": p.modelled_s_left,
        "time_left_s": p.wall_s_left,
    })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PathsBody {
    paths: Option<Vec<String>>,
}

async fn cancel(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    BulkObject(b): BulkObject<PathsBody>,
) -> Result<Json<Value>, ApiError> {
    let n = st.svc.cancel_stage(&who, parse_id(&id)?, b.paths.as_deref()).await?;
    Ok(Json(json!({ "cancelled": n })))
}

async fn release(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    BulkObject(b): BulkObject<PathsBody>,
) -> Result<Json<Value>, ApiError> {
    let n = st.svc.release_stage(&who, parse_id(&id)?, b.paths.as_deref()).await?;
    Ok(Json(json!({ "released": n })))
}

async fn delete(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.svc.delete_stage(&who, parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
