//! The status page at `/ui/`: a page and its data endpoints, served by
//! the daemon (assets embedded in the binary, nothing fetched from
//! another host).
//!
//! - `GET /ui/`: the dashboard for a logged-in caller, else the login
//!   form and nothing else. `GET /` from a browser (`Accept: text/html`,
//!   no token) is sent here.
//! - `POST /ui/login` (a form with `token`): checks the token, starts a
//!   session ([`session`]) and sets its cookie (HttpOnly, SameSite=Strict,
//!   Secure under TLS, `Path=/ui/`). `POST /ui/logout` ends it.
//! - `GET /ui/data/overview`, `/ui/data/volumes`, `/ui/data/chart/NAME`
//!   and `POST /ui/data/alarms/ID/ack`: the page's data, for the session's
//!   cookie or a bearer header. What each caller gets follows the
//!   authorization table (`bale_core::dashboard`); a POST with the cookie
//!   must echo the session's secret in `X-CSRF-Token`, and one whose
//!   `Origin` is another site is refused.
//!
//! The cookie is good for these paths only: the WebDAV and JSON API
//! paths read the `Authorization` header and nothing else.

mod chart;
mod session;

use crate::error::{ApiError, Refusal};
use crate::origin::Origin;
use crate::AppState;
use axum::extract::{DefaultBodyLimit, Form, FromRequest, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bale_core::Principal;
use serde::Deserialize;
pub(crate) use session::Sessions;

const INDEX: &str = include_str!("assets/index.html");
const LOGIN: &str = include_str!("assets/login.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");

/// Every page and asset: only this server's scripts, styles and data.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The request's method and path, for the audit log.
#[derive(Clone)]
struct RequestLine(String);

async fn request_line(mut req: Request, next: axum::middleware::Next) -> Response {
    let line = RequestLine(format!("{} {}", req.method(), req.uri().path()));
    req.extensions_mut().insert(line);
    next.run(req).await
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { see_other("/ui/") }))
        .route("/ui/", get(page))
        .route(
            "/ui/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/ui/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route("/ui/login", post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/data/overview", get(overview))
        .route("/ui/data/volumes", get(volumes))
        .route("/ui/data/chart/{name}", get(chart))
        .route("/ui/data/alarms/{id}/ack", post(ack))
        .route("/ui/{*rest}", axum::routing::any(crate::error::not_found))
        .layer(DefaultBodyLimit::max(16 * 1024))
        .layer(axum::middleware::from_fn(request_line))
}

fn see_other(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

fn secured(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    secured(([(header::CONTENT_TYPE, kind)], body).into_response())
}

fn html(status: StatusCode, body: String) -> Response {
    secured((status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response())
}

fn login_page(status: StatusCode, error: &str) -> Response {
    html(status, LOGIN.replace("<!--ERROR-->", &quick_xml::escape::escape(error)))
}

/// Who a request of the page is: a session's cookie or a bearer header.
struct Caller {
    who: Principal,
    /// The session's id and secret (none with a bearer header).
    session: Option<(String, String)>,
}

fn client(ext: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    ext.get::<Origin>().map(|o| o.client)
}

/// The caller, if logged in; an error for a bad token.
async fn caller(st: &AppState, headers: &HeaderMap, ext: &axum::http::Extensions) -> Result<Option<Caller>, ApiError> {
    let from = client(ext);
    let request = ext.get::<RequestLine>().map_or("/ui/", |r| r.0.as_str());
    if let Some(h) = headers.get(header::AUTHORIZATION) {
        let h = h.to_str().unwrap_or("<not text>");
        let who = crate::authenticated(st, Some(h), from, request).await?;
        return Ok(Some(Caller { who, session: None }));
    }
    let Some(id) = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| session::cookie(v, session::COOKIE))
    else {
        return Ok(None);
    };
    let Some(s) = st.ui.get(id) else { return Ok(None) };
    match st.svc.authenticate(Some(&s.authorization)).await {
        Ok(mut who) => {
            who.from = from;
            Ok(Some(Caller {
                who,
                session: Some((id.to_string(), s.csrf)),
            }))
        }
        // The token was revoked or expired: so is the session. Any other
        // failure (the catalog down) is the server's, and keeps it.
        Err(bale_core::Error::Unauthorized(_) | bale_core::Error::InvalidToken(_)) => {
            st.ui.remove(id);
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// The caller of a data endpoint, or 401.
async fn required(st: &AppState, headers: &HeaderMap, ext: &axum::http::Extensions) -> Result<Caller, ApiError> {
    caller(st, headers, ext)
        .await?
        .ok_or_else(|| bale_core::Error::Unauthorized("log in at /ui/ (or send a bearer token)".into()).into())
}

/// A state-changing request: not from another site, and with the cookie,
/// the session's secret echoed.
fn same_site(headers: &HeaderMap, origin: Option<&Origin>) -> Result<(), ApiError> {
    // A browser says where a request comes from (credentials it keeps,
    // Basic ones too, would otherwise go along with another site's POST).
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if !matches!(site, "same-origin" | "none") {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("a request of the status page from another site (Sec-Fetch-Site: {site}) is refused"),
            ));
        }
    }
    let Some(sent) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let ours = origin.is_some_and(|o| {
        sent.split_once("://")
            .is_some_and(|(scheme, authority)| o.is_ours(scheme, authority))
    });
    match ours {
        true => Ok(()),
        false => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("a request of the status page from another site ({sent}) is refused"),
        )),
    }
}

