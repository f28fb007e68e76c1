//! The tape admin API under `/api/v1`: volumes, drives, libraries, the
//! event log, alarms and fault injection. Who may do what is declared in
//! the core (`bale_core::admin`); this only translates HTTP.

use super::wire::{self, AlarmJson, DriveJson, EventJson, LibraryJson, TapeFileJson, VolumeJson, VolumeStatus};
use crate::body::{JsonObject, NoBody};
use crate::error::ApiError;
use crate::model::{AddVolumes, SetState};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bale_catalog::VolumeState;
use bale_core::admin::FaultPoint;
use bale_core::Principal;
use serde::{Deserialize, Serialize};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/volumes", get(volumes).post(add_volumes))
        .route("/volumes/{label}", get(volume))
        .route("/volumes/{label}/state", post(set_volume_state))
        .route("/drives", get(drives))
        .route("/drives/{name}/{action}", post(drive_action))
        .route("/libraries", get(libraries))
        .route("/tape/events", get(events))
        .route("/tape/faults", post(inject))
        .route("/alarms", get(alarms))
        .route("/alarms/{id}/ack", post(ack_alarm))
        .route("/verify", post(verify))
}

/// `POST /api/v1/verify`: exactly one of `volume`, `package`, `cache`;
/// `rate` a byte size a second ("50 MB"; "0 B": no limit).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyRequest {
    volume: Option<String>,
    package: Option<String>,
    #[serde(default)]
    cache: bool,
    /// Bytes a second (0: no limit).
    rate: Option<u64>,
}

async fn verify(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonObject(r): JsonObject<VerifyRequest>,
) -> Result<Json<bale_core::verify::VerifyReport>, ApiError> {
    use bale_core::verify::VerifyTarget;
    let target = match (r.volume, r.package, r.cache) {
        (Some(v), None, false) => VerifyTarget::Volume(v),
        (None, Some(p), false) => VerifyTarget::Package(p),
        (None, None, true) => VerifyTarget::Cache,
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of volume, package and cache (true)".to_string(),
            ))
        }
    };
    Ok(Json(st.svc.verify(&who, target, r.rate).await?))
}

async fn volumes(State(st): State<AppState>, Extension(who): Extension<Principal>) -> Result<Response, ApiError> {
    Ok(Json(wire::all::<_, VolumeStatus>(&st.svc.volumes(&who)?)).into_response())
}

async fn add_volumes(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonObject(req): JsonObject<AddVolumes>,
) -> Result<Response, ApiError> {
    let added = st
        .svc
        .add_volumes(
            &who,
            &req.library,
            req.media.as_deref(),
            req.count,
            req.capacity,
            req.prefix.as_deref(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(wire::all::<_, VolumeJson>(&added))).into_response())
}

async fn volume(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(label): Path<String>,
) -> Result<Response, ApiError> {
    let (view, packages) = st.svc.volume(&who, &label).await?;
    Ok(Json(VolumeDetail {
        volume: VolumeStatus::from(&view),
        tape_files: wire::all(&packages),
    })
    .into_response())
}

async fn set_volume_state(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(label): Path<String>,
    JsonObject(req): JsonObject<SetState>,
) -> Result<Response, ApiError> {
    let state: VolumeState = req.state.parse().map_err(ApiError::bad_request)?;
    let v = st.svc.set_volume_state(&who, &label, state).await?;
    Ok(Json(VolumeJson::from(&v)).into_response())
}

/// A volume and its tape files in order.
#[derive(Serialize)]
struct VolumeDetail {
    volume: VolumeStatus,
    tape_files: Vec<TapeFileJson>,
}

async fn drives(State(st): State<AppState>, Extension(who): Extension<Principal>) -> Result<Response, ApiError> {
    Ok(Json(wire::all::<_, DriveJson>(&st.svc.drives(&who)?)).into_response())
}

async fn drive_action(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Path((name, action)): Path<(String, String)>,
    _: NoBody,
) -> Result<Response, ApiError> {
    let online = match action.as_str() {
        "online" => true,
        "offline" => false,
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown drive action {other:?}: online or offline"
            )))
        }
    };
    let d = st.svc.set_drive_online(&who, &name, online).await?;
    Ok(Json(DriveJson::from(&d)).into_response())
}

async fn libraries(State(st): State<AppState>, Extension(who): Extension<Principal>) -> Result<Response, ApiError> {
    Ok(Json(wire::all::<_, LibraryJson>(&st.svc.libraries(&who)?)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    #[serde(default)]
    after: u64,
}

async fn events(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    Ok(Json(wire::all::<_, EventJson>(&st.svc.tape_events(&who, q.after)?)).into_response())
}

async fn inject(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonObject(fault): JsonObject<FaultPoint>,
) -> Result<StatusCode, ApiError> {
    st.svc.inject_fault(&who, fault)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlarmsQuery {
    /// Acknowledged alarms too.
    #[serde(default)]
    all: bool,
}

async fn alarms(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<AlarmsQuery>,
) -> Result<Response, ApiError> {
    Ok(Json(wire::all::<_, AlarmJson>(&st.svc.alarms(&who, q.all).await?)).into_response())
}

async fn ack_alarm(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    _: NoBody,
) -> Result<Response, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{id:?} is not an alarm id")))?;
    Ok(Json(AlarmJson::from(&st.svc.ack_alarm(&who, id).await?)).into_response())
}
