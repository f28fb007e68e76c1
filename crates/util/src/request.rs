//! The id of the HTTP request a piece of work runs for: set once by the
//! HTTP layer around the request's handling, read where the work leaves
//! a trace (a file's history, an audit line), so a request id found in
//! one place finds the rest. Work outside any request (background
//! workers) has none.

use std::future::Future;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs `f` as the work of request `id`.
pub async fn scope<F: Future>(id: String, f: F) -> F::Output {
    REQUEST_ID.scope(id, f).await
}

/// The id of the request this task works for, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(|id| id.clone()).ok()
}

/// A new request id: a UUIDv7 in 32 hex digits (time-ordered, so ids
/// sort as their requests came).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// Whether `id` (sent by a trusted proxy) is fit to be a request id: 1 to
/// 128 visible ASCII characters, without quotes or backslashes (it goes
/// into log lines and JSON as it is).
pub fn valid(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}
