//! The cache under `/api/v1`: its usage, purging copies of files that are
//! on tape (administrators), and pins.

use super::wire::{CacheJson, PinJson, PurgeJson};
use crate::body::{BulkObject, JsonObject};
use crate::error::ApiError;
use crate::AppState;
use axum::extract::Query;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bale_core::Principal;
use bale_util::NsPath;
use serde::Deserialize;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/cache", get(usage))
        .route("/cache/purge", post(purge))
        .route("/pins", get(pins).post(pin))
        .route("/pins/release", post(unpin))
        .route("/fsck", post(fsck))
        .route("/archiveinfo", post(archive_info))
}

async fn usage(State(st): State<AppState>, Extension(who): Extension<Principal>) -> Result<Json<CacheJson>, ApiError> {
    Ok(Json(CacheJson::from(&st.svc.cache_usage(&who).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeRequest {
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    all: bool,
    #[serde(default)]
    dry_run: bool,
}

async fn purge(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonObject(req): JsonObject<PurgeRequest>,
) -> Result<Json<PurgeJson>, ApiError> {
    let r = st.svc.purge(&who, &paths(&req.paths)?, req.all, req.dry_run).await?;
    Ok(Json(PurgeJson::from(&r)))
}

fn paths(p: &[String]) -> Result<Vec<NsPath>, ApiError> {
    Ok(p.iter().map(|p| NsPath::parse(p)).collect::<Result<Vec<_>, _>>()?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PinRequest {
    paths: Vec<String>,
    /// Seconds.
    lifetime_s: u64,
    owner: Option<String>,
}

async fn pin(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonObject(req): JsonObject<PinRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let lifetime = std::time::Duration::from_secs(req.lifetime_s);
    let n = st
        .svc
        .pin(&who, &paths(&req.paths)?, lifetime, req.owner.as_deref())
        .await?;
    Ok(Json(serde_json::json!({ "pinned": n })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnpinRequest {
    paths: Vec<String>,
    owner: Option<String>,
}

async fn unpin(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonObject(req): JsonObject<UnpinRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let n = st.svc.unpin(&who, &paths(&req.paths)?, req.owner.as_deref()).await?;
    Ok(Json(serde_json::json!({ "released": n })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PinsQuery {
    path: String,
}

async fn pins(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<PinsQuery>,
) -> Result<Json<Vec<PinJson>>, ApiError> {
    let path = NsPath::parse(&q.path)?;
    Ok(Json(
        st.svc.pins(&who, &path).await?.iter().map(PinJson::from).collect(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ArchiveInfoRequest {
    paths: Vec<String>,
}

/// Per path its `locality`, or its `error` (the path echoed as sent).
async fn archive_info(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    BulkObject(req): BulkObject<ArchiveInfoRequest>,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    let info = st.svc.archive_info(&who, &req.paths).await?;
    Ok(Json(crate::taperest::locality_json(info)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FsckRequest {
    /// Make the repairs (default: report the plan only).
    #[serde(default)]
    repair: bool,
    /// Read and checksum every cached file's data too.
    #[serde(default)]
    checksums: bool,
}

async fn fsck(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonObject(r): JsonObject<FsckRequest>,
) -> Result<Json<bale_core::fsck::FsckReport>, ApiError> {
    Ok(Json(st.svc.fsck(&who, r.repair, r.checksums).await?))
}
