//! Where a request came from and by which URL the client reached bale.
//!
//! The URL bale emits (discovery, `Location`, the `Destination` it accepts)
//! is, in order: the configured `server.public_url`; what a trusted proxy
//! says in `Forwarded` (RFC 7239) or `X-Forwarded-Proto` /
//! `X-Forwarded-Host`; else the connection's own scheme (https on TLS) and
//! the request's Host. Forwarding headers from an address that is not a
//! configured trusted proxy are ignored, so a client cannot make bale
//! advertise or accept another server's URL, nor hide its address from
//! the audit log.

use crate::server::ConnInfo;
use axum::extract::Request;
use axum::http::{header, HeaderMap};
use std::net::{IpAddr, Ipv4Addr};

/// The trust settings, from `[server]`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Trust {
    /// `public_url` as scheme and authority.
    pub public: Option<(String, String)>,
    pub proxies: Vec<ipnet::IpNet>,
}

/// What a request's handlers know of where it came from.
#[derive(Clone, Debug)]
pub(crate) struct Origin {
    /// The scheme and authority clients use for this server.
    pub scheme: String,
    pub authority: String,
    /// The scheme and authority of the connection itself (TLS or not, and
    /// the Host header): a server reached by two names is both.
    pub direct: (String, String),
    /// The client's address: the peer, or, behind a trusted proxy, the
    /// address the proxy says it serves.
    pub client: IpAddr,
    /// The peer is a trusted proxy: its `X-Request-Id` is believed.
    pub via_proxy: bool,
}

impl Origin {
    /// `scheme://authority`, no trailing slash.
    pub fn base(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }

    /// Whether a URL's scheme and authority name this server.
    pub fn is_ours(&self, scheme: &str, authority: &str) -> bool {
        let theirs = normal(scheme, authority);
        theirs == normal(&self.scheme, &self.authority) || theirs == normal(&self.direct.0, &self.direct.1)
    }
}

/// Lower case, and without the scheme's default port.
fn normal(scheme: &str, authority: &str) -> (String, String) {
    let scheme = scheme.to_ascii_lowercase();
    let mut a = authority.to_ascii_lowercase();
    let default = if scheme == "https" { ":443" } else { ":80" };
    if a.ends_with(default) {
        a.truncate(a.len() - default.len());
    }
    (scheme, a)
}

fn header(h: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The last element of a comma-separated header (the one the nearest proxy
/// added), across repeated header lines.
fn last_element(h: &HeaderMap, name: &str) -> Option<String> {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .rfind(|v| !v.is_empty())
        .map(str::to_string)
}

/// `for`, `proto` and `host` of the last `Forwarded` element.
fn forwarded(h: &HeaderMap) -> (Option<String>, Option<String>, Option<String>) {
    let (mut for_, mut proto, mut host) = (None, None, None);
    if let Some(el) = last_element(h, "forwarded") {
        for pair in el.split(';') {
            let Some((k, v)) = pair.split_once('=') else { continue };
            let v = v.trim().trim_matches('"').to_string();
            match k.trim().to_ascii_lowercase().as_str() {
                "for" => for_ = Some(v),
                "proto" => proto = Some(v.to_ascii_lowercase()),
                "host" => host = Some(v),
                _ => {}
            }
        }
    }
    (for_, proto, host)
}

/// An address as a proxy writes it: `192.0.2.1`, `192.0.2.1:4711`,
/// `[2001:db8::1]:4711`, `2001:db8::1`.
fn address(s: &str) -> Option<IpAddr> {
    let s = s.trim().trim_matches('"');
    if let Ok(a) = s.parse() {
        return Some(a);
    }
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    let inner = s.strip_prefix('[')?.split(']').next()?;
    inner.parse().ok()
}

/// A scheme a proxy may name: http or https, nothing else.
fn scheme(s: &str) -> Option<String> {
    let s = s.to_ascii_lowercase();
    (s == "http" || s == "https").then_some(s)
}

/// A host a proxy may name: letters, digits, `-.:[]`, no more than 255.
fn host(s: &str) -> Option<String> {
    let ok = !s.is_empty() && s.len() <= 255 && s.chars().all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c));
    ok.then(|| s.to_ascii_lowercase())
}