fn check_csrf(c: &Caller, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some((_, want)) = &c.session else { return Ok(()) };
    let sent = headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or("");
    match session::same(sent, want) {
        true => Ok(()),
        false => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the status page's request did not carry its session's X-CSRF-Token: reload the page",
        )),
    }
}

/// Adds what the access log and the audit log know of an answer.
fn answered(st: &AppState, who: &Principal, request: &str, mut resp: Response) -> Response {
    resp.extensions_mut().insert(crate::observe::User(who.user.clone()));
    if let Some(Refusal(detail)) = resp.extensions().get::<Refusal>() {
        st.svc.audit().refused(Some(who), who.from, request, detail);
    }
    resp
}

async fn page(State(st): State<AppState>, req: Request) -> Response {
    match caller(&st, req.headers(), req.extensions()).await {
        Ok(Some(c)) => answered(&st, &c.who, "GET /ui/", html(StatusCode::OK, INDEX.to_string())),
        Ok(None) => login_page(StatusCode::OK, ""),
        Err(e) => login_page(StatusCode::UNAUTHORIZED, &e.detail),
    }
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(st): State<AppState>, headers: HeaderMap, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if let Err(e) = same_site(&headers, parts.extensions.get::<Origin>()) {
        return e.into_response();
    }
    let form = match Form::<LoginForm>::from_request(Request::from_parts(parts.clone(), body), &st).await {
        Ok(Form(f)) => f,
        Err(e) => return login_page(StatusCode::BAD_REQUEST, &format!("the login form did not read: {e}")),
    };
    let token = form.token.trim();
    if token.is_empty() {
        return login_page(StatusCode::BAD_REQUEST, "type a token");
    }
    let authorization = format!("Bearer {token}");
    let from = client(&parts.extensions);
    match crate::authenticated(&st, Some(&authorization), from, "POST /ui/login").await {
        Ok(who) => {
            let id = st.ui.create(authorization, &who.user);
            let secure = match parts.extensions.get::<Origin>() {
                Some(o) if o.scheme == "https" => "; Secure",
                _ => "",
            };
            let cookie = format!(
                "{}={id}; Path=/ui/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
                session::COOKIE,
                st.ui.lifetime().as_secs()
            );
            tracing::info!(user = %who.user, "logged in to the status page");
            let mut r = see_other("/ui/");
            r.headers_mut().insert(
                header::SET_COOKIE,
                HeaderValue::from_str(&cookie).expect("hex and ascii"),
            );
            r.extensions_mut().insert(crate::observe::User(who.user));
            r
        }
        Err(_) => login_page(
            StatusCode::UNAUTHORIZED,
            "that token is not valid (unknown, revoked or expired)",
        ),
    }
}

