//! bale's HTTP interface.
//!
//! - The namespace at the root: WebDAV (`GET`/`HEAD` with ranges, `PUT`,
//!   `DELETE`, `MKCOL`, `MOVE`, `PROPFIND` depth 0 and 1, `OPTIONS`) with
//!   RFC 3230 adler32 digests.
//! - `/api/v1/`: the JSON API (stat, paginated listing, tags, mkdir, attrs,
//!   tokens, health) and the tape admin API (volumes, drives, libraries,
//!   events, alarms, faults) and the aggregation API (policy, queue,
//!   packages). Errors everywhere are RFC 7807 problem+json.
//! - `/metrics`: Prometheus metrics. `/ui/`: the status page (`ui`); a
//!   browser's `GET /` is sent there.
//!
//! One module per protocol, each with its own request and response types:
//! `webdav`, `json` (with its wire types in `json::wire`); the WLCG Tape
//! REST API (`/.well-known/wlcg-tape-rest-api` and its endpoints) and the
//! status page (`/ui`) come as modules of their own beside them. What is
//! shared is here: the router, authentication, the protocol middleware
//! (problem+json for every error) and `model` (shapes the CLI reads too).
//!
//! Every request but `/.well-known/*`, `/healthz`, `/readyz` and `/api/v1/health` needs a bearer
//! token (the status page also takes its login's cookie, and only it does).

mod body;
mod error;

mod json;
pub mod model;
mod observe;
mod origin;
mod server;
mod taperest;
pub mod tls;
mod ui;
#[doc(hidden)]
pub use taperest::parse_bodies as tape_rest_bodies;
mod webdav;

pub use error::ApiError;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use bale_core::Service;
use std::future::Future;
use std::sync::Arc;

#[derive(Clone)]
pub(crate) struct AppState {
    pub svc: Arc<Service>,
    pub trust: Arc<origin::Trust>,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Who may scrape `/metrics` without a token.
    pub metrics_open: Arc<Vec<ipnet::IpNet>>,
    pub access_log: bool,
    /// The status page's logins.
    pub ui: Arc<ui::Sessions>,
}

/// The complete router for a service.
pub fn router(svc: Arc<Service>) -> Router {
    let c = &svc.config().server;
    let trust = origin::Trust {
        public: c.public_origin(),
        // Validated with the configuration.
        proxies: c.trusted_proxy_nets().unwrap_or_default(),
    };
    let state = AppState {
        metrics_open: Arc::new(c.metrics_open_nets().unwrap_or_default()),
        access_log: c.access_log,
        ui: Arc::new(ui::Sessions::new(std::time::Duration::from_secs(
            svc.config().ui.session_hours * 3600,
        ))),
        svc,
        trust: Arc::new(trust),
        metrics: bale_core::samples::metrics_handle(),
    };
    Router::new()
        .nest("/api/v1", json::routes())
        .nest(taperest::BASE, taperest::routes())
        .route("/.well-known/wlcg-tape-rest-api", get(taperest::discovery))
        .route("/api", any(error::not_found))
        .route("/api/{*rest}", any(error::not_found))
        .route("/.well-known", any(error::not_found))
        .route("/.well-known/{*rest}", any(error::not_found))
        .merge(ui::routes())
        .route("/metrics", get(metrics_page))
        .route("/healthz", any(healthz))
        .route("/readyz", any(readyz))
        .fallback(webdav::handle)
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(middleware::from_fn(browser_at_root))
        .layer(middleware::from_fn(protocol))
        .layer(middleware::from_fn_with_state(state.clone(), observe::observe))
        .with_state(state)
}

