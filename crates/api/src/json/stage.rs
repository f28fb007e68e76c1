//! Stage requests under `/api/v1/stage`: bulk staging of any number of
//! files, their progress, cancel, release of their pins. Only the
//! requester or an administrator may see or change a request.

use crate::error::ApiError;
use crate::model::rfc3339;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bale_catalog::StageRequest;
use bale_core::Principal;
use serde::Deserialize;
use serde_json::{json, Value};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/stage", post(create))
        .route("/stage/{id}", get(status).delete(delete))
        .route("/stage/{id}/progress", get(progress))
        .route("/stage/{id}/cancel", post(cancel))
        .route("/stage/{id}/release", post(release))
        .layer(axum::extract::DefaultBodyLimit::max(crate::BULK_BODY_LIMIT))
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
    Json(b): Json<StageBody>,
) -> Result<Response, ApiError> {
    let lifetime = b.lifetime_s.map(std::time::Duration::from_secs);
    let id = st.svc.stage(&who, &b.paths, lifetime).await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/v1/stage/{id}"))],
        Json(json!({ "id": id })),
    )
        .into_response())
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::bad_request(format!("{id:?} is not a stage request id")))
}

/// The wire form of a request: per file its state, error only when there is one.
fn request_json(r: &StageRequest) -> Value {
    let t = |t: Option<bale_util::Timestamp>| t.map(rfc3339);
    let files: Vec<Value> = r
        .files
        .iter()
        .map(|f| {
            let mut v = json!({"path": f.path, "state": f.state.as_str()});
            if let Some(e) = &f.error {
                v["error"] = json!(e);
            }
            if let Some(s) = f.started {
                v["startedAt"] = json!(rfc3339(s));
            }
            if let Some(s) = f.finished {
                v["finishedAt"] = json!(rfc3339(s));
            }
            v
        })
        .collect();
    let count = |s: &str| r.files.iter().filter(|f| f.state.as_str() == s).count();
    json!({
        "id": r.id,
        "owner": r.owner,
        "createdAt": rfc3339(r.created),
        "startedAt": t(r.started),
        "completedAt": t(r.completed),
        "lifetime_s": r.lifetime_s,
        "counts": {
            "SUBMITTED": count("SUBMITTED"), "STARTED": count("STARTED"), "COMPLETED": count("COMPLETED"),
            "FAILED": count("FAILED"), "CANCELLED": count("CANCELLED"),
        },
        "files": files,
    })
}

async fn status(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(request_json(&st.svc.stage_status(&who, parse_id(&id)?).await?)))
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
    Json(b): Json<PathsBody>,
) -> Result<Json<Value>, ApiError> {
    let n = st.svc.cancel_stage(&who, parse_id(&id)?, b.paths.as_deref()).await?;
    Ok(Json(json!({ "cancelled": n })))
}

async fn release(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    Json(b): Json<PathsBody>,
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
