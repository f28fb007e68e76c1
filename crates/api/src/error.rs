//! The one place where errors become HTTP responses: RFC 7807 problem+json
//! with a status, a title, a message for a person, and whether retrying helps.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bale_core::Error;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
    pub retryable: bool,
    /// The WebDAV precondition or postcondition that failed (RFC 4918 16),
    /// as a problem's `precondition` member.
    pub precondition: Option<&'static str>,
    /// RFC 6750: the Bearer challenge's error and its parameter (the
    /// description of an invalid token, the scope that is missing).
    pub bearer_error: Option<BearerError>,
}

/// The detail of a 401 or 403, in the response's extensions: what the
/// audit log records of the refusal.
#[derive(Debug, Clone)]
pub(crate) struct Refusal(pub String);

/// The error of a Bearer challenge (RFC 6750, section 3.1).
#[derive(Debug, Clone)]
pub enum BearerError {
    InvalidToken(String),
    InsufficientScope(String),
}

/// A quoted-string's content: printable ASCII without `"` and `\`.
fn quotable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                ' '
            }
        })
        .take(300)
        .collect()
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            detail: detail.into(),
            retryable: false,
            precondition: None,
            bearer_error: None,
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, detail)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized(_) | Error::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) | Error::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Exists(_) | Error::Conflict(_) | Error::IsADirectory(_) | Error::OnTapeOnly(_) => {
                StatusCode::CONFLICT
            }
            Error::ChecksumMismatch(_) => StatusCode::BAD_REQUEST,
            Error::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            Error::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let bearer_error = match &e {
            Error::InvalidToken(m) => Some(BearerError::InvalidToken(m.clone())),
            Error::InsufficientScope { scope, .. } => Some(BearerError::InsufficientScope(scope.clone())),
            _ => None,
        };
        ApiError {
            status,
            retryable: e.retryable(),
            detail: e.to_string(),
            precondition: None,
            bearer_error,
        }
    }
}

impl From<bale_util::PathError> for ApiError {
    fn from(e: bale_util::PathError) -> Self {
        ApiError::from(Error::from(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // A server's fault is an error; a 502 (another server) and a 507
        // (a body larger than the room left) are the request's.
        match self.status {
            StatusCode::BAD_GATEWAY | StatusCode::INSUFFICIENT_STORAGE => {
                tracing::warn!("{}: {}", self.status, self.detail)
            }
            s if s.is_server_error() => tracing::error!("{}: {}", self.status, self.detail),
            _ => {}
        }
        let mut body = serde_json::json!({
            "type": "about:blank",
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "retryable": self.retryable,
        });
        if let Some(p) = self.precondition {
            body["precondition"] = p.into();
        }
        let mut resp = (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE || self.status == StatusCode::TOO_MANY_REQUESTS {
            // Worth a retry: a stage under way, a catalog that was busy.
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("30"));
        }
        // RFC 6750 and RFC 7617: a 401 offers Bearer (bale's tokens and
        // WLCG tokens) and Basic (a user name and a bale token); a 403 for
        // a missing scope names it.
        if self.status == StatusCode::UNAUTHORIZED || self.status == StatusCode::FORBIDDEN {
            resp.extensions_mut().insert(Refusal(self.detail.clone()));
        }
        let challenge = |v: String| header::HeaderValue::from_str(&v).ok();
        let h = resp.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            let bearer = match &self.bearer_error {
                Some(BearerError::InvalidToken(d)) => {
                    format!(
                        "Bearer realm=\"bale\", error=\"invalid_token\", error_description=\"{}\"",
                        quotable(d)
                    )
                }
                _ => "Bearer realm=\"bale\"".to_string(),
            };
            if let Some(v) = challenge(bearer) {
                h.append(header::WWW_AUTHENTICATE, v);
            }
            h.append(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"bale\", charset=\"UTF-8\""),
            );
        }
        if let (StatusCode::FORBIDDEN, Some(BearerError::InsufficientScope(scope))) = (self.status, &self.bearer_error)
        {
            let v = format!(
                "Bearer realm=\"bale\", error=\"insufficient_scope\", scope=\"{}\"",
                quotable(scope)
            );
            if let Some(v) = challenge(v) {
                h.append(header::WWW_AUTHENTICATE, v);
            }
        }
        resp
    }
}

pub(crate) async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no such endpoint: {}", uri.path()))
}