/// What every request and every answer goes through, outside everything
/// else: an HTTP/1.1 request without Host is refused (RFC 9112 3.2), and
/// every error is problem+json, including the web framework's own
/// rejections (a malformed, mistyped or unknown-field JSON body, a missing
/// Content-Type, a body too large, a bad query string, a method a route
/// does not have), which keep their headers (a 405's `Allow`). A JSON body
/// that parses but does not fit the request (axum's 422) is a 400.
async fn protocol(req: Request, next: Next) -> Response {
    if req.version() == axum::http::Version::HTTP_11 && !req.headers().contains_key(header::HOST) {
        return ApiError::bad_request("an HTTP/1.1 request needs a Host header (RFC 9112, section 3.2)")
            .into_response();
    }
    let method = req.method().clone();
    let resp = next.run(req).await;
    let status = resp.status();
    // Problems pass as they are, and so do the status page's HTML
    // answers (its login form after a bad token).
    let is_problem = resp.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes().starts_with(b"application/problem+json") || v.as_bytes().starts_with(b"text/html")
    });
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let status = if status == axum::http::StatusCode::UNPROCESSABLE_ENTITY {
        axum::http::StatusCode::BAD_REQUEST
    } else {
        status
    };
    let detail = match (text.is_empty(), status) {
        (false, _) => text,
        (true, axum::http::StatusCode::METHOD_NOT_ALLOWED) => {
            // The router adds `Allow` outside the layers, after this one.
            match parts.headers.get(header::ALLOW).and_then(|v| v.to_str().ok()) {
                Some(allow) => format!("method {method} is not allowed here; allowed: {allow}"),
                None => format!("method {method} is not allowed here; the Allow header lists those that are"),
            }
        }
        (true, s) => s.canonical_reason().unwrap_or("error").to_string(),
    };
    let mut out = ApiError::new(status, detail).into_response();
    out.extensions_mut().extend(parts.extensions);
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// A browser that opens the server's root (`GET /`, `Accept: text/html`,
/// no token) is sent to the status page; WebDAV clients get the listing.
async fn browser_at_root(req: Request, next: Next) -> Response {
    let h = req.headers();
    let browser = req.method() == axum::http::Method::GET
        && req.uri().path() == "/"
        && !h.contains_key(header::AUTHORIZATION)
        && h.get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.split(',').any(|t| t.trim().starts_with("text/html")));
    if browser {
        return (axum::http::StatusCode::SEE_OTHER, [(header::LOCATION, "/ui/")]).into_response();
    }
    next.run(req).await
}

/// Serves `svc` on an already bound listener until `shutdown` completes,
/// then lets in-flight requests finish. Every connection is bounded
/// (`server`, from the `[server]` configuration).
pub async fn serve(
    listener: tokio::net::TcpListener,
    svc: Arc<Service>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let c = &svc.config().server;
    let limits = server::Limits {
        header_timeout: std::time::Duration::from_secs(c.header_timeout_s),
        idle_timeout: std::time::Duration::from_secs(c.idle_timeout_s),
        body_timeout: std::time::Duration::from_secs(c.body_timeout_s),
        max_connections: c.max_connections,
    };
    let tls = match (&c.tls_cert, &c.tls_key) {
        (Some(cert), Some(key)) => Some(tls::Tls::load(cert, key).map_err(std::io::Error::other)?),
        _ => None,
    };
    server::serve(listener, router(svc.clone()), limits, tls, shutdown).await
}

/// Paths without the token check here: the probes and discovery answer
/// anyone; `/metrics` decides itself (open to some addresses).
fn is_public(path: &str) -> bool {
    // The status page checks its own logins (a cookie or the header).
    path == "/ui"
        || path.starts_with("/ui/")
        || matches!(
            path,
            "/api/v1/health" | "/healthz" | "/readyz" | "/.well-known" | "/metrics"
        )
        || path.starts_with("/.well-known/")
}

/// `GET /healthz`: the process answers. No token, and nothing else said.
async fn healthz(req: Request) -> Response {
    probe_answer(&req, true)
}

/// `GET /readyz`: this node can serve (the catalog answers, the cache
/// takes writes, no worker is dead): 200, else 503. No token; the reason
/// goes to the log, never to the caller.
async fn readyz(State(st): State<AppState>, req: Request) -> Response {
    if !matches!(*req.method(), axum::http::Method::GET | axum::http::Method::HEAD) {
        return probe_answer(&req, true);
    }
    let ready = match st.svc.ready().await {
        Ok(()) => true,
        Err(why) => {
            tracing::warn!("not ready: {why}");
            false
        }
    };
    probe_answer(&req, ready)
}

