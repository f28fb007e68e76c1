//! The namespace over HTTP: WebDAV methods on paths at the root (GET and
//! HEAD with ranges, PUT, DELETE, MKCOL, MOVE, COPY, OPTIONS; PROPFIND in
//! `propfind`, PROPPATCH in `proppatch`), each with the conditional
//! headers of RFC 9110 section 13.

mod propfind;
mod proppatch;
mod xml;

use crate::error::ApiError;
use crate::model::Entry;
use crate::origin::Origin;
use crate::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bale_core::conditions::{self, Conditions, Outcome, TagList};
use bale_core::{MkdirOptions, Principal, PutOptions};
use bale_util::{Adler32, NsPath, Timestamp};
use futures::TryStreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// The namespace path of a request URL (percent-decoded, validated).
pub(crate) fn ns_path(uri_path: &str) -> Result<NsPath, ApiError> {
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(uri_path).collect();
    Ok(NsPath::parse_bytes(&bytes)?)
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// `Overwrite: T|F` (RFC 4918); `default` when absent.
fn overwrite_header(h: &HeaderMap, default: bool) -> Result<bool, ApiError> {
    match header_str(h, "overwrite").map(str::trim) {
        None => Ok(default),
        Some("T" | "t") => Ok(true),
        Some("F" | "f") => Ok(false),
        Some(v) => Err(ApiError::bad_request(format!(
            "Overwrite header must be T or F, not {v:?}"
        ))),
    }
}

/// RFC 9530: whether `Want-Repr-Digest` asks for `adler` (a dictionary of
/// algorithm = preference; 0 means "not this one").
fn wants_repr_adler(h: &HeaderMap) -> bool {
    header_str(h, "want-repr-digest").is_some_and(|v| {
        v.split(',').any(|item| {
            let (k, pref) = item.split_once('=').unwrap_or((item, "1"));
            k.trim().eq_ignore_ascii_case("adler") && pref.trim() != "0"
        })
    })
}

/// RFC 9530's `adler=:<base64 of the 4 bytes>:`.
fn repr_digest(a: Adler32) -> String {
    use base64::Engine;
    format!(
        "adler=:{}:",
        base64::engine::general_purpose::STANDARD.encode(a.0.to_be_bytes())
    )
}

/// The adler32 of an RFC 9530 `Repr-Digest` (or `Content-Digest`) field, if it has one.
fn from_repr_digest(v: &str) -> Result<Option<Adler32>, ApiError> {
    use base64::Engine;
    for item in v.split(',') {
        let Some((k, val)) = item.split_once('=') else { continue };
        if !k.trim().eq_ignore_ascii_case("adler") {
            continue;
        }
        let bad = || {
            ApiError::bad_request(format!(
                "malformed adler digest {:?}: expected :base64 of 4 bytes:",
                val.trim()
            ))
        };
        let b64 = val
            .trim()
            .strip_prefix(':')
            .and_then(|x| x.strip_suffix(':'))
            .ok_or_else(bad)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| bad())?;
        let arr: [u8; 4] = bytes.try_into().map_err(|_| bad())?;
        return Ok(Some(Adler32(u32::from_be_bytes(arr))));
    }
    Ok(None)
}

fn wants_adler32(h: &HeaderMap) -> bool {
    header_str(h, "want-digest").is_some_and(|v| {
        v.split(',')
            .any(|p| p.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("adler32"))
    })
}

/// `?overwrite=false` on a PUT (create only), for clients that cannot set headers.
#[derive(serde::Deserialize, Default)]
struct PutQuery {
    #[serde(default)]
    overwrite: Option<bool>,
}

