//! JSON request bodies, read one way for every endpoint: the body must be
//! JSON (`Content-Type`), within its configured limit (413 naming it, read
//! no further than the limit), and an object. serde reads a struct from an
//! array too, field by position: `["/alice/f", null, null, "0644"]` would
//! be taken as an `attrs` request, so a body that is not an object is
//! refused before serde sees it.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

/// An ordinary JSON body (`[server] json_body_limit`).
pub(crate) struct JsonObject<T>(pub T);

/// The JSON body of a bulk request, a list of paths
/// (`[server] bulk_body_limit`).
pub(crate) struct BulkObject<T>(pub T);

/// The body of a request that takes none (a drive's state, an alarm's
/// acknowledgement): empty, or the empty JSON object `{}`; anything else is
/// refused (400), not ignored.
pub(crate) struct NoBody;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

impl FromRequest<AppState> for NoBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &AppState) -> Result<Self, ApiError> {
        let has_body = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
            || req.headers().contains_key(header::TRANSFER_ENCODING);
        if !has_body {
            return Ok(NoBody);
        }
        read::<Empty>(req, 1024, "json_body_limit")
            .await
            .map(|_| NoBody)
            .map_err(|e| ApiError::bad_request(format!("this request takes no body (or {{}}): {}", e.detail)))
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for JsonObject<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, st: &AppState) -> Result<Self, ApiError> {
        let limit = st.svc.config().server.json_body_limit.as_u64();
        read(req, limit, "json_body_limit").await.map(JsonObject)
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for BulkObject<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, st: &AppState) -> Result<Self, ApiError> {
        let limit = st.svc.config().server.bulk_body_limit.as_u64();
        read(req, limit, "bulk_body_limit").await.map(BulkObject)
    }
}

fn too_large(limit: u64, key: &str) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the request body is larger than {} (the server's [server] {key}); nothing was changed",
            bale_util::human::Bytes(limit)
        ),
    )
}

async fn read<T: DeserializeOwned>(req: Request, limit: u64, key: &str) -> Result<T, ApiError> {
    let h = req.headers();
    let json = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            let m = m.trim();
            m.eq_ignore_ascii_case("application/json")
                || (m.len() > 5 && m[m.len() - 5..].eq_ignore_ascii_case("+json"))
        });
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the request body must be JSON: send Content-Type: application/json",
        ));
    }
    let declared = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        drain_refused(req).await;
        return Err(too_large(limit, key));
    }
    let bytes = axum::body::to_bytes(req.into_body(), limit as usize)
        .await
        .map_err(|e| {
            // The limit, or a body that failed or stalled on its way.
            let inner = std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default();
            if inner.contains("length limit") || e.to_string().contains("length limit") {
                too_large(limit, key)
            } else {
                ApiError::bad_request(format!("cannot read the request body: {e}"))
            }
        })?;
    parse(&bytes)
}

/// The most of a refused request's body read (and dropped) so that its
/// client sees the answer.
const DRAIN_MAX: u64 = 64 << 20;

/// Before a request is refused unread: a client that asked `Expect:
/// 100-continue` sends no body (reading would tell it to); one that did
/// not is sending it already and would not see the answer if the
/// connection closed under it, so up to [`DRAIN_MAX`] of the body is read
/// and dropped (a client that sends more is cut off).
pub(crate) async fn drain_refused(req: Request) {
    use futures::StreamExt;
    let expects = req
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects {
        return;
    }
    let mut stream = req.into_body().into_data_stream();
    let mut n = 0u64;
    while n < DRAIN_MAX {
        match stream.next().await {
            Some(Ok(b)) => n += b.len() as u64,
            _ => return,
        }
    }
}

/// A JSON object into `T`; anything else is a 400 that says what it was.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let what = match first {
        Some(b'{') => None,
        Some(b'[') => Some("an array"),
        Some(b'"') => Some("a string"),
        Some(b'n') => Some("null"),
        Some(b't' | b'f') => Some("a boolean"),
        Some(b'-' | b'0'..=b'9') => Some("a number"),
        None => Some("empty"),
        Some(_) => Some("not JSON"),
    };
    if let Some(what) = what {
        return Err(ApiError::bad_request(format!(
            "the request body must be a JSON object ({{...}}); this one is {what}"
        )));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Attrs {
        path: String,
        mode: Option<String>,
    }

    #[test]
    fn only_objects_are_read() {
        assert_eq!(parse::<Attrs>(br#" {"path": "/a"}"#).unwrap().path, "/a");
        for (body, what) in [
            (&br#"["/a", "0644"]"#[..], "an array"),
            (br#""/a""#, "a string"),
            (b"42", "a number"),
            (b"null", "null"),
            (b"true", "a boolean"),
            (b"  ", "empty"),
        ] {
            let e = parse::<Attrs>(body).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert!(
                e.detail.contains(what),
                "{}: {}",
                String::from_utf8_lossy(body),
                e.detail
            );
        }
        let e = parse::<Attrs>(br#"{"path": 3}"#).unwrap_err();
        assert!(e.detail.contains("path") || e.detail.contains("string"), "{}", e.detail);
    }
}
