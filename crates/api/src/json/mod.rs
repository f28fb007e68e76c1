//! The JSON API under `/api/v1`: the namespace (stat, list, tags, mkdir,
//! attributes), tokens, workers, and in `tape` and `archive` the tape and
//! aggregation administration. Paths travel in query strings or bodies, so
//! that any namespace path (spaces, unicode) is expressible. Answers are
//! the types of `wire` (and `crate::model`), not catalog rows.

mod archive;
mod cache;
mod quota;
mod stage;
mod tape;
mod wire;

use crate::body::JsonObject;
use crate::error::ApiError;
use crate::model::*;
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use bale_catalog::{AttrChange, TokenInfo};
use bale_core::{MkdirOptions, Principal};
use bale_util::NsPath;
use serde::Deserialize;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/whoami", get(whoami))
        .route("/stat", get(stat))
        .route("/list", get(list))
        .route("/tags", get(get_tags).post(set_tags))
        .route("/mkdir", post(mkdir))
        .route("/attrs", post(set_attrs))
        .route("/tokens", get(list_tokens).post(create_token))
        .route("/tokens/{id}", delete(revoke_token))
        .route("/workers", get(workers))
        .route("/history", get(history))
        .route("/status", get(status))
        .merge(tape::routes())
        .merge(archive::routes())
        .merge(cache::routes())
        .merge(quota::routes())
        .merge(stage::routes())
        .fallback(crate::error::not_found)
}

async fn workers(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<Vec<wire::WorkerJson>>, ApiError> {
    Ok(Json(wire::all(&st.svc.workers(&who)?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    path: Option<String>,
    file_id: Option<String>,
}

/// A file's history: by path (its owner, administrators) or by file id
/// (administrators; deleted files too).
async fn history(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<bale_core::history::History>, ApiError> {
    let h = match (q.path, q.file_id) {
        (Some(p), None) => st.svc.history(&who, &parse_path(&p)?).await?,
        (None, Some(id)) => {
            let id = bale_util::FileId::parse(&id)
                .ok_or_else(|| ApiError::bad_request(format!("{id:?} is not a file id")))?;
            st.svc.history_by_id(&who, id).await?
        }
        _ => return Err(ApiError::bad_request("give either path or file_id")),
    };
    Ok(Json(h))
}

/// The node at a glance (`bale status`).
async fn status(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<bale_core::status::NodeStatus>, ApiError> {
    Ok(Json(st.svc.status(&who).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathQuery {
    path: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    path: String,
    after: Option<String>,
    limit: Option<usize>,
}

fn parse_path(p: &str) -> Result<NsPath, ApiError> {
    Ok(NsPath::parse(p)?)
}

/// Open to anyone: it says the server answers, and nothing about it.
async fn health() -> Response {
    Json(serde_json::json!({"status": "ok"})).into_response()
}

async fn whoami(Extension(who): Extension<Principal>) -> Result<Json<WhoAmI>, ApiError> {
    bale_core::authz::allow(&who, bale_core::authz::Action::WhoAmI)?;
    Ok(Json(WhoAmI {
        user: who.user,
        group: who.group,
        admin: who.admin,
        token_id: who.token_id,
    }))
}

async fn stat(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<PathQuery>,
) -> Result<Json<StatEntry>, ApiError> {
    let path = parse_path(&q.path)?;
    let (n, archive) = st.svc.stat_archive(&who, &path).await?;
    Ok(Json(StatEntry {
        entry: Entry::from_node(&path, &n),
        archive: archive.as_ref().map(ArchiveView::from_status),
    }))
}

async fn list(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> Result<Json<ListPage>, ApiError> {
    let path = parse_path(&q.path)?;
    let limit = q.limit.unwrap_or(1000);
    if limit == 0 || limit > 100_000 {
        return Err(ApiError::bad_request("limit must be between 1 and 100000"));
    }
    let page = st.svc.list(&who, &path, q.after.as_deref(), limit).await?;
    let entries = if page.node.is_dir() {
        page.entries
            .iter()
            .map(|n| Ok(Entry::from_node(&path.join(&n.name)?, n)))
            .collect::<Result<Vec<_>, ApiError>>()?
    } else {
        vec![Entry::from_node(&path, &page.node)]
    };
    Ok(Json(ListPage {
        path: path.to_string(),
        entries,
        next: page.next,
    }))
}

async fn get_tags(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<PathQuery>,
) -> Result<Json<bale_catalog::Tags>, ApiError> {
    let path = parse_path(&q.path)?;
    Ok(Json(st.svc.stat(&who, &path).await?.tags))
}

async fn set_tags(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonObject(req): JsonObject<TagsRequest>,
) -> Result<Json<bale_catalog::Tags>, ApiError> {
    let path = parse_path(&req.path)?;
    let changes: Vec<(String, Option<String>)> = req.set.into_iter().collect();
    Ok(Json(st.svc.set_tags(&who, &path, &changes).await?.tags))
}

async fn mkdir(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonObject(req): JsonObject<MkdirRequest>,
) -> Result<Response, ApiError> {
    let path = parse_path(&req.path)?;
    let mode = req
        .mode
        .as_deref()
        .map(parse_mode)
        .transpose()
        .map_err(ApiError::bad_request)?;
    let opts = MkdirOptions {
        parents: req.parents,
        owner: req.owner,
        group: req.group,
        mode,
    };
    let n = st.svc.mkdir(&who, &path, &opts).await?;
    Ok((StatusCode::CREATED, Json(Entry::from_node(&path, &n))).into_response())
}

async fn set_attrs(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonObject(req): JsonObject<AttrsRequest>,
) -> Result<Json<Entry>, ApiError> {
    let path = parse_path(&req.path)?;
    let mode = req
        .mode
        .as_deref()
        .map(parse_mode)
        .transpose()
        .map_err(ApiError::bad_request)?;
    let change = AttrChange {
        owner: req.owner,
        group: req.group,
        mode,
        mtime: None,
    };
    let n = st.svc.set_attrs(&who, &path, &change).await?;
    Ok(Json(Entry::from_node(&path, &n)))
}

fn token_view(t: TokenInfo) -> TokenView {
    TokenView {
        id: t.id,
        user: t.user,
        group: t.group,
        admin: t.admin,
        created: rfc3339(t.created),
        revoked: t.revoked.map(rfc3339),
        comment: t.comment,
    }
}

async fn list_tokens(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    Ok(Json(st.svc.tokens(&who).await?.into_iter().map(token_view).collect()))
}

async fn create_token(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonObject(req): JsonObject<TokenRequest>,
) -> Result<Response, ApiError> {
    let (token, info) = st
        .svc
        .create_token(&who, &req.user, &req.group, req.admin, &req.comment)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            token,
            id: info.id,
            user: info.user,
            group: info.group,
            admin: info.admin,
        }),
    )
        .into_response())
}

async fn revoke_token(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.svc.revoke_token(&who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