/// The origin of a request, from its connection, headers and the trust
/// settings.
pub(crate) fn of(req: &Request, trust: &Trust) -> Origin {
    let conn = req.extensions().get::<ConnInfo>().copied();
    let peer = conn.map(|c| c.peer.ip()).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let direct_scheme = if conn.is_some_and(|c| c.tls) { "https" } else { "http" };
    let h = req.headers();
    let direct_authority = header(h, header::HOST)
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .and_then(|a| host(&a))
        .unwrap_or_else(|| "localhost".to_string());
    let direct = (direct_scheme.to_string(), direct_authority);
    let trusted = conn.is_some() && trust.proxies.iter().any(|n| n.contains(&peer));
    let mut origin = Origin {
        scheme: direct.0.clone(),
        authority: direct.1.clone(),
        direct,
        client: peer,
        via_proxy: trusted,
    };
    if trusted {
        let (for_, proto, fhost) = forwarded(h);
        let proto = proto
            .or_else(|| last_element(h, "x-forwarded-proto"))
            .and_then(|p| scheme(&p));
        let fhost = fhost
            .or_else(|| last_element(h, "x-forwarded-host"))
            .and_then(|x| host(&x));
        if let Some(p) = proto {
            origin.scheme = p;
        }
        if let Some(x) = fhost {
            origin.authority = x;
        }
        // The client: the nearest address in the chain that is not itself
        // a trusted proxy.
        let chain: Vec<IpAddr> = match for_ {
            Some(f) => address(&f).into_iter().collect(),
            None => h
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(address)
                .collect(),
        };
        if let Some(c) = chain
            .iter()
            .rev()
            .find(|a| !trust.proxies.iter().any(|n| n.contains(*a)))
            .or(chain.first())
        {
            origin.client = *c;
        }
    }
    if let Some((s, a)) = &trust.public {
        origin.scheme = s.clone();
        origin.authority = a.clone();
    }
    origin
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn req(peer: &str, tls: bool, headers: &[(&str, &str)]) -> Request {
        let mut r = Request::builder().uri("/x");
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let mut r = r.body(Body::empty()).unwrap();
        r.extensions_mut().insert(ConnInfo {
            peer: peer.parse().unwrap(),
            tls,
        });
        r
    }

    fn trust(proxies: &[&str], public: Option<(&str, &str)>) -> Trust {
        Trust {
            public: public.map(|(s, a)| (s.into(), a.into())),
            proxies: proxies
                .iter()
                .map(|p| {
                    p.parse()
                        .unwrap_or_else(|_| ipnet::IpNet::from(p.parse::<IpAddr>().unwrap()))
                })
                .collect(),
        }
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let h = [
            ("host", "bale:8742"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "tape.example.org"),
            ("x-forwarded-for", "192.0.2.9"),
        ];
        let t = trust(&["10.0.0.0/8"], None);
        let o = of(&req("198.51.100.1:5000", false, &h), &t);
        assert_eq!(
            (o.base(), o.client.to_string()),
            ("http://bale:8742".into(), "198.51.100.1".into())
        );
        let o = of(&req("10.1.2.3:5000", false, &h), &t);
        assert_eq!(
            (o.base(), o.client.to_string()),
            ("https://tape.example.org".into(), "192.0.2.9".into())
        );
        assert!(o.is_ours("HTTPS", "tape.example.org:443") && o.is_ours("http", "bale:8742"));
        assert!(!o.is_ours("http", "tape.example.org"));
    }

    #[test]
    fn forwarded_takes_the_nearest_element_and_public_url_wins() {
        let h = [
            ("host", "bale"),
            (
                "forwarded",
                "for=203.0.113.1;proto=http, for=\"[2001:db8::7]:99\";proto=https;host=a.example",
            ),
        ];
        let o = of(&req("10.0.0.1:1", false, &h), &trust(&["10.0.0.1"], None));
        assert_eq!(
            (o.base(), o.client.to_string()),
            ("https://a.example".into(), "2001:db8::7".into())
        );
        let o = of(
            &req("10.0.0.1:1", true, &h),
            &trust(&[], Some(("https", "pub.example:8443"))),
        );
        assert_eq!(
            (o.base(), o.direct.0.as_str()),
            ("https://pub.example:8443".into(), "https")
        );
        // A proxy naming a scheme or host that is not one is not believed.
        let h = [
            ("host", "bale"),
            ("x-forwarded-proto", "javascript"),
            ("x-forwarded-host", "a/b"),
        ];
        let o = of(&req("10.0.0.1:1", false, &h), &trust(&["10.0.0.1"], None));
        assert_eq!(o.base(), "http://bale");
    }
}
