//! Quotas per storage group under `/api/v1/quotas`: their use (anyone) and
//! setting them (administrators).

use crate::body::JsonObject;
use crate::error::ApiError;
use crate::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::{Extension, Json, Router};
use bale_core::quota::{QuotaChange, QuotaView};
use bale_core::Principal;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/quotas", get(quotas).post(set_quota))
}

async fn quotas(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<Vec<QuotaView>>, ApiError> {
    Ok(Json(st.svc.quotas(&who).await?))
}

/// A change of one storage group's quota: a field left out stays as it
/// is; `null` removes that limit.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaRequest {
    storage_group: String,
    #[serde(default, deserialize_with = "present")]
    bytes: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    files: Option<Value>,
    /// Volumes per library; `null` for a library removes its limit.
    #[serde(default)]
    volumes: BTreeMap<String, Value>,
}

/// A field that is there, null or not (absent: `None` by default).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// A limit: a whole number, or null (no limit).
fn limit(field: &str, v: Option<Value>) -> Result<Option<Option<u64>>, ApiError> {
    match v {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n <= i64::MAX as u64) => Ok(Some(n.as_u64())),
        Some(other) => Err(ApiError::bad_request(format!(
            "{field} must be a whole number from 0 to {}, or null for no limit; not {other}",
            i64::MAX
        ))),
    }
}

async fn set_quota(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonObject(req): JsonObject<QuotaRequest>,
) -> Result<Json<QuotaView>, ApiError> {
    let mut change = QuotaChange {
        bytes: limit("bytes", req.bytes)?,
        files: limit("files", req.files)?,
        volumes: BTreeMap::new(),
    };
    for (lib, v) in req.volumes {
        let n = match limit(&format!("volumes.{lib}"), Some(v))? {
            Some(Some(n)) => Some(
                u32::try_from(n)
                    .map_err(|_| ApiError::bad_request(format!("volumes.{lib} must be at most {}", u32::MAX)))?,
            ),
            _ => None,
        };
        change.volumes.insert(lib, n);
    }
    if change.bytes.is_none() && change.files.is_none() && change.volumes.is_empty() {
        return Err(ApiError::bad_request(
            "a quota change names bytes, files or volumes (null removes a limit)",
        ));
    }
    Ok(Json(st.svc.set_quota(&who, &req.storage_group, &change).await?))
}