pub(crate) async fn handle(State(st): State<AppState>, req: Request) -> Response {
    let result = async {
        let who = req
            .extensions()
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "not authenticated"))?;
        let path = ns_path(req.uri().path())?;
        let cond = conditions_of(req.headers())?;
        let method = req.method().as_str();
        // Every method but GET, HEAD and PUT (which evaluate them on the
        // entry they find anyway) checks its preconditions first. Where the
        // answer would be an error without them (a missing entry: 404),
        // they are ignored (RFC 9110 13.2.1).
        if !cond.is_empty() && !matches!(method, "GET" | "HEAD" | "PUT") {
            match st.svc.stat(&who, &path).await {
                Ok(node) => {
                    cond.evaluate(path.as_str(), Some(&node), false)?;
                }
                Err(bale_core::Error::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match method {
            "GET" => get(&st, &who, &path, req.headers(), &cond, false).await,
            "HEAD" => get(&st, &who, &path, req.headers(), &cond, true).await,
            "PUT" => put(&st, &who, &path, cond, req).await,
            "DELETE" => delete(&st, &who, &path, req.headers()).await,
            "MKCOL" => mkcol(&st, &who, &path, req).await,
            "MOVE" => do_move(&st, &who, &path, req.headers(), origin_of(&req)?).await,
            "COPY" => do_copy(&st, &who, &path, req.headers(), origin_of(&req)?).await,
            "PROPFIND" => {
                let (parts, body) = req.into_parts();
                let asked = propfind::read_propfind(body).await?;
                propfind::propfind(&st, &who, &path, &parts.headers, asked).await
            }
            "PROPPATCH" => proppatch::proppatch(&st, &who, &path, req.into_body()).await,
            "OPTIONS" => Ok(options()),
            m => {
                let mut r = ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("method {m} is not supported on namespace paths; allowed: {ALLOW}"),
                )
                .into_response();
                r.headers_mut().insert(header::ALLOW, HeaderValue::from_static(ALLOW));
                Ok(r)
            }
        }
    }
    .await;
    result.unwrap_or_else(|e| e.into_response())
}

const ALLOW: &str = "OPTIONS, GET, HEAD, PUT, DELETE, MKCOL, COPY, MOVE, PROPFIND, PROPPATCH";
/// What an existing entry allows: everything but MKCOL.
const ALLOW_EXISTING: &str = "OPTIONS, GET, HEAD, PUT, DELETE, COPY, MOVE, PROPFIND, PROPPATCH";

/// The preconditions of a request (RFC 9110 13.1). A malformed entity-tag
/// list is 400; a date that does not parse is ignored, as 13.1.3 says.
fn conditions_of(h: &HeaderMap) -> Result<Conditions, ApiError> {
    let tags = |name: &str| -> Result<Option<TagList>, ApiError> {
        match h.get(name) {
            None => Ok(None),
            Some(v) => {
                let v = v
                    .to_str()
                    .map_err(|_| ApiError::bad_request(format!("{name} is not ASCII text")))?;
                Ok(Some(TagList::parse(name, v)?))
            }
        }
    };
    let date = |name: &str| header_str(h, name).and_then(|v| httpdate::parse_http_date(v.trim()).ok());
    Ok(Conditions {
        if_match: tags("if-match")?,
        if_none_match: tags("if-none-match")?,
        if_modified_since: date("if-modified-since"),
        if_unmodified_since: date("if-unmodified-since"),
    })
}

/// `X-OC-Mtime` (ownCloud's, which rclone's owncloud and nextcloud vendors
/// send): the client's modification time in seconds since the epoch.
fn client_mtime(h: &HeaderMap) -> Result<Option<Timestamp>, ApiError> {
    let Some(v) = header_str(h, "x-oc-mtime") else {
        return Ok(None);
    };
    epoch_seconds(v).map(Some).ok_or_else(|| {
        ApiError::bad_request(format!(
            "X-OC-Mtime must be seconds since 1970 (with a fraction if need be, up to the year 2262), not {v:?}"
        ))
    })
}

