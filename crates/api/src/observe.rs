//! What every request leaves behind, outside everything else: its origin
//! (`origin::Origin` in its extensions), a request id (the trusted
//! proxy's `X-Request-Id`, else a new one) in the answer's `X-Request-Id`,
//! in every log line of the request (a tracing span) and in the file
//! history it causes (`bale_util::request`); the request counters and
//! latency histograms by route; and one access-log line (target
//! `bale::access`).

use crate::{origin, AppState};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use bale_util::metrics as m;
use tracing::Instrument;

/// The authenticated user of a request, put into its answer's extensions
/// by the authentication middleware.
#[derive(Clone, Debug)]
pub(crate) struct User(pub String);

const REQUEST_ID: &str = "x-request-id";

/// The route a path belongs to, for the metrics' `route` label: a fixed,
/// small set (the JSON API by its first segment), so a client cannot grow
/// the number of series.
pub(crate) fn route_of(path: &str) -> &'static str {
    const TAPE: &[&str] = &["stage", "release", "archiveinfo"];
    if let Some(rest) = path.strip_prefix("/api/v1/") {
        let first = rest.split('/').next().unwrap_or("");
        return api_route(first);
    }
    if let Some(rest) = path.strip_prefix("/api/tape/v1/") {
        let first = rest.split('/').next().unwrap_or("");
        return match TAPE.iter().find(|a| **a == first) {
            Some(&"stage") => "/api/tape/v1/stage",
            Some(&"release") => "/api/tape/v1/release",
            Some(_) => "/api/tape/v1/archiveinfo",
            None => "/api/tape/v1/other",
        };
    }
    match path {
        "/metrics" => "/metrics",
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        p if p.starts_with("/.well-known") => "/.well-known",
        p if p.starts_with("/api") || p.starts_with("/ui") => "other",
        _ => "webdav",
    }
}

/// `/api/v1/<name>` for a known name, else `/api/v1/other`.
fn api_route(name: &str) -> &'static str {
    macro_rules! known {
        ($($n:literal),*) => {
            match name { $($n => concat!("/api/v1/", $n),)* _ => "/api/v1/other" }
        };
    }
    known!(
        "health",
        "whoami",
        "stat",
        "list",
        "tags",
        "mkdir",
        "attrs",
        "tokens",
        "workers",
        "volumes",
        "drives",
        "libraries",
        "tape",
        "alarms",
        "policy",
        "queue",
        "packages",
        "cache",
        "quotas",
        "stage",
        "pins",
        "fsck",
        "verify",
        "archiveinfo",
        "history",
        "status"
    )
}

/// A method for the `method` label: the ones bale answers, else "other".
fn method_label(m: &Method) -> &'static str {
    match m.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "PUT" => "PUT",
        "POST" => "POST",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        "PROPFIND" => "PROPFIND",
        "PROPPATCH" => "PROPPATCH",
        "MKCOL" => "MKCOL",
        "MOVE" => "MOVE",
        "COPY" => "COPY",
        "LOCK" => "LOCK",
        "UNLOCK" => "UNLOCK",
        _ => "other",
    }
}

pub(crate) async fn observe(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let start = std::time::Instant::now();
    let o = origin::of(&req, &st.trust);
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| o.via_proxy && bale_util::request::valid(v))
        .map(str::to_string)
        .unwrap_or_else(bale_util::request::new_id);
    let client = o.client;
    req.extensions_mut().insert(o);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let span = tracing::info_span!("request", id = %id);
    let mut resp = bale_util::request::scope(id.clone(), next.run(req).instrument(span)).await;
    let took = start.elapsed();
    let status = resp.status().as_u16();
    let (ml, route) = (method_label(&method), route_of(&path));
    metrics::counter!(m::HTTP_REQUESTS, "method" => ml, "route" => route, "status" => status.to_string()).increment(1);
    metrics::histogram!(m::HTTP_SECONDS, "method" => ml, "route" => route).record(took.as_secs_f64());
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    if st.access_log && !matches!(route, "/healthz" | "/readyz") {
        let user = resp.extensions().get::<User>().map_or("-", |u| u.0.as_str());
        let bytes = resp
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        tracing::info!(
            target: "bale::access",
            request_id = %id,
            client = %client,
            user,
            method = %method,
            path = %path,
            status,
            bytes,
            ms = format_args!("{:.1}", took.as_secs_f64() * 1000.0),
            "{method} {path} {status}"
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::route_of;

    #[test]
    fn routes_are_a_fixed_set() {
        assert_eq!(route_of("/api/v1/stage/12/cancel"), "/api/v1/stage");
        assert_eq!(route_of("/api/v1/nonsense/x"), "/api/v1/other");
        assert_eq!(route_of("/api/tape/v1/release/abc"), "/api/tape/v1/release");
        assert_eq!(route_of("/api/tape/v1/zzz"), "/api/tape/v1/other");
        assert_eq!(route_of("/data/run1/f.root"), "webdav");
        assert_eq!(route_of("/"), "webdav");
        assert_eq!(route_of("/metrics"), "/metrics");
        assert_eq!(route_of("/.well-known/wlcg-tape-rest-api"), "/.well-known");
        assert_eq!(route_of("/ui/x"), "other");
    }
}
