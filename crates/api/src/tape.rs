//! The tape admin API under `/api/v1`: volumes, drives, libraries, the
//! event log, alarms and fault injection. Reading is open to every user;
//! changes need an administrator.

use crate::error::ApiError;
use crate::model::{AddVolumes, SetState};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bale_catalog::VolumeState;
use bale_core::tape::Fault;
use bale_core::{Error, Principal};
use serde::Deserialize;

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
}

async fn volumes(State(st): State<AppState>) -> Response {
    Json(st.svc.tape().volumes()).into_response()
}

async fn add_volumes(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Json(req): Json<AddVolumes>,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let tape = st.svc.tape();
    if let Some(media) = &req.media {
        let lib = tape
            .libraries()
            .into_iter()
            .find(|l| l.name == req.library)
            .ok_or_else(|| Error::NotFound(format!("no library {:?}", req.library)))?;
        if &lib.media != media {
            return Err(ApiError::bad_request(format!(
                "library {} has {} drives; it cannot take {media} volumes",
                lib.name, lib.media
            )));
        }
    }
    let added = tape
        .add_volumes(
            &req.library,
            req.count,
            req.capacity.map(|c| c.0),
            req.prefix.as_deref(),
        )
        .await
        .map_err(Error::from)?;
    Ok((StatusCode::CREATED, Json(added)).into_response())
}

async fn volume(State(st): State<AppState>, Path(label): Path<String>) -> Result<Response, ApiError> {
    let (view, packages) = st.svc.tape().volume(&label).await.map_err(Error::from)?;
    Ok(Json(serde_json::json!({"volume": view, "tape_files": packages})).into_response())
}

async fn set_volume_state(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(label): Path<String>,
    Json(req): Json<SetState>,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let state: VolumeState = req.state.parse().map_err(ApiError::bad_request)?;
    let v = st
        .svc
        .tape()
        .set_volume_state(&label, state)
        .await
        .map_err(Error::from)?;
    Ok(Json(v).into_response())
}

async fn drives(State(st): State<AppState>) -> Response {
    Json(st.svc.tape().drives()).into_response()
}

async fn drive_action(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Path((name, action)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let online = match action.as_str() {
        "online" => true,
        "offline" => false,
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown drive action {other:?}: online or offline"
            )))
        }
    };
    let d = st
        .svc
        .tape()
        .set_drive_online(&name, online)
        .await
        .map_err(Error::from)?;
    Ok(Json(d).into_response())
}

async fn libraries(State(st): State<AppState>) -> Response {
    Json(st.svc.tape().libraries()).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    #[serde(default)]
    after: u64,
}

async fn events(State(st): State<AppState>, Query(q): Query<EventsQuery>) -> Response {
    Json(st.svc.tape().events(q.after)).into_response()
}

async fn inject(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Json(fault): Json<Fault>,
) -> Result<StatusCode, ApiError> {
    who.require_admin()?;
    st.svc.tape().inject(fault).map_err(Error::from)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Alarms name paths and volumes: for administrators.
async fn alarms(State(st): State<AppState>, Extension(who): Extension<Principal>) -> Result<Response, ApiError> {
    who.require_admin()?;
    let alarms = st.svc.catalog().alarms().await.map_err(Error::from)?;
    Ok(Json(alarms).into_response())
}