/// Seconds since 1970, with an optional fraction of up to nine digits,
/// exactly (no float): `X-OC-Mtime`, ownCloud's `lastmodified`.
pub(crate) fn epoch_seconds(v: &str) -> Option<Timestamp> {
    let (secs, frac) = v.trim().split_once('.').unwrap_or((v.trim(), ""));
    let digits = |s: &str, max: usize| s.len() <= max && s.bytes().all(|b| b.is_ascii_digit());
    if secs.is_empty() || !digits(secs, 12) || !digits(frac, 9) {
        return None;
    }
    let nanos: i64 = format!("{frac:0<9}").parse().ok()?;
    let secs: i64 = secs.parse().ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos).map(Timestamp)
}

/// The answer to a GET or HEAD whose representation the client has.
fn not_modified(node: &bale_catalog::Node) -> Response {
    let mut r = StatusCode::NOT_MODIFIED.into_response();
    validators(r.headers_mut(), node);
    r
}

/// ETag and Last-Modified of an entry.
fn validators(hm: &mut HeaderMap, node: &bale_catalog::Node) {
    hm.insert(
        header::LAST_MODIFIED,
        HeaderValue::from_str(&httpdate::fmt_http_date(node.mtime.to_system_time())).unwrap(),
    );
    if let Some(id) = node.file_id {
        hm.insert(header::ETAG, HeaderValue::from_str(&format!("\"{id}\"")).unwrap());
    }
}

fn options() -> Response {
    let mut r = StatusCode::OK.into_response();
    let h = r.headers_mut();
    // Class 1 and RFC 4918's class 3; not class 2: bale has no LOCK.
    h.insert("dav", HeaderValue::from_static("1, 3"));
    h.insert(header::ALLOW, HeaderValue::from_static(ALLOW));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    r
}

async fn get(
    st: &AppState,
    who: &Principal,
    path: &NsPath,
    h: &HeaderMap,
    cond: &Conditions,
    head: bool,
) -> Result<Response, ApiError> {
    // Preconditions are answered from the catalog, before the data is
    // opened (or staged).
    if !cond.is_empty() {
        let node = st.svc.readable(who, path).await?;
        if cond.evaluate(path.as_str(), Some(&node), true)? == Outcome::NotModified {
            return Ok(not_modified(&node));
        }
    }
    // HEAD answers from the catalog: it never opens (or stages) the data.
    let (node, file) = match head {
        true => (st.svc.readable(who, path).await?, None),
        false => {
            let (node, file) = st.svc.open(who, path).await?;
            (node, Some(file))
        }
    };
    let size = node.size;
    let mut status = StatusCode::OK;
    let (mut start, mut len) = (0u64, size);
    // A Range in a unit other than bytes is ignored: the whole body, 200
    // (RFC 9110, section 14.2).
    // If-Range with a stale validator: the whole file (RFC 9110 13.1.5).
    let range = header_str(h, "range").filter(|r| {
        r.split_once('=')
            .is_some_and(|(unit, _)| unit.trim().eq_ignore_ascii_case("bytes"))
            && conditions::range_applies(header_str(h, "if-range"), &node)
    });
    if let Some(range) = range {
        let parsed = http_range_header::parse_range_header(range)
            .and_then(|r| r.validate(size))
            .map_err(|_| {
                let mut e = ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    format!("range {range:?} is not satisfiable for {path} ({size} bytes)"),
                );
                e.retryable = false;
                e
            });
        match parsed {
            Err(e) => {
                let mut r = e.into_response();
                r.headers_mut().insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&format!("bytes */{size}")).unwrap(),
                );
                return Ok(r);
            }
            // A single range is served as 206; several are served whole (RFC 9110 allows it).
            Ok(ranges) if ranges.len() == 1 => {
                let r = &ranges[0];
                start = *r.start();
                len = r.end() - r.start() + 1;
                status = StatusCode::PARTIAL_CONTENT;
            }
            Ok(_) => {}
        }
    }
    let mut resp = if let Some(mut file) = file {
        if len > 0 {
            st.svc.record_read(&node);
            metrics::counter!(bale_util::metrics::READ_FILES).increment(1);
            metrics::counter!(bale_util::metrics::READ_BYTES).increment(len);
        }
        if start > 0 {
            file.seek(std::io::SeekFrom::Start(start))
                .await
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("seek failed: {e}")))?;
        }
        let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), 256 * 1024);
        Response::new(Body::from_stream(stream))
    } else {
        Response::new(Body::empty())
    };
    *resp.status_mut() = status;
    let hm = resp.headers_mut();
    hm.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    hm.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    hm.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    validators(hm, &node);
    if status == StatusCode::PARTIAL_CONTENT {
        hm.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {start}-{}/{size}", start + len - 1)).unwrap(),
        );
    }
    if let Some(a) = node.adler32 {
        if wants_adler32(h) {
            hm.insert("digest", HeaderValue::from_str(&a.digest_header()).unwrap());
        }
        if wants_repr_adler(h) {
            hm.insert("repr-digest", HeaderValue::from_str(&repr_digest(a)).unwrap());
        }
    }
    Ok(resp)
}

