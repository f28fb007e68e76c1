//! TLS for the accept loop: rustls with the ring provider, HTTP/2 and
//! HTTP/1.1 offered by ALPN, the certificate and key read from PEM files
//! and read again when either file changes on disk, without a restart
//! (a renewal by certbot or the site's tooling is picked up within
//! seconds; a pair that does not load is logged and the old one kept).
//! No client certificate is asked for: gfal2 presents a grid proxy
//! whenever one exists, and a stock verifier rejects RFC 3820 proxies and
//! aborts the handshake.

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};
use tokio_rustls::TlsAcceptor;

/// How often the certificate files are looked at.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// Rings on SIGHUP: the certificate and key are read again at once.
static RELOAD: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Reads the certificate and key of every TLS listener again now (SIGHUP),
/// whether or not their files look changed; a pair that does not load is
/// logged and the old one kept.
pub fn reload_now() {
    // A permit is kept if the watcher is busy: the reload is not lost.
    RELOAD.notify_one();
}

/// The server's TLS setup: the files and what was last loaded from them.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
    /// Session resumption, kept across certificate reloads.
    resume: Resume,
    /// The files' modification times and sizes when last loaded.
    stamp: Mutex<Option<(Stamp, Stamp)>>,
    /// The pair last found broken or missing, so it is said once.
    said: Mutex<Option<Option<(Stamp, Stamp)>>>,
}

type Stamp = (SystemTime, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Session resumption: TLS 1.3 tickets (stateless, the ticket key
/// rotated every 6 hours by rustls) and TLS 1.2 session ids (a cache of
/// 1024), so a client that reconnects (wrk, a file manager, gfal2 per
/// file) skips the full handshake, as nginx's defaults do.
#[derive(Clone)]
struct Resume {
    ticketer: Arc<dyn rustls::server::ProducesTickets>,
    cache: Arc<dyn rustls::server::StoresServerSessions>,
}

impl Resume {
    fn new() -> Result<Resume, String> {
        #[allow(deprecated)] // ring: see `build`
        let ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| format!("no TLS ticket key: {e}"))?;
        Ok(Resume {
            ticketer,
            cache: rustls::server::ServerSessionMemoryCache::new(1024),
        })
    }
}

/// Why the server certificate is not valid now (expired, or not yet
/// valid), if it is not: every client would refuse it.
fn not_valid_now(leaf: &CertificateDer<'_>) -> Option<String> {
    let (_, c) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let v = c.validity();
    let now = x509_parser::time::ASN1Time::now();
    if now > v.not_after {
        Some(format!("the certificate expired on {}: renew it", v.not_after))
    } else if now < v.not_before {
        Some(format!("the certificate is not valid before {}", v.not_before))
    } else {
        None
    }
}

/// A server configuration from a PEM certificate chain and a PEM key.
fn build(cert: &Path, key: &Path, resume: &Resume) -> Result<ServerConfig, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read the certificate {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{} is not a PEM certificate chain: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no certificate", cert.display()));
    }
    if let Some(why) = not_valid_now(&chain[0]) {
        return Err(format!("{}: {why}", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read a PEM private key from {}: {e}", key.display()))?;
    // ring, not aws-lc-rs: no C build toolchain (cmake, a C compiler
    // with assembler) on the build hosts. rustls 0.23.48 deprecates it for
    // its lack of post-quantum key exchange, which no grid client offers
    // yet; X25519 and the NIST curves remain.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("the certificate and the key do not make a server identity: {e}"))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    cfg.ticketer = resume.ticketer.clone();
    cfg.session_storage = resume.cache.clone();
    Ok(cfg)
}

impl Tls {
    /// Loads the pair; an error names the file and what is wrong.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Tls>, String> {
        let stamps = (stamp(cert), stamp(key));
        let resume = Resume::new()?;
        let cfg = build(cert, key, &resume)?;
        Ok(Arc::new(Tls {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(Arc::new(cfg)),
            resume,
            stamp: Mutex::new(stamps.0.zip(stamps.1)),
            said: Mutex::new(None),
        }))
    }

    /// An acceptor with the pair in force now.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().expect("tls config").clone())
    }

    /// Loads the pair again if either file changed; keeps the old one if
    /// the new one does not load (a renewal half written, a key that does
    /// not match), and says so.
    pub(crate) fn reload_if_changed(&self) {
        let now = stamp(&self.cert).zip(stamp(&self.key));
        let mut last = self.stamp.lock().expect("tls stamp");
        if now == *last {
            return;
        }
        // A state of the files that failed is said once, not at every look.
        let mut said = self.said.lock().expect("tls said");
        if *said == Some(now) {
            return;
        }
        if now.is_none() {
            *said = Some(now);
            tracing::warn!(
                "TLS certificate {} or key {} is missing: the loaded pair stays in use",
                self.cert.display(),
                self.key.display()
            );
            return;
        }
        match build(&self.cert, &self.key, &self.resume) {
            Ok(cfg) => {
                *self.current.write().expect("tls config") = Arc::new(cfg);
                *last = now;
                *said = None;
                tracing::info!("TLS certificate reloaded from {}", self.cert.display());
            }
            Err(e) => {
                // Tried again when the files change again.
                *said = Some(now);
                tracing::error!("TLS certificate not reloaded, the previous one stays: {e}");
            }
        }
    }

    /// Looks at the files every few seconds until `stop` says so.
    pub(crate) async fn watch(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(WATCH_EVERY) => {}
                _ = RELOAD.notified() => {
                    // Forgotten, so the files count as changed.
                    *self.stamp.lock().unwrap() = None;
                    *self.said.lock().unwrap() = None;
                }
                _ = stop.changed() => return,
            }
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || me.reload_if_changed()).await;
        }
    }
}
