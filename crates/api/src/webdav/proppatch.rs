//! PROPPATCH (RFC 4918 9.2): dead properties set and removed in document
//! order, all or nothing, kept in the catalog. Live properties are
//! protected but one: setting `DAV:getlastmodified` (an HTTP date; or
//! ownCloud's `DAV:lastmodified`, seconds) sets the entry's modification
//! time, as `touch -m` would.

use super::propfind::MAX_BODY;
use super::xml::{self, Element, DAV};
use crate::error::ApiError;
use crate::AppState;
use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bale_catalog::{DeadProp, PropChange};
use bale_core::Principal;
use bale_util::{NsPath, Timestamp};
use quick_xml::escape::escape;

/// One instruction of the request, as answered.
struct Item {
    ns: String,
    name: String,
    /// Why this one cannot be done (403 or 409), if it cannot.
    refused: Option<(u16, String)>,
}

/// A PROPPATCH body read: the changes, the new modification time if it
/// sets one, and each instruction for the answer.
struct Patch {
    changes: Vec<PropChange>,
    mtime: Option<Timestamp>,
    items: Vec<Item>,
}

fn read(body: &[u8]) -> Result<Patch, ApiError> {
    let bad = |m: String| ApiError::bad_request(format!("the PROPPATCH body is not valid: {m}"));
    let root = xml::parse(body).map_err(bad)?;
    if !root.is(DAV, "propertyupdate") {
        return Err(bad(format!(
            "its root element is {}, not {{DAV:}}propertyupdate",
            root.clark()
        )));
    }
    let (mut changes, mut mtime, mut items) = (Vec::new(), None, Vec::new());
    for op in root.elements() {
        let set = match (op.ns.as_str(), op.local.as_str()) {
            (DAV, "set") => true,
            (DAV, "remove") => false,
            _ => return Err(bad(format!("{} is neither {{DAV:}}set nor {{DAV:}}remove", op.clark()))),
        };
        let props = op.elements().filter(|e| e.is(DAV, "prop"));
        for p in props.flat_map(Element::elements) {
            let mut item = Item {
                ns: p.ns.clone(),
                name: p.local.clone(),
                refused: None,
            };
            if p.ns == DAV {
                match (p.local.as_str(), set) {
                    // ownCloud's `lastmodified` (seconds since 1970), which
                    // rclone's owncloud and nextcloud vendors set, does the same.
                    ("getlastmodified" | "lastmodified", true) => match modified(&p.text()) {
                        Some(t) => mtime = Some(t),
                        None => {
                            item.refused = Some((
                                409,
                                format!("{:?} is not an HTTP date or seconds since 1970", p.text().trim()),
                            ))
                        }
                    },
                    _ => {
                        item.refused = Some((
                            403,
                            format!(
                                "DAV:{} is a protected property (DAV:cannot-modify-protected-property)",
                                p.local
                            ),
                        ))
                    }
                }
            } else if set {
                let mut value = String::new();
                xml::write(p, &mut value);
                changes.push(PropChange::Set(DeadProp {
                    ns: p.ns.clone(),
                    name: p.local.clone(),
                    xml: value,
                }));
            } else {
                changes.push(PropChange::Remove {
                    ns: p.ns.clone(),
                    name: p.local.clone(),
                });
            }
            items.push(item);
        }
    }
    if items.is_empty() {
        return Err(bad("it sets and removes no property".into()));
    }
    Ok(Patch { changes, mtime, items })
}

/// A modification time as PROPPATCH sets it: an HTTP date, or seconds
/// since 1970.
fn modified(v: &str) -> Option<Timestamp> {
    match httpdate::parse_http_date(v.trim()) {
        Ok(t) => Some(Timestamp::from(t)),
        Err(_) => super::epoch_seconds(v),
    }
}

pub(crate) async fn proppatch(st: &AppState, who: &Principal, path: &NsPath, body: Body) -> Result<Response, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|e| {
        ApiError::bad_request(format!(
            "cannot read the PROPPATCH body (at most {MAX_BODY} bytes): {e}"
        ))
    })?;
    let Patch { changes, mtime, items } = read(&bytes)?;
    // All or nothing (RFC 4918 9.2): one refused instruction fails them
    // all, the others with 424.
    let failed = items.iter().any(|i| i.refused.is_some());
    if !failed {
        st.svc.patch_props(who, path, &changes, mtime).await?;
    } else {
        // The entry must exist and be the caller's to change, whatever the answer.
        st.svc.patch_props(who, path, &[], None).await?;
    }
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus xmlns:D=\"DAV:\">\n<D:response><D:href>",
    );
    out.push_str(&escape(bale_util::url_path(path.as_str())));
    out.push_str("</D:href>");
    for i in &items {
        let name = xml::name_only(&i.ns, &i.name);
        let (status, why) = match (&i.refused, failed) {
            (Some((code, why)), _) => (*code, Some(why.as_str())),
            (None, true) => (424, None),
            (None, false) => (200, None),
        };
        let reason = StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        out.push_str(&format!(
            "<D:propstat><D:prop>{name}</D:prop><D:status>HTTP/1.1 {status} {reason}</D:status>"
        ));
        if let Some(why) = why {
            out.push_str(&format!(
                "<D:responsedescription>{}</D:responsedescription>",
                escape(why)
            ));
        }
        out.push_str("</D:propstat>");
    }
    out.push_str("</D:response>\n</D:multistatus>\n");
    let mut resp = (StatusCode::MULTI_STATUS, out).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml; charset=utf-8"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_in_order() {
        let body = br#"<?xml version="1.0" encoding="utf-8" ?><propertyupdate xmlns='DAV:'><remove><prop><removeset xmlns='urn:n'/></prop></remove><set><prop><removeset xmlns='urn:n'>x</removeset></prop></set><set><prop><getlastmodified>Tue, 01 Dec 2026 10:00:00 GMT</getlastmodified></prop></set></propertyupdate>"#;
        let Patch { changes, mtime, items } = read(body).unwrap();
        assert_eq!(items.len(), 3);
        assert!(items.iter().all(|i| i.refused.is_none()));
        assert!(matches!(&changes[0], PropChange::Remove { ns, name } if ns == "urn:n" && name == "removeset"));
        assert!(matches!(&changes[1], PropChange::Set(p) if p.xml == "<removeset xmlns=\"urn:n\">x</removeset>"));
        assert!(mtime.is_some());
        let Patch { items, .. } = read(
            br#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:getetag>"x"</D:getetag><a xmlns="urn:a">1</a></D:prop></D:set></D:propertyupdate>"#,
        )
        .unwrap();
        assert_eq!(items[0].refused.as_ref().unwrap().0, 403);
        assert!(items[1].refused.is_none());
        for bad in [
            &b"<propertyupdate xmlns='DAV:'/>"[..],
            b"<propfind xmlns='DAV:'/>",
            b"<propertyupdate xmlns='DAV:'><set><prop><a:b/></prop></set></propertyupdate>",
            b"<propertyupdate xmlns='DAV:'><frob/></propertyupdate>",
        ] {
            assert!(read(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
