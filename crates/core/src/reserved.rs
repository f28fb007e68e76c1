//! Names the namespace cannot use: the top-level names of the HTTP interface.

use crate::{Error, Result};
use bale_util::NsPath;

/// Top-level names that belong to the HTTP interface, not the namespace.
pub const RESERVED_NAMES: [&str; 6] = ["api", ".well-known", "metrics", "ui", "healthz", "readyz"];

/// Refuses a path under a reserved top-level name.
pub(crate) fn check_reserved(path: &NsPath) -> Result<()> {
    if path.depth() >= 1 {
        let top = path.components().next().expect("depth >= 1");
        if RESERVED_NAMES.contains(&top) {
            return Err(Error::BadRequest(format!(
                "/{top} is reserved for the HTTP interface and cannot be used in the namespace"
            )));
        }
    }
    Ok(())
}
