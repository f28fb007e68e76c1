//! PROPFIND: the live DAV properties that WebDAV clients (davix, gfal2,
//! rclone) use to stat and list, and the dead properties PROPPATCH set;
//! `allprop`, `propname` or the properties named (each answered or 404).
//! Depth 0 and 1; a listing is streamed page
//! by page from the catalog, so a directory of 100,000 entries costs no
//! more memory than one of ten.

use super::xml::{self, DAV};
use crate::error::ApiError;
use crate::model::rfc3339;
use crate::AppState;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bale_catalog::Node;
use bale_catalog::{DeadProp, NodeId};
use bale_core::Principal;
use bale_util::NsPath;
use bytes::Bytes;
use quick_xml::escape::escape;
use std::collections::HashMap;

const PAGE: usize = 1000;
const PAGE_WITH_PROPS: usize = 100;
/// Most properties one PROPFIND may name.
const MAX_ASKED: usize = 1000;

fn href(path: &NsPath, is_dir: bool) -> String {
    let mut s = bale_util::url_path(path.as_str());
    if is_dir && !path.is_root() {
        s.push('/');
    }
    s
}

/// What a PROPFIND asks for (RFC 4918 9.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Asked {
    /// `allprop` (or no body): every live and dead property.
    All,
    /// `propname`: the names of every property, without values.
    Names,
    /// `prop`: these (namespace, name), each answered or 404.
    Props(Vec<(String, String)>),
}

impl Asked {
    /// Whether answering needs the entries' dead properties.
    fn needs_dead(&self) -> bool {
        match self {
            Asked::All | Asked::Names => true,
            Asked::Props(ps) => ps
                .iter()
                .any(|(ns, name)| !(ns == DAV && LIVE.contains(&name.as_str()))),
        }
    }
}

/// The live properties bale keeps, by their name in DAV:.
const LIVE: [&str; 7] = [
    "displayname",
    "resourcetype",
    "getcontentlength",
    "getcontenttype",
    "getetag",
    "getlastmodified",
    "creationdate",
];

/// A live property of an entry as XML, if the entry has it.
fn live(n: &Node, name: &str) -> Option<String> {
    let v = match name {
        "displayname" => escape(if n.name.is_empty() { "/" } else { &n.name }).into_owned(),
        "resourcetype" if n.is_dir() => "<D:collection/>".into(),
        "resourcetype" => String::new(),
        "getcontentlength" if !n.is_dir() => n.size.to_string(),
        "getcontenttype" if !n.is_dir() => "application/octet-stream".into(),
        "getetag" => format!("\"{}\"", n.file_id?),
        "getlastmodified" => httpdate::fmt_http_date(n.mtime.to_system_time()),
        "creationdate" => rfc3339(n.ctime),
        _ => return None,
    };
    Some(match v.is_empty() {
        true => format!("<D:{name}/>"),
        false => format!("<D:{name}>{v}</D:{name}>"),
    })
}

fn propstat(out: &mut String, props: &str, status: &str) {
    if !props.is_empty() {
        out.push_str(&format!(
            "<D:propstat><D:prop>{props}</D:prop><D:status>HTTP/1.1 {status}</D:status></D:propstat>"
        ));
    }
}

fn response_xml(path: &NsPath, n: &Node, asked: &Asked, dead: &[DeadProp]) -> String {
    let (mut found, mut missing) = (String::new(), String::new());
    match asked {
        Asked::All => {
            LIVE.iter().filter_map(|l| live(n, l)).for_each(|x| found.push_str(&x));
            dead.iter().for_each(|p| found.push_str(&p.xml));
        }
        Asked::Names => {
            for l in LIVE.iter().filter(|l| live(n, l).is_some()) {
                found.push_str(&xml::name_only(DAV, l));
            }
            dead.iter().for_each(|p| found.push_str(&xml::empty(&p.ns, &p.name)));
        }
        Asked::Props(ps) => {
            for (ns, name) in ps {
                let value = match ns == DAV && LIVE.contains(&name.as_str()) {
                    true => live(n, name),
                    false => dead
                        .iter()
                        .find(|p| &p.ns == ns && &p.name == name)
                        .map(|p| p.xml.clone()),
                };
                match value {
                    Some(v) => found.push_str(&v),
                    None => missing.push_str(&xml::name_only(ns, name)),
                }
            }
        }
    }
    let mut out = format!("<D:response><D:href>{}</D:href>", escape(href(path, n.is_dir())));
    propstat(&mut out, &found, "200 OK");
    propstat(&mut out, &missing, "404 Not Found");
    if found.is_empty() && missing.is_empty() {
        out.push_str("<D:propstat><D:prop/><D:status>HTTP/1.1 200 OK</D:status></D:propstat>");
    }
    out.push_str("</D:response>\n");
    out
}

