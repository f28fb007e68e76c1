//! PROPFIND: the standard DAV properties that WebDAV clients (davix, gfal2,
//! rclone) use to stat and list. Depth 0 and 1; a listing is streamed page
//! by page from the catalog, so a directory of 100,000 entries costs no
//! more memory than one of ten.

use crate::error::ApiError;
use crate::model::rfc3339;
use crate::AppState;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bale_catalog::Node;
use bale_core::Principal;
use bale_util::NsPath;
use bytes::Bytes;
use quick_xml::escape::escape;

const PAGE: usize = 1000;

fn href(path: &NsPath, is_dir: bool) -> String {
    let mut s = bale_util::url_path(path.as_str());
    if is_dir && !path.is_root() {
        s.push('/');
    }
    s
}

fn response_xml(path: &NsPath, n: &Node) -> String {
    let mut props = String::new();
    let name = if n.name.is_empty() { "/" } else { &n.name };
    props.push_str(&format!("<D:displayname>{}</D:displayname>", escape(name)));
    if n.is_dir() {
        props.push_str("<D:resourcetype><D:collection/></D:resourcetype>");
    } else {
        props.push_str("<D:resourcetype/>");
        props.push_str(&format!("<D:getcontentlength>{}</D:getcontentlength>", n.size));
        props.push_str("<D:getcontenttype>application/octet-stream</D:getcontenttype>");
        if let Some(id) = n.file_id {
            props.push_str(&format!("<D:getetag>\"{id}\"</D:getetag>"));
        }
    }
    props.push_str(&format!(
        "<D:getlastmodified>{}</D:getlastmodified><D:creationdate>{}</D:creationdate>",
        httpdate::fmt_http_date(n.mtime.to_system_time()),
        rfc3339(n.ctime)
    ));
    format!(
        "<D:response><D:href>{}</D:href><D:propstat><D:prop>{props}</D:prop>\
         <D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>\n",
        escape(href(path, n.is_dir()))
    )
}

/// The response of a directory's entry. An entry whose path is not valid
/// (an over-long path a catalog of an older version let a MOVE make) is an
/// error the server logs, never a panic.
fn child_xml(dir: &NsPath, n: &Node) -> Result<String, ApiError> {
    let path = dir.join(&n.name).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "the catalog holds an entry of {dir} whose path is not valid ({:?}): {e}",
                n.name
            ),
        )
    })?;
    Ok(response_xml(&path, n))
}

/// The refusal of an infinite-depth PROPFIND (RFC 4918 9.1, 16): 403 whose
/// problem names the precondition.
fn infinite_depth(what: &str) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::FORBIDDEN,
        format!("{what} is not supported on a collection (precondition DAV:propfind-finite-depth): send Depth: 0 or Depth: 1"),
    );
    e.precondition = Some("DAV:propfind-finite-depth");
    e
}

const HEAD: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus xmlns:D=\"DAV:\">\n";
const TAIL: &str = "</D:multistatus>\n";