async fn put(
    st: &AppState,
    who: &Principal,
    path: &NsPath,
    cond: Conditions,
    req: Request,
) -> Result<Response, ApiError> {
    let h = req.headers();
    // RFC 9110 14.5: a server that does not support partial PUT must
    // refuse one, or it would replace the file with the part.
    if let Some(range) = header_str(h, "content-range") {
        return Err(ApiError::bad_request(format!(
            "PUT with Content-Range ({range}) is a partial write, which bale does not support \
             (RFC 9110, section 14.5): send the whole file; nothing was changed"
        )));
    }
    let mut digest = match header_str(h, "digest") {
        None => None,
        Some(v) => Adler32::from_digest_header(v).map_err(ApiError::bad_request)?,
    };
    // RFC 9530, the successor of RFC 3230.
    for field in ["repr-digest", "content-digest"] {
        if let (None, Some(v)) = (digest, header_str(h, field)) {
            digest = from_repr_digest(v)?;
        }
    }
    let declared_len = match h.get(header::CONTENT_LENGTH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| ApiError::bad_request("Content-Length is not a number"))?,
        ),
    };
    // RFC 9110 9.3.4: a PUT replaces the file; `Overwrite: F` (RFC 4918's
    // header, which bale takes on a PUT too) and `If-None-Match: *` ask to
    // create it only, as `?overwrite=false` does.
    let by_query = put_query(req.uri())?.overwrite.unwrap_or(true);
    let mtime = client_mtime(h)?;
    let opts = PutOptions {
        overwrite: overwrite_header(h, by_query)?,
        conditions: cond,
        mtime,
        declared_len,
        digest,
        expects_continue: header_str(h, "expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")),
        copy_of: None,
    };
    // A body that cannot fit is refused before it is read (a client of
    // `Expect: 100-continue` never sends it).
    if let Some(n) = declared_len {
        if let Err(e) = st.svc.room_for(n).await {
            crate::body::drain_refused(req).await;
            return Err(e.into());
        }
    }
    let body = req.into_body().into_data_stream().map_err(|e| e.to_string());
    let (node, replaced) = st.svc.put(who, path, &opts, body).await?;
    let adler = node.adler32.expect("file has a checksum");
    // RFC 9110 9.3.4: 201 for a new file, 200 for one replaced.
    let mut resp = (
        if replaced { StatusCode::OK } else { StatusCode::CREATED },
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_string(&Entry::from_node(path, &node)).unwrap(),
    )
        .into_response();
    let hm = resp.headers_mut();
    hm.insert("digest", HeaderValue::from_str(&adler.digest_header()).unwrap());
    validators(hm, &node);
    if mtime.is_some() {
        hm.insert("x-oc-mtime", HeaderValue::from_static("accepted"));
    }
    Ok(resp)
}

