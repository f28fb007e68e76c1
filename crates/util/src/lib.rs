//! Low-level pieces shared by every layer of bale: validated namespace paths
//! ([`NsPath`]), the durable-write recipe ([`durable`]), adler32 checksums
//! ([`checksum`]), wall-clock timestamps ([`time`]) and the one shape of
//! every background worker ([`background`]).
//!
//! Nothing in here knows about the catalog, the cache or HTTP.

pub mod background;
pub mod checksum;
pub mod crash;
pub mod dirlock;
pub mod docs;
pub mod durable;
pub mod fileid;
pub mod human;
pub mod mem;
pub mod metrics;
pub mod path;
pub mod request;
pub mod throttle;
pub mod time;

pub use checksum::Adler32;
pub use fileid::FileId;
pub use path::{url_path, NsPath, PathError};
pub use time::Timestamp;