fn probe_answer(req: &Request, up: bool) -> Response {
    use axum::http::{HeaderValue, Method, StatusCode};
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let mut r = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} takes GET or HEAD", req.uri().path()),
        )
        .into_response();
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let (status, body) = match up {
        true => (StatusCode::OK, "ok\n"),
        false => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
    };
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The request's `Authorization` header, as the authenticator takes it.
fn authorization(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("<not text>"))
}

async fn authenticate(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    if is_public(req.uri().path()) {
        return next.run(req).await;
    }
    let client = req.extensions().get::<origin::Origin>().map(|o| o.client);
    let request = format!("{} {}", req.method(), req.uri().path());
    let header = authorization(&req);
    let presented = header.is_some();
    // gfal2 without a token asks for one (a macaroon request): bale issues
    // none, and says so.
    let macaroon = req
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/macaroon-request"));
    if macaroon && !presented {
        return ApiError::from(bale_core::Error::Unauthorized(format!(
            "bale issues no macaroons or other tokens: {}",
            bale_core::auth::HOW_TO_AUTHENTICATE
        )))
        .into_response();
    }
    match authenticated(&st, header, client, &request).await {
        Ok(p) => {
            req.extensions_mut().insert(p.clone());
            let mut resp = next.run(req).await;
            resp.extensions_mut().insert(observe::User(p.user.clone()));
            if let Some(error::Refusal(detail)) = resp.extensions().get::<error::Refusal>() {
                st.svc.audit().refused(Some(&p), client, &request, detail);
            }
            resp
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// The caller an `Authorization` header names (none: an unauthenticated
/// error), from `client`; a credential presented and refused is audited
/// under `request`. The middleware, `/metrics` and the status page's
/// logins all check credentials here.
pub(crate) async fn authenticated(
    st: &AppState,
    header: Option<&str>,
    client: Option<std::net::IpAddr>,
    request: &str,
) -> bale_core::Result<bale_core::Principal> {
    match st.svc.authenticate(header).await {
        Ok(mut p) => {
            p.from = client;
            Ok(p)
        }
        Err(e) => {
            if header.is_some() {
                st.svc.audit().refused(None, client, request, &e.to_string());
            }
            Err(e)
        }
    }
}

/// Whether a request may read `/metrics` without a token: it comes
/// straight from an address of `[server] metrics_open_to` (the
/// connection's own peer) and names no other client in forwarding
/// headers, so that a proxy on that address, trusted or not, never opens
/// the metrics to whoever it serves.
fn metrics_open(st: &AppState, req: &Request) -> bool {
    let Some(peer) = req.extensions().get::<server::ConnInfo>().map(|c| c.peer.ip()) else {
        return false;
    };
    let h = req.headers();
    let forwarded = ["forwarded", "x-forwarded-for", "x-real-ip"]
        .iter()
        .any(|n| h.contains_key(*n));
    !forwarded && st.metrics_open.iter().any(|n| n.contains(&peer))
}

/// `GET /metrics`: without a token from `[server] metrics_open_to`
/// (nowhere by default), else for any user's token. The gauges are read
/// now; the counters are the process's.
async fn metrics_page(State(st): State<AppState>, req: Request) -> Response {
    if !metrics_open(&st, &req) {
        let client = req.extensions().get::<origin::Origin>().map(|o| o.client);
        let header = authorization(&req);
        let who = match authenticated(&st, header, client, "GET /metrics").await {
            Ok(p) => p,
            Err(e) => return ApiError::from(e).into_response(),
        };
        if let Err(e) = bale_core::authz::allow(&who, bale_core::authz::Action::Metrics) {
            return ApiError::from(e).into_response();
        }
    }
    if let Err(e) = st.svc.refresh_gauges().await {
        tracing::warn!("metrics: reading the queues failed: {e}");
    }
    let body = st.metrics.render();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        body,
    )
        .into_response()
}
