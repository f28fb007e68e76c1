//! The aggregation API under `/api/v1`: the policy (show, load, check),
//! the queue of open pools and archive jobs (and flushing pools), and the
//! recorded packages. Reading is open to every user; changes need an
//! administrator.

use super::wire::{self, PackageJson, TapeFileJson};
use crate::body::JsonObject;
use crate::error::ApiError;
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bale_core::Principal;
use bale_util::NsPath;
use serde::{Deserialize, Serialize};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/policy", get(show_policy).put(load_policy))
        .route("/policy/check", get(check_policy))
        .route("/queue", get(queue))
        .route("/queue/flush", post(flush))
        .route("/queue/retry", post(retry))
        .route("/packages", get(packages))
        .route("/packages/{id}", get(package))
}

#[derive(Serialize)]
struct PolicyView {
    origin: String,
    loaded: bale_util::Timestamp,
    rules: Vec<String>,
    source: String,
    /// What is wasteful in it.
    warnings: Vec<String>,
}

fn policy_view(p: &bale_core::archive::LoadedPolicy) -> PolicyView {
    PolicyView {
        origin: p.origin.clone(),
        loaded: p.loaded,
        rules: p.policy.rules.iter().map(|r| r.name.clone()).collect(),
        source: p.policy.source.clone(),
        warnings: p.warnings.clone(),
    }
}

async fn show_policy(State(st): State<AppState>, Extension(who): Extension<Principal>) -> Result<Response, ApiError> {
    let p = st.svc.policy(&who)?;
    Ok(Json(policy_view(&p)).into_response())
}

/// The body is the policy file itself (TOML).
async fn load_policy(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    body: String,
) -> Result<Response, ApiError> {
    let p = st.svc.load_policy(&who, &body)?;
    Ok(Json(policy_view(&p)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckQuery {
    path: String,
    size: u64,
    owner: Option<String>,
    group: Option<String>,
}

async fn check_policy(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<CheckQuery>,
) -> Result<Response, ApiError> {
    let path = NsPath::parse(&q.path)?;
    let owner = q.owner.unwrap_or_else(|| who.user.clone());
    let group = q.group.unwrap_or_else(|| who.group.clone());
    let e = st.svc.policy_check(&who, &path, q.size, &owner, &group).await?;
    Ok(Json(e).into_response())
}

async fn queue(State(st): State<AppState>, Extension(who): Extension<Principal>) -> Result<Response, ApiError> {
    Ok(Json(st.svc.queue(&who).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlushRequest {
    /// One pool's key; none flushes every pool.
    pool: Option<String>,
}

#[derive(Serialize)]
struct Closed {
    job: i64,
    pool: Option<String>,
    files: usize,
    bytes: u64,
}

async fn flush(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonObject(req): JsonObject<FlushRequest>,
) -> Result<Response, ApiError> {
    let jobs = st.svc.flush(&who, req.pool.as_deref()).await?;
    let closed: Vec<Closed> = jobs
        .into_iter()
        .map(|j| Closed {
            job: j.id,
            pool: j.pool,
            files: j.files.len(),
            bytes: j.bytes,
        })
        .collect();
    Ok(Json(closed).into_response())
}

/// `{"job": ID}` retries one failed job, `{"failed": true}` every one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryRequest {
    job: Option<i64>,
    #[serde(default)]
    failed: bool,
}

#[derive(Serialize)]
struct Retried {
    job: i64,
    files: usize,
    bytes: u64,
}

async fn retry(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonObject(req): JsonObject<RetryRequest>,
) -> Result<Response, ApiError> {
    let job = match (req.job, req.failed) {
        (Some(id), false) => Some(id),
        (None, true) => None,
        _ => {
            return Err(ApiError::bad_request(
                "name one job ({\"job\": ID}) or every failed job ({\"failed\": true})",
            ))
        }
    };
    let jobs = st.svc.retry_jobs(&who, job).await?;
    let retried: Vec<Retried> = jobs
        .into_iter()
        .map(|j| Retried {
            job: j.id,
            files: j.files.len(),
            bytes: j.bytes,
        })
        .collect();
    Ok(Json(retried).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PackagesQuery {
    volume: Option<String>,
}

async fn packages(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<PackagesQuery>,
) -> Result<Response, ApiError> {
    Ok(Json(wire::all::<_, TapeFileJson>(
        &st.svc.packages(&who, q.volume.as_deref()).await?,
    ))
    .into_response())
}

async fn package(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(PackageJson::from(&st.svc.package(&who, &id).await?)).into_response())
}