pub(crate) async fn propfind(
    st: &AppState,
    who: &Principal,
    path: &NsPath,
    h: &HeaderMap,
) -> Result<Response, ApiError> {
    // RFC 4918 9.1: a missing Depth means infinity, which a server may
    // refuse on a collection with 403 and the DAV:propfind-finite-depth
    // precondition (on a file, depth changes nothing).
    let asked = h
        .get("depth")
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    let depth: Option<u8> = match asked.as_deref() {
        Some("0") => Some(0),
        Some("1") => Some(1),
        None | Some("infinity") => None,
        Some(d) => return Err(ApiError::bad_request(format!("invalid Depth header {d:?}"))),
    };
    let node = st.svc.stat(who, path).await?;
    let depth = match depth {
        Some(d) => d,
        None if !node.is_dir() => 0,
        None => {
            return Err(infinite_depth(match asked {
                None => "PROPFIND without a Depth header (which means Depth: infinity, RFC 4918 section 9.1)",
                Some(_) => "PROPFIND with Depth: infinity",
            }))
        }
    };
    let first = format!("{HEAD}{}", response_xml(path, &node));
    let body = if depth == 0 || !node.is_dir() {
        Body::from(format!("{first}{TAIL}"))
    } else {
        // Check permission and fetch the first page before answering 207.
        let page = st.svc.list(who, path, None, PAGE).await?;
        let svc = st.svc.clone();
        let who = who.clone();
        let dir = path.clone();
        let mut chunk = first;
        for n in &page.entries {
            chunk.push_str(&child_xml(&dir, n)?);
        }
        let state = (Some(chunk), page.next, false);
        let stream = futures::stream::unfold(state, move |(pending, after, done)| {
            let (svc, who, dir) = (svc.clone(), who.clone(), dir.clone());
            async move {
                if let Some(p) = pending {
                    return Some((Ok::<Bytes, std::io::Error>(Bytes::from(p)), (None, after, done)));
                }
                if done {
                    return None;
                }
                let Some(cursor) = after else {
                    return Some((Ok(Bytes::from_static(TAIL.as_bytes())), (None, None, true)));
                };
                match svc.list(&who, &dir, Some(&cursor), PAGE).await {
                    Ok(page) => {
                        let mut s = String::new();
                        for n in &page.entries {
                            match child_xml(&dir, n) {
                                Ok(x) => s.push_str(&x),
                                Err(e) => {
                                    tracing::error!("PROPFIND of {dir}: {}", e.detail);
                                    return Some((Err(std::io::Error::other(e.detail)), (None, None, true)));
                                }
                            }
                        }
                        Some((Ok(Bytes::from(s)), (None, page.next, false)))
                    }
                    // Mid-stream the status is sent already: end the body with an error.
                    Err(e) => Some((Err(std::io::Error::other(e.to_string())), (None, None, true))),
                }
            }
        });
        Body::from_stream(stream)
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::MULTI_STATUS;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml; charset=utf-8"),
    );
    Ok(resp)
}

/// A PROPFIND body, if there is one, must be well-formed XML (RFC 4918
/// section 9.1: 400 otherwise). bale answers every PROPFIND with all its
/// properties (allprop), whatever the body asks for.
pub(crate) async fn check_propfind_body(body: Body) -> Result<(), ApiError> {
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|e| ApiError::bad_request(format!("cannot read the PROPFIND body: {e}")))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    well_formed(&bytes).map_err(|e| ApiError::bad_request(format!("the PROPFIND body is not well-formed XML: {e}")))
}

fn well_formed(xml: &[u8]) -> Result<(), String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(xml);
    let (mut depth, mut roots) = (0usize, 0usize);
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf).map_err(|e| e.to_string())? {
            Event::Start(_) => {
                if depth == 0 {
                    roots += 1;
                }
                depth += 1;
            }
            Event::End(_) => depth -= 1,
            Event::Empty(_) if depth == 0 => roots += 1,
            Event::Text(t) if depth == 0 && !t.iter().all(u8::is_ascii_whitespace) => {
                return Err("text outside the root element".into())
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    match (depth, roots) {
        (0, 1) => Ok(()),
        (0, 0) => Err("no root element".into()),
        (0, _) => Err("more than one root element".into()),
        _ => Err("unclosed element at the end".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn propfind_bodies_must_be_well_formed() {
        let ok = br#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>"#;
        assert!(well_formed(ok).is_ok());
        assert!(well_formed(b"<propfind/>").is_ok());
        for bad in [
            &b"<D:propfind xmlns:D=\"DAV:\"><D:prop>"[..],
            b"<a></b>",
            b"not xml at all",
            b"<a/><b/>",
            b"<a>",
        ] {
            assert!(well_formed(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn hrefs_are_encoded() {
        let p = NsPath::parse("/a b/c%d/é&x").unwrap();
        assert_eq!(href(&p, false), "/a%20b/c%25d/%C3%A9%26x");
        assert_eq!(href(&NsPath::root(), true), "/");
        assert_eq!(href(&NsPath::parse("/d").unwrap(), true), "/d/");
    }
}
