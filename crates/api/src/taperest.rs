//! The WLCG Tape REST API v1 (its reference document, and the gfal2 HTTP
//! plugin as a client): discovery at `/.well-known/wlcg-tape-rest-api`
//! (no auth), the API at `/api/tape/v1`: `stage` (POST; GET, DELETE and
//! `cancel` of a request), `release/{id}`, `archiveinfo`. POSTs are taken
//! with and without a trailing slash; unknown fields and targeted
//! metadata are accepted and ignored; paths are echoed as sent; `error`
//! appears only where there is one; times are seconds since the epoch.

use crate::body::BulkObject;
use crate::error::ApiError;
use crate::origin::Origin;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bale_catalog::{StageRequest, StageState};
use bale_core::Principal;
use bale_util::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;

/// Where the API lives (under the reserved `/api`).
pub(crate) const BASE: &str = "/api/tape/v1";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/stage", post(stage))
        .route("/stage/", post(stage))
        .route("/stage/{id}", get(status).delete(delete))
        .route("/stage/{id}/cancel", post(cancel))
        .route("/release/{id}", post(release))
        .route("/archiveinfo", post(archive_info))
        .route("/archiveinfo/", post(archive_info))
        .fallback(crate::error::not_found)
}

/// `GET /.well-known/wlcg-tape-rest-api`: the endpoint at this host.
/// The URL is the one clients reach bale by (`server.public_url`, or what
/// a trusted proxy says, or this connection's scheme and Host).
pub(crate) async fn discovery(State(st): State<AppState>, Extension(o): Extension<Origin>) -> Json<Value> {
    let c = &st.svc.config().tape_rest;
    Json(json!({
        "sitename": c.sitename,
        "description": c.description,
        "endpoints": [{"uri": format!("{}{BASE}", o.base()), "version": "v1", "metadata": {}}],
    }))
}

#[derive(Deserialize)]
struct StageFile {
    path: String,
    #[serde(rename = "diskLifetime")]
    disk_lifetime: Option<String>,
}

#[derive(Deserialize)]
struct StageBody {
    files: Vec<StageFile>,
}

/// An ISO 8601 duration ("PT1H", "P2D", "P1W") as a std Duration.
fn iso_duration(s: &str) -> Result<Duration, ApiError> {
    let bad = || ApiError::bad_request(format!("diskLifetime {s:?} is not an ISO 8601 duration (e.g. PT1H)"));
    let d = iso8601::duration(s).map_err(|_| bad())?;
    let secs = match d {
        iso8601::Duration::Weeks(w) => w as u64 * 7 * 86_400,
        iso8601::Duration::YMDHMS {
            year,
            month,
            day,
            hour,
            minute,
            second,
            millisecond,
        } => {
            year as u64 * 365 * 86_400
                + month as u64 * 30 * 86_400
                + day as u64 * 86_400
                + hour as u64 * 3600
                + minute as u64 * 60
                + second as u64
                + u64::from(millisecond > 0)
        }
    };
    Ok(Duration::from_secs(secs))
}

/// A stage request's paths and its pin lifetime (the longest asked for;
/// none: the default).
#[doc(hidden)]
pub type StagePaths = (Vec<String>, Option<Duration>);

fn stage_paths(b: StageBody) -> Result<StagePaths, ApiError> {
    if b.files.is_empty() {
        return Err(ApiError::bad_request("a stage request names at least one file"));
    }
    let mut lifetime: Option<Duration> = None;
    for f in &b.files {
        if let Some(l) = &f.disk_lifetime {
            let d = iso_duration(l)?;
            lifetime = Some(lifetime.map_or(d, |x| x.max(d)));
        }
    }
    Ok((b.files.into_iter().map(|f| f.path).collect(), lifetime))
}