async fn delete(st: &AppState, who: &Principal, path: &NsPath, headers: &HeaderMap) -> Result<Response, ApiError> {
    // RFC 4918 9.6.1: DELETE on a collection removes everything beneath it,
    // and a client must not send any Depth but infinity for one. A client
    // that asks for less must not get more: refused before anything goes.
    if let Some(depth) = headers.get("depth") {
        let is_dir = matches!(st.svc.stat(who, path).await, Ok(n) if n.is_dir());
        if is_dir && !depth.as_bytes().eq_ignore_ascii_case(b"infinity") {
            return Err(ApiError::bad_request(format!(
                "DELETE of a collection takes no Depth but infinity (got {:?}): it deletes all the collection holds",
                String::from_utf8_lossy(depth.as_bytes())
            )));
        }
    }
    st.svc.delete(who, path, true).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn mkcol(st: &AppState, who: &Principal, path: &NsPath, req: Request) -> Result<Response, ApiError> {
    let has_body = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0")
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    if has_body {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "MKCOL with a request body is not supported",
        ));
    }
    match st.svc.mkdir(who, path, &MkdirOptions::default()).await {
        Ok(_) => Ok(StatusCode::CREATED.into_response()),
        // RFC 4918: MKCOL on an existing resource is 405, and RFC 9110
        // 15.5.6: every 405 says what the resource allows.
        Err(bale_core::Error::Exists(m)) => {
            let mut r = ApiError::new(StatusCode::METHOD_NOT_ALLOWED, m).into_response();
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(ALLOW_EXISTING));
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}

fn put_query(uri: &axum::http::Uri) -> Result<PutQuery, ApiError> {
    if uri.query().is_none() {
        return Ok(PutQuery::default());
    }
    axum::extract::Query::<PutQuery>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))
}

/// The namespace path named by a `Destination` header (an absolute URL or
/// path). An absolute URL must name this server, by its public URL or by
/// the scheme and Host of this connection ([`Origin`]); anything else is
/// another server, which bale does not move to (502, RFC 4918 section
/// 9.9.4).
fn destination(h: &HeaderMap, o: &Origin, method: &str) -> Result<NsPath, ApiError> {
    let d = header_str(h, "destination")
        .ok_or_else(|| ApiError::bad_request(format!("{method} needs a Destination header")))?;
    let uri: axum::http::Uri = d
        .parse()
        .map_err(|_| ApiError::bad_request(format!("Destination is not a URL or path: {d:?}")))?;
    if let Some(authority) = uri.authority() {
        let scheme = uri.scheme_str().unwrap_or("");
        if !o.is_ours(scheme, authority.as_str()) {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!(
                    "Destination {d:?} is on another server ({} is this one); bale moves within its own namespace only",
                    o.base()
                ),
            ));
        }
    }
    ns_path(uri.path())
}

/// The request's origin (set by the router's middleware).
fn origin_of(req: &Request) -> Result<Origin, ApiError> {
    req.extensions()
        .get::<Origin>()
        .cloned()
        .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the request has no origin"))
}

async fn do_move(
    st: &AppState,
    who: &Principal,
    path: &NsPath,
    h: &HeaderMap,
    o: Origin,
) -> Result<Response, ApiError> {
    let dest = destination(h, &o, "MOVE")?;
    // RFC 4918: Overwrite defaults to T.
    let overwrite = overwrite_header(h, true)?;
    let moved = st
        .svc
        .rename(who, path, &dest, overwrite)
        .await
        .map(|(_, replaced)| replaced);
    moved_or_copied(moved, overwrite)
}

/// The answer to a MOVE or COPY (RFC 4918 9.8.5, 9.9.4): 204 when an
/// existing entry was replaced, else 201; 412 when the destination exists
/// and Overwrite is F.
fn moved_or_copied(r: bale_core::Result<bool>, overwrite: bool) -> Result<Response, ApiError> {
    let replaced = r.map_err(|e| match e {
        bale_core::Error::Exists(m) if !overwrite => {
            ApiError::new(StatusCode::PRECONDITION_FAILED, format!("{m} and Overwrite is F"))
        }
        e => e.into(),
    })?;
    Ok(if replaced {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::CREATED
    }
    .into_response())
}

