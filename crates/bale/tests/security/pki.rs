//! A certificate authority and a WLCG token issuer made at run time.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::path::{Path, PathBuf};

/// A test CA (rcgen) that signs server certificates.
pub struct Ca {
    cert: rcgen::Certificate,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

/// A server certificate and key, as files.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let cert = p.self_signed(&key).unwrap();
        let issuer = rcgen::Issuer::new(p, key);
        Ca { cert, issuer }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// Writes the CA certificate to `dir/name`.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, self.pem()).unwrap();
        p
    }

    /// A directory with the CA under its OpenSSL subject-hash name, as
    /// gfal2 and davix read `X509_CERT_DIR` (`openssl rehash`).
    pub fn cert_dir(&self, dir: &Path) -> PathBuf {
        let d = dir.join("certificates");
        std::fs::create_dir_all(&d).unwrap();
        self.write(&d, "bale-test-ca.pem");
        let out = std::process::Command::new("openssl")
            .arg("rehash")
            .arg(&d)
            .output()
            .expect("openssl (for openssl rehash)");
        assert!(
            out.status.success(),
            "openssl rehash: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        d
    }

    /// A server certificate for localhost and 127.0.0.1 (and `extra`
    /// names), written as `dir/<stem>.crt` and `dir/<stem>.key`.
    pub fn leaf(&self, dir: &Path, stem: &str, cn: &str) -> Leaf {
        self.leaf_with(dir, stem, cn, |_| {})
    }

    /// A server certificate that expired in 2021.
    pub fn expired_leaf(&self, dir: &Path, stem: &str) -> Leaf {
        self.leaf_with(dir, stem, "expired", |p| {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        })
    }

    fn leaf_with(&self, dir: &Path, stem: &str, cn: &str, adjust: impl FnOnce(&mut rcgen::CertificateParams)) -> Leaf {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        adjust(&mut p);
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        let leaf = Leaf {
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
        };
        // The chain: leaf then CA, as servers send it.
        std::fs::write(&leaf.cert, format!("{}{}", cert.pem(), self.pem())).unwrap();
        std::fs::write(&leaf.key, key.serialize_pem()).unwrap();
        leaf
    }
}

/// A WLCG token issuer: its keys, its JWKS file, and tokens it signs.
pub struct Issuer {
    pub iss: String,
    pub jwks: PathBuf,
    keys: Vec<(String, Algorithm, EncodingKey, serde_json::Value)>,
}

impl Issuer {
    /// An issuer with one ES256 key `es1` and one RS256 key `rs1`.
    pub fn new(dir: &Path, iss: &str) -> Issuer {
        let mut i = Issuer {
            iss: iss.to_string(),
            jwks: dir.join(format!("jwks-{}.json", iss.len())),
            keys: Vec::new(),
        };
        i.add_es256("es1");
        i.add_rs256(dir, "rs1");
        i.publish();
        i
    }

    pub fn add_es256(&mut self, kid: &str) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let enc = EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
        self.add(kid, Algorithm::ES256, enc);
    }

    pub fn add_rs256(&mut self, dir: &Path, kid: &str) {
        let pem = dir.join(format!("{kid}.pem"));
        let out = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(&pem)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl genpkey: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let enc = EncodingKey::from_rsa_pem(&std::fs::read(&pem).unwrap()).unwrap();
        self.add(kid, Algorithm::RS256, enc);
    }

    fn add(&mut self, kid: &str, alg: Algorithm, enc: EncodingKey) {
        let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&enc, alg).unwrap();
        jwk.common.key_id = Some(kid.to_string());
        let jwk = serde_json::to_value(&jwk).unwrap();
        self.keys.push((kid.to_string(), alg, enc, jwk));
    }

    /// Drops a key from the issuer (and, once published, its JWKS).
    pub fn remove(&mut self, kid: &str) {
        self.keys.retain(|k| k.0 != kid);
    }

    /// Writes the JWKS file (atomically, as a key server's cache would).
    pub fn publish(&self) {
        let set = serde_json::json!({ "keys": self.keys.iter().map(|k| k.3.clone()).collect::<Vec<_>>() });
        let tmp = self.jwks.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&set).unwrap()).unwrap();
        std::fs::rename(&tmp, &self.jwks).unwrap();
    }

    /// The claims of a good token: this issuer, audience `bale-test`, an
    /// hour to live, `wlcg.ver` 1.0, subject `sub-1`; `extra` on top
    /// (a `null` value removes the claim).
    pub fn claims(&self, extra: serde_json::Value) -> serde_json::Value {
        let now = now();
        let mut c = serde_json::json!({
            "iss": self.iss, "sub": "sub-1", "aud": "bale-test",
            "iat": now, "nbf": now - 5, "exp": now + 3600,
            "wlcg.ver": "1.0", "jti": format!("jti-{now}"),
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    }

    /// A token with `scope` (space-separated) signed by key `es1`.
    pub fn token(&self, scope: &str) -> String {
        self.sign("es1", &self.claims(serde_json::json!({ "scope": scope })))
    }

    /// `claims` signed by key `kid`.
    pub fn sign(&self, kid: &str, claims: &serde_json::Value) -> String {
        self.sign_naming(kid, kid, claims)
    }

    /// `claims` signed by key `kid`, the header naming `header_kid`.
    pub fn sign_naming(&self, kid: &str, header_kid: &str, claims: &serde_json::Value) -> String {
        let (_, alg, enc, _) = self.keys.iter().find(|k| k.0 == kid).expect("a key of the issuer");
        let mut h = Header::new(*alg);
        h.kid = Some(header_kid.to_string());
        jsonwebtoken::encode(&h, claims, enc).unwrap()
    }

    /// The `[[auth.issuers]]` entry: prefix `prefix`, capability tokens
    /// acting as user `capuser`, and group `/vo/analysis` mapped to `alice`.
    pub fn config(&self, prefix: &str) -> String {
        format!(
            r#"
[[auth.issuers]]
issuer = "{iss}"
prefix = "{prefix}"
jwks = "{jwks}"
user = "capuser"
group = "vo"

[[auth.issuers.groups]]
wlcg_group = "/vo/analysis"
user = "alice"
group = "physics"
"#,
            iss = self.iss,
            jwks = self.jwks.display(),
        )
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Base64url without padding (to forge tokens by hand).
pub fn b64url(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}