/// The Tape REST request bodies parsed as their handlers parse them, for
/// the fuzz targets: a stage request (paths and lifetime) and a path list
/// (cancel, release, archiveinfo). Errors are the handlers' answers.
#[doc(hidden)]
pub fn parse_bodies(body: &[u8]) -> (Result<StagePaths, String>, Result<Vec<String>, String>) {
    let stage = crate::body::parse::<StageBody>(body)
        .and_then(stage_paths)
        .map_err(|e| e.detail);
    let paths = crate::body::parse::<PathsBody>(body)
        .map(|b| b.paths)
        .map_err(|e| e.detail);
    (stage, paths)
}

async fn stage(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(o): Extension<Origin>,
    BulkObject(b): BulkObject<StageBody>,
) -> Result<Response, ApiError> {
    let (paths, lifetime) = stage_paths(b)?;
    let id = st.svc.stage(&who, paths, lifetime).await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("{}{BASE}/stage/{id}", o.base()))],
        Json(json!({ "requestId": id.to_string() })),
    )
        .into_response())
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| {
        let mut e = ApiError::new(StatusCode::NOT_FOUND, format!("no stage request {id:?}"));
        e.retryable = false;
        e
    })
}

fn secs(t: Timestamp) -> i64 {
    t.0.div_euclid(1_000_000_000)
}

/// A request as the reference document gives it: per file its path as
/// sent, its state, `error` only when there is one (gfal2 takes any
/// `error` key, even null, for a failure), `onDisk` once completed.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestJson<'a> {
    id: String,
    created_at: i64,
    started_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    completed_at: Option<i64>,
    files: Vec<FileJson<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FileJson<'a> {
    path: &'a str,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    on_disk: Option<bool>,
}

fn request_json(r: &StageRequest) -> RequestJson<'_> {
    RequestJson {
        id: r.id.to_string(),
        created_at: secs(r.created),
        started_at: secs(r.started.unwrap_or(r.created)),
        completed_at: r.completed.map(secs),
        files: r
            .files
            .iter()
            .map(|f| FileJson {
                path: &f.path,
                state: f.state.as_str(),
                error: f.error.as_deref(),
                started_at: f.started.map(secs),
                finished_at: f.finished.map(secs),
                on_disk: (f.state == StageState::Completed).then_some(true),
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

#[derive(Deserialize)]
struct PathsBody {
    paths: Vec<String>,
}

async fn cancel(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    BulkObject(b): BulkObject<PathsBody>,
) -> Result<StatusCode, ApiError> {
    st.svc.cancel_stage(&who, parse_id(&id)?, Some(&b.paths)).await?;
    Ok(StatusCode::OK)
}

async fn delete(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.svc.delete_stage(&who, parse_id(&id)?).await?;
    Ok(StatusCode::OK)
}

/// gfal2 releases with this id when it has none: release by path.
const PLACEHOLDER: &str = "gfal2-placeholder-id";

async fn release(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    BulkObject(b): BulkObject<PathsBody>,
) -> Result<StatusCode, ApiError> {
    if id == PLACEHOLDER {
        st.svc.release_paths(&who, &b.paths).await?;
    } else {
        st.svc.release_stage(&who, parse_id(&id)?, Some(&b.paths)).await?;
    }
    Ok(StatusCode::OK)
}

async fn archive_info(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    BulkObject(b): BulkObject<PathsBody>,
) -> Result<Json<Vec<Value>>, ApiError> {
    Ok(Json(locality_json(st.svc.archive_info(&who, &b.paths).await?)))
}

/// archiveinfo's answer: per path (as sent) its `locality`, or its `error`
/// (never both). The JSON API answers the same.
pub(crate) fn locality_json(info: Vec<(String, bale_core::Result<bale_core::Locality>)>) -> Vec<Value> {
    info.into_iter()
        .map(|(path, r)| match r {
            Ok(l) => json!({"path": path, "locality": l.as_str()}),
            Err(e) => json!({"path": path, "error": e.to_string()}),
        })
        .collect()
}