/// Ends the caller's session. The page's form sends its secret too, but
/// a logout is never refused for want of it (a click before the page's
/// first data would leave a session alive): the browser's SameSite
/// cookie and the Origin check keep other sites out.
async fn logout(State(st): State<AppState>, req: Request) -> Response {
    let (parts, _body) = req.into_parts();
    if let Err(e) = same_site(&parts.headers, parts.extensions.get::<Origin>()) {
        return e.into_response();
    }
    if let Ok(Some(Caller {
        session: Some((id, _)), ..
    })) = caller(&st, &parts.headers, &parts.extensions).await
    {
        st.ui.remove(&id);
    }
    let mut r = see_other("/ui/");
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("bale_ui=; Path=/ui/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverviewQuery {
    requests_before: Option<i64>,
}

async fn overview(
    State(st): State<AppState>,
    Query(q): Query<OverviewQuery>,
    req: Request,
) -> Result<Response, ApiError> {
    let c = required(&st, req.headers(), req.extensions()).await?;
    if q.requests_before.is_some_and(|b| b <= 0) {
        return Err(ApiError::bad_request(
            "requests_before is a stage request id: 1 or more",
        ));
    }
    let r = match st.svc.overview(&c.who, q.requests_before).await {
        Ok(o) => {
            let mut v =
                serde_json::to_value(&o).map_err(|e| ApiError::from(bale_core::Error::Internal(e.to_string())))?;
            v["csrf"] = serde_json::Value::String(c.session.as_ref().map(|s| s.1.clone()).unwrap_or_default());
            Json(v).into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    };
    Ok(answered(&st, &c.who, "GET /ui/data/overview", secured(r)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VolumesQuery {
    offset: Option<usize>,
    limit: Option<usize>,
    state: Option<String>,
    q: Option<String>,
}

async fn volumes(
    State(st): State<AppState>,
    Query(q): Query<VolumesQuery>,
    req: Request,
) -> Result<Response, ApiError> {
    let c = required(&st, req.headers(), req.extensions()).await?;
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > bale_core::dashboard::VOLUME_ROWS {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {}",
            bale_core::dashboard::VOLUME_ROWS
        )));
    }
    let state = match q.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            s.parse::<bale_catalog::VolumeState>()
                .map_err(|e| ApiError::bad_request(format!("state: {e}")))?,
        ),
    };
    let text = q.q.as_deref().filter(|t| !t.is_empty());
    if text.is_some_and(|t| t.len() > 200) {
        return Err(ApiError::bad_request("q is at most 200 bytes"));
    }
    let r = match st.svc.volume_page(&c.who, q.offset.unwrap_or(0), limit, state, text) {
        Ok(p) => Json(p).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    };
    Ok(answered(&st, &c.who, "GET /ui/data/volumes", secured(r)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChartQuery {
    hours: Option<u64>,
}

async fn chart(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<ChartQuery>,
    req: Request,
) -> Result<Response, ApiError> {
    let c = required(&st, req.headers(), req.extensions()).await?;
    if let Err(e) = bale_core::authz::allow(&c.who, bale_core::authz::Action::Metrics) {
        return Ok(answered(
            &st,
            &c.who,
            "GET /ui/data/chart",
            ApiError::from(e).into_response(),
        ));
    }
    let keep = st.svc.config().ui.kept_hours();
    let hours = q.hours.unwrap_or(6);
    if hours == 0 || hours > keep {
        return Err(ApiError::bad_request(format!(
            "hours must be between 1 and {keep} (the hours of samples kept: ui.keep_hours, at most 100,000 samples)"
        )));
    }
    let now = bale_util::Timestamp::now().0 / 1_000_000;
    let Some(ch) = st.svc.samples().chart(&name, hours, now) else {
        let names: Vec<&str> = bale_core::samples::CHARTS.iter().map(|c| c.0).collect();
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no chart {name:?}: there are {}", names.join(", ")),
        ));
    };
    let r = ([(header::CONTENT_TYPE, "image/svg+xml")], chart::svg(&ch)).into_response();
    Ok(answered(&st, &c.who, "GET /ui/data/chart", secured(r)))
}

async fn ack(State(st): State<AppState>, Path(id): Path<String>, req: Request) -> Result<Response, ApiError> {
    let (parts, _body) = req.into_parts();
    let c = required(&st, &parts.headers, &parts.extensions).await?;
    let run = async {
        same_site(&parts.headers, parts.extensions.get::<Origin>())?;
        check_csrf(&c, &parts.headers)?;
        let id: i64 = id
            .parse()
            .map_err(|_| ApiError::bad_request(format!("{id:?} is not an alarm id")))?;
        let a = st.svc.ack_alarm(&c.who, id).await?;
        Ok::<_, ApiError>(Json(bale_core::dashboard::AlarmRow::from(&a)).into_response())
    };
    let r = run.await.unwrap_or_else(|e| e.into_response());
    // Refusals (another site, a missing secret, not an administrator)
    // go to the audit log.
    Ok(answered(&st, &c.who, "POST /ui/data/alarms/ack", secured(r)))
}
