//! The cache under `/api/v1`: its usage, and purging copies of files that
//! are on tape (administrators).

use super::wire::{CacheJson, PurgeJson};
use crate::error::ApiError;
use crate::AppState;
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
    Json(req): Json<PurgeRequest>,
) -> Result<Json<PurgeJson>, ApiError> {
    let paths = req
        .paths
        .iter()
        .map(|p| NsPath::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    let r = st.svc.purge(&who, &paths, req.all, req.dry_run).await?;
    Ok(Json(PurgeJson::from(&r)))
}