/// RFC 4918 9.8: COPY of a file, or of a collection with `Depth:
/// infinity` (the default) or `0` (the collection alone).
async fn do_copy(
    st: &AppState,
    who: &Principal,
    path: &NsPath,
    h: &HeaderMap,
    o: Origin,
) -> Result<Response, ApiError> {
    let dest = destination(h, &o, "COPY")?;
    let overwrite = overwrite_header(h, true)?;
    let recursive = match header_str(h, "depth").map(|d| d.trim().to_ascii_lowercase()) {
        None => true,
        Some(d) if d == "infinity" => true,
        Some(d) if d == "0" => false,
        Some(d) => {
            return Err(ApiError::bad_request(format!(
                "COPY takes Depth 0 or infinity, not {d:?}"
            )))
        }
    };
    let copied = st.svc.copy(who, path, &dest, overwrite, recursive).await;
    moved_or_copied(copied, overwrite)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_decoded_and_validated() {
        assert_eq!(ns_path("/a%20b//c/").unwrap().as_str(), "/a b/c");
        assert!(ns_path("/a/%2e%2e/b").is_err());
        assert!(ns_path("/a%00b").is_err());
        assert!(ns_path("/%ff").is_err());
    }

    #[test]
    fn destination_header_forms() {
        let mut h = HeaderMap::new();
        let o = Origin {
            scheme: "http".into(),
            authority: "host:1".into(),
            direct: ("http".into(), "host:1".into()),
            client: std::net::Ipv4Addr::LOCALHOST.into(),
            via_proxy: false,
        };
        h.insert("destination", HeaderValue::from_static("http://host:1/x/y%20z"));
        assert_eq!(destination(&h, &o, "MOVE").unwrap().as_str(), "/x/y z");
        h.insert("destination", HeaderValue::from_static("/p/q"));
        assert_eq!(destination(&h, &o, "MOVE").unwrap().as_str(), "/p/q");
        h.insert("destination", HeaderValue::from_static("http://HOST:1"));
        assert_eq!(destination(&h, &o, "MOVE").unwrap().as_str(), "/");
        for other in [
            "http://elsewhere:1/x",
            "https://host:1/x",
            "http://host:2/x",
            "ftp://host:1/x",
        ] {
            h.insert("destination", HeaderValue::from_static(other));
            assert_eq!(
                destination(&h, &o, "MOVE").unwrap_err().status,
                StatusCode::BAD_GATEWAY,
                "{other}"
            );
        }
    }

    #[test]
    fn repr_digest_round_trip() {
        let a = Adler32(0x0a1b2c3d);
        assert_eq!(repr_digest(a), "adler=:ChssPQ==:");
        assert_eq!(from_repr_digest("sha-256=:abc=:, adler=:ChssPQ==:").unwrap(), Some(a));
        assert_eq!(from_repr_digest("sha-256=:abc=:").unwrap(), None);
        assert!(from_repr_digest("adler=ChssPQ==").is_err());
        assert!(from_repr_digest("adler=:AAAA:").is_err(), "3 bytes");
        let mut h = HeaderMap::new();
        h.insert("want-repr-digest", HeaderValue::from_static("sha-256=10, adler=3"));
        assert!(wants_repr_adler(&h));
        h.insert("want-repr-digest", HeaderValue::from_static("adler=0, sha-256=1"));
        assert!(!wants_repr_adler(&h));
    }

    #[test]
    fn want_digest_parsing() {
        let mut h = HeaderMap::new();
        h.insert("want-digest", HeaderValue::from_static("MD5;q=0.3, ADLER32;q=1"));
        assert!(wants_adler32(&h));
        h.insert("want-digest", HeaderValue::from_static("md5"));
        assert!(!wants_adler32(&h));
    }
}