/// The response of a directory's entry. An entry whose path is not valid
/// (an over-long path a catalog of an older version let a MOVE make) is an
/// error the server logs, never a panic.
fn child_xml(dir: &NsPath, n: &Node, asked: &Asked, dead: &HashMap<NodeId, Vec<DeadProp>>) -> Result<String, ApiError> {
    let path = dir.join(&n.name).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "the catalog holds an entry of {dir} whose path is not valid ({:?}): {e}",
                n.name
            ),
        )
    })?;
    Ok(response_xml(
        &path,
        n,
        asked,
        dead.get(&n.id).map_or(&[][..], Vec::as_slice),
    ))
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
    asked: Asked,
) -> Result<Response, ApiError> {
    // RFC 4918 9.1: a missing Depth means infinity, which a server may
    // refuse on a collection with 403 and the DAV:propfind-finite-depth
    // precondition (on a file, depth changes nothing).
    let depth_header = h
        .get("depth")
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    let depth: Option<u8> = match depth_header.as_deref() {
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
            return Err(infinite_depth(match depth_header {
                None => "PROPFIND without a Depth header (which means Depth: infinity, RFC 4918 section 9.1)",
                Some(_) => "PROPFIND with Depth: infinity",
            }))
        }
    };
    let dead = match asked.needs_dead() {
        true => st.svc.dead_props(who, path, std::slice::from_ref(&node), false).await?,
        false => HashMap::new(),
    };
    let first = format!("{HEAD}{}", child_or_root(path, &node, &asked, &dead));
    let body = if depth == 0 || !node.is_dir() {
        Body::from(format!("{first}{TAIL}"))
    } else {
        // Check permission and fetch the first page before answering 207.
        // Pages are smaller when each entry may carry dead properties
        // (at most 64 KiB of them each), to bound a page's memory.
        let page_size = if asked.needs_dead() { PAGE_WITH_PROPS } else { PAGE };
        let page = st.svc.list(who, path, None, page_size).await?;
        let svc = st.svc.clone();
        let who = who.clone();
        let dir = path.clone();
        let mut chunk = first;
        let dead = match asked.needs_dead() {
            true => st.svc.dead_props(&who, &dir, &page.entries, true).await?,
            false => HashMap::new(),
        };
        for n in &page.entries {
            chunk.push_str(&child_xml(&dir, n, &asked, &dead)?);
        }
        let asked = std::sync::Arc::new(asked);
        let state = (Some(chunk), page.next, false);
        let stream = futures::stream::unfold(state, move |(pending, after, done)| {
            let (svc, who, dir, asked) = (svc.clone(), who.clone(), dir.clone(), asked.clone());
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
                let listed = match svc.list(&who, &dir, Some(&cursor), page_size).await {
                    Ok(page) if asked.needs_dead() => {
                        svc.dead_props(&who, &dir, &page.entries, true).await.map(|d| (page, d))
                    }
                    Ok(page) => Ok((page, HashMap::new())),
                    Err(e) => Err(e),
                };
                match listed {
                    Ok((page, dead)) => {
                        let mut s = String::new();
                        for n in &page.entries {
                            match child_xml(&dir, n, &asked, &dead) {
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

/// Reads what a PROPFIND asks for from its body (RFC 4918 9.1, 14.20):
/// none is `allprop`; otherwise a `DAV:propfind` with `allprop`,
/// `propname` or `prop`. A body that is not well-formed XML with
/// namespaces, or not a propfind, is 400.
pub(crate) async fn read_propfind(body: Body) -> Result<Asked, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|e| ApiError::bad_request(format!("cannot read the PROPFIND body (at most {MAX_BODY} bytes): {e}")))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Asked::All);
    }
    let bad = |m: String| ApiError::bad_request(format!("the PROPFIND body is not valid: {m}"));
    let root = xml::parse(&bytes).map_err(bad)?;
    if !root.is(DAV, "propfind") {
        return Err(bad(format!(
            "its root element is {}, not {{DAV:}}propfind",
            root.clark()
        )));
    }
    for el in root.elements().filter(|e| e.ns == DAV) {
        match el.local.as_str() {
            "allprop" => return Ok(Asked::All),
            "propname" => return Ok(Asked::Names),
            "prop" => {
                let asked: Vec<(String, String)> = el.elements().map(|p| (p.ns.clone(), p.local.clone())).collect();
                if asked.len() > MAX_ASKED {
                    return Err(bad(format!("it names {} properties; at most {MAX_ASKED}", asked.len())));
                }
                return Ok(Asked::Props(asked));
            }
            _ => {}
        }
    }
    Err(bad("it asks for none of allprop, propname or prop".into()))
}

/// Largest PROPFIND or PROPPATCH body read.
pub(crate) const MAX_BODY: usize = 1 << 20;

fn child_or_root(path: &NsPath, n: &Node, asked: &Asked, dead: &HashMap<NodeId, Vec<DeadProp>>) -> String {
    response_xml(path, n, asked, dead.get(&n.id).map_or(&[][..], Vec::as_slice))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn propfind_bodies() {
        let read = |b: &'static str| read_propfind(Body::from(b));
        assert_eq!(read("").await.unwrap(), Asked::All);
        assert_eq!(
            read(r#"<propfind xmlns="DAV:"><foobar/><allprop/></propfind>"#)
                .await
                .unwrap(),
            Asked::All
        );
        assert_eq!(
            read(r#"<D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>"#)
                .await
                .unwrap(),
            Asked::Names
        );
        assert_eq!(
            read(r#"<propfind xmlns="DAV:"><prop><getetag/><x xmlns="urn:x"/><y xmlns=""/></prop></propfind>"#)
                .await
                .unwrap(),
            Asked::Props(vec![
                ("DAV:".into(), "getetag".into()),
                ("urn:x".into(), "x".into()),
                ("".into(), "y".into())
            ])
        );
        for bad in [
            "<foo>",
            r#"<D:propfind xmlns:D="DAV:"><D:prop><bar:foo xmlns:bar=""/></D:prop></D:propfind>"#,
            r#"<propfind/>"#,
            r#"<propfind xmlns="DAV:"/>"#,
        ] {
            assert_eq!(read(bad).await.unwrap_err().status, StatusCode::BAD_REQUEST, "{bad}");
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
