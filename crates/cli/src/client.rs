//! A client of bale's HTTP API: URLs for namespace paths, bearer auth, and
//! problem+json errors turned into readable messages.

use anyhow::{anyhow, bail, Context, Result};
use bale_api::model::{Entry, ListPage};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    pub fn new(server: &str, token: String) -> Result<Client> {
        Client::with_ca(server, token, None)
    }

    /// A client that also trusts the CA certificates in the PEM file `ca`
    /// (an https server's certificate is checked against the system's
    /// roots and these).
    pub fn with_ca(server: &str, token: String, ca: Option<&std::path::Path>) -> Result<Client> {
        let base = server.trim_end_matches('/').to_string();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            bail!("server must be an http:// or https:// URL, not {server:?}");
        }
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true);
        if let Some(ca) = ca {
            let pem = std::fs::read(ca).with_context(|| format!("cannot read the CA file {}", ca.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("{} is not a PEM file of certificates", ca.display()))?;
            if certs.is_empty() {
                bail!("{} holds no PEM certificate", ca.display());
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let http = b.build()?;
        Ok(Client { http, base, token })
    }

    /// The URL of a namespace path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, bale_util::url_path(path))
    }

    pub fn api(&self, endpoint: &str) -> String {
        format!("{}/api/v1/{endpoint}", self.base)
    }

    pub fn request(&self, method: Method, url: &str) -> RequestBuilder {
        self.http.request(method, url).bearer_auth(&self.token)
    }

    pub async fn get_json<T: DeserializeOwned>(&self, endpoint: &str, query: &[(&str, &str)]) -> Result<T> {
        let r = self.request(Method::GET, &self.api(endpoint)).query(query).send().await;
        decode(check(r, endpoint).await?).await
    }

    pub async fn post_json<T: DeserializeOwned>(&self, endpoint: &str, body: &impl Serialize) -> Result<T> {
        let r = self.request(Method::POST, &self.api(endpoint)).json(body).send().await;
        decode(check(r, endpoint).await?).await
    }

    pub async fn stat(&self, path: &str) -> Result<Entry> {
        self.get_json("stat", &[("path", path)]).await
    }

    /// The entry and where it stands on its way to tape.
    pub async fn stat_full(&self, path: &str) -> Result<bale_api::model::StatEntry> {
        self.get_json("stat", &[("path", path)]).await
    }

    /// Like [`Client::stat`], but `None` when the path does not exist.
    pub async fn try_stat(&self, path: &str) -> Result<Option<Entry>> {
        let r = self
            .request(Method::GET, &self.api("stat"))
            .query(&[("path", path)])
            .send()
            .await
            .map_err(|e| transport_error(&e, path))?;
        if r.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        decode(check(Ok(r), path).await?).await.map(Some)
    }

    pub async fn list_page(&self, path: &str, after: Option<&str>, limit: usize) -> Result<ListPage> {
        let limit = limit.to_string();
        let mut q = vec![("path", path), ("limit", limit.as_str())];
        if let Some(a) = after {
            q.push(("after", a));
        }
        self.get_json("list", &q).await
    }

    /// Calls `each` for every entry of a directory, page by page.
    pub async fn list_all(&self, path: &str, mut each: impl FnMut(Entry) -> Result<()>) -> Result<()> {
        let mut after: Option<String> = None;
        loop {
            let page = self.list_page(path, after.as_deref(), 5000).await?;
            for e in page.entries {
                each(e)?;
            }
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(()),
            }
        }
    }
}

/// Turns a transport error or a non-2xx answer into a readable error.
pub async fn check(r: reqwest::Result<Response>, what: &str) -> Result<Response> {
    let r = r.map_err(|e| transport_error(&e, what))?;
    if r.status().is_success() {
        return Ok(r);
    }
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    let detail = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_string))
        .unwrap_or(text);
    bail!("{what}: {} ({})", detail.trim(), status)
}

/// A request that did not get an answer: a refused connection names the
/// server it tried.
pub(crate) fn transport_error(e: &reqwest::Error, what: &str) -> anyhow::Error {
    let server = e
        .url()
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|| "the server".into());
    // The innermost cause says why (connection refused, no route, ...).
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let why = cause.to_string();
    if why.contains("certificate") || why.contains("UnknownIssuer") {
        return anyhow!(
            "{what}: {server} is not trusted ({cause}); if it uses a site or test CA, pass --ca FILE or set BALE_CA"
        );
    }
    if why.contains("InvalidContentType") || why.contains("corrupt message") {
        return anyhow!("{what}: {server} does not speak TLS ({cause}); try http:// instead of https://");
    }
    if why.contains("invalid HTTP version") && server.starts_with("http://") {
        return anyhow!("{what}: {server} did not answer in HTTP ({cause}); if it speaks TLS, use https://");
    }
    if e.is_connect() {
        return anyhow!("{what}: cannot connect to {server} ({cause}): is the server running at {server}?");
    }
    if e.is_timeout() {
        return anyhow!("{what}: {server} did not answer in time ({cause})");
    }
    anyhow!("{what}: the request to {server} failed: {e} ({cause})")
}

async fn decode<T: DeserializeOwned>(r: Response) -> Result<T> {
    let text = r.text().await?;
    serde_json::from_str(&text).with_context(|| format!("unexpected answer from server: {text}"))
}

/// Joins a remote directory and a name.
pub fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_encode_segments() {
        let c = Client::new("http://h:1/", "t".into()).unwrap();
        assert_eq!(c.url("/a b/é%"), "http://h:1/a%20b/%C3%A9%25");
        assert_eq!(c.url("/"), "http://h:1/");
        assert_eq!(join("/a", "b"), "/a/b");
        assert_eq!(join("/", "b"), "/b");
    }
}
