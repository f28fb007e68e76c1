//! The workload: one client per thread, with its own directory, random
//! stream and model.

use super::{Content, Model};
use bale_util::Adler32;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// One client: a thread with its own directory, its own random stream and
/// its own model.
pub(super) struct Client {
    http: reqwest::blocking::Client,
    url: String,
    token: String,
    dir: String,
    rng: StdRng,
}

/// What an operation's request came to.
enum Sent {
    Answer(u16, Vec<u8>),
    /// No answer: the server is gone.
    Cut,
}

impl Client {
    pub(super) fn new(url: &str, token: &str, c: usize, seed: u64) -> Client {
        Client {
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(150))
                .build()
                .unwrap(),
            url: url.to_string(),
            token: token.to_string(),
            dir: format!("/h/c{c}"),
            rng: StdRng::seed_from_u64(seed),
        }
    }

    fn send(&self, rb: reqwest::blocking::RequestBuilder) -> Sent {
        match rb.bearer_auth(&self.token).send() {
            Ok(r) => {
                let s = r.status().as_u16();
                match r.bytes() {
                    Ok(b) => Sent::Answer(s, b.to_vec()),
                    Err(_) => Sent::Cut,
                }
            }
            Err(_) => Sent::Cut,
        }
    }

    fn post(&self, endpoint: &str, body: Value) -> Sent {
        self.send(self.http.post(format!("{}/api/v1/{endpoint}", self.url)).json(&body))
    }

    fn content(&mut self) -> Content {
        let size = match self.rng.random_range(0..100) {
            0..80 => self.rng.random_range(0..64 << 10),
            80..97 => self.rng.random_range(64 << 10..600 << 10),
            _ => self.rng.random_range(1 << 20..3 << 20),
        };
        Content {
            seed: self.rng.random(),
            size,
        }
    }

    /// Runs up to `ops` operations; stops early when the server dies.
    /// Returns the operations done.
    pub(super) fn run(
        &mut self,
        m: &mut Model,
        ops: usize,
        dead: &AtomicBool,
        violations: &Mutex<Vec<String>>,
    ) -> usize {
        let mut done = 0;
        while done < ops && !dead.load(Ordering::Relaxed) {
            done += 1;
            match self.op(m) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    violations.lock().unwrap().push(e);
                    break;
                }
            }
        }
        done
    }

    /// One operation. Ok(false): cut off (the server is gone); Err: an
    /// answer the model says is wrong.
    fn op(&mut self, m: &mut Model) -> Result<bool, String> {
        let certain = m.certain();
        let any = |rng: &mut StdRng| -> Option<(String, Content)> {
            (!certain.is_empty()).then(|| certain[rng.random_range(0..certain.len())].clone())
        };
        let roll = self.rng.random_range(0..100);
        let pick = any(&mut self.rng);
        match (roll, pick) {
            (0..40, _) | (_, None) => {
                m.next += 1;
                let path = format!("{}/d{}/f{}", self.dir, self.rng.random_range(0..3), m.next);
                let c = self.content();
                self.put(m, &path, None, c)
            }
            (40..50, Some((path, old))) => {
                let c = self.content();
                self.put(m, &path, Some(old), c)
            }
            (50..65, Some((path, c))) => {
                let r = self.send(self.http.get(format!("{}{path}", self.url)));
                match r {
                    Sent::Cut => Ok(false),
                    Sent::Answer(200, b) if b == c.data() => Ok(true),
                    Sent::Answer(200, b) => Err(format!(
                        "{path}: read {} bytes that differ from the {} written",
                        b.len(),
                        c.size
                    )),
                    Sent::Answer(s, b) => Err(format!("{path}: GET answered {s}: {}", String::from_utf8_lossy(&b))),
                }
            }
            (65..73, Some((path, c))) => {
                m.files.insert(path.clone(), vec![Some(c), None]);
                match self.send(self.http.delete(format!("{}{path}", self.url))) {
                    Sent::Cut => Ok(false),
                    Sent::Answer(200 | 204, _) => {
                        m.files.remove(&path);
                        m.pinned.remove(&path);
                        Ok(true)
                    }
                    Sent::Answer(s, b) => Err(format!("DELETE {path}: {s}: {}", String::from_utf8_lossy(&b))),
                }
            }
            (73..81, Some((from, c))) => {
                // Onto a new name mostly, sometimes over another file.
                let onto = if self.rng.random_bool(0.3) {
                    any(&mut self.rng)
                } else {
                    None
                };
                let to = match &onto {
                    Some((p, _)) if *p != from => p.clone(),
                    _ => {
                        m.next += 1;
                        format!("{}/d{}/r{}", self.dir, self.rng.random_range(0..3), m.next)
                    }
                };
                let before = m.files.get(&to).cloned().unwrap_or(vec![None]);
                // Until the answer, neither path is known to hold a pin.
                let was_pinned = m.pinned.remove(&from);
                m.pinned.remove(&to);
                m.files.insert(from.clone(), vec![Some(c), None]);
                m.files
                    .insert(to.clone(), before.iter().copied().chain([Some(c)]).collect());
                let rb = self
                    .http
                    .request(
                        reqwest::Method::from_bytes(b"MOVE").unwrap(),
                        format!("{}{from}", self.url),
                    )
                    .header("Destination", format!("{}{to}", self.url))
                    .header("Overwrite", "T");
                match self.send(rb) {
                    Sent::Cut => Ok(false),
                    Sent::Answer(201 | 204, _) => {
                        m.files.remove(&from);
                        m.files.insert(to.clone(), vec![Some(c)]);
                        if was_pinned {
                            m.pinned.insert(to);
                        }
                        Ok(true)
                    }
                    Sent::Answer(s, b) => Err(format!("MOVE {from} {to}: {s}: {}", String::from_utf8_lossy(&b))),
                }
            }
            (81..86, Some(_)) => {
                let paths: Vec<String> = (0..20).filter_map(|_| any(&mut self.rng)).map(|(p, _)| p).collect();
                self.expect(self.post("cache/purge", json!({ "paths": paths })), 200, "purge")
            }
            (86..90, Some(_)) => {
                let paths: Vec<String> = (0..10).filter_map(|_| any(&mut self.rng)).map(|(p, _)| p).collect();
                match self.post("stage", json!({ "paths": paths })) {
                    Sent::Cut => Ok(false),
                    Sent::Answer(201, b) => {
                        let v: Value = serde_json::from_slice(&b).unwrap();
                        m.stages.push(v["id"].as_i64().unwrap());
                        Ok(true)
                    }
                    Sent::Answer(s, b) => Err(format!("stage: {s}: {}", String::from_utf8_lossy(&b))),
                }
            }
            (90..94, Some((path, _))) => {
                if m.pinned.contains(&path) && self.rng.random_bool(0.5) {
                    // Released: no longer expected, whatever the answer.
                    m.pinned.remove(&path);
                    self.expect(self.post("pins/release", json!({ "paths": [path] })), 200, "unpin")
                } else {
                    let r = self.post("pins", json!({ "paths": [path.clone()], "lifetime_s": 86400 }));
                    let ok = matches!(r, Sent::Answer(200, _));
                    let out = self.expect(r, 200, "pin");
                    if ok {
                        m.pinned.insert(path);
                    }
                    out
                }
            }
            (94..96, Some(_)) if !m.stages.is_empty() => {
                let id = m.stages[self.rng.random_range(0..m.stages.len())];
                self.expect(self.post(&format!("stage/{id}/cancel"), json!({})), 200, "cancel")
            }
            _ => self.expect(self.post("queue/flush", json!({})), 200, "flush"),
        }
    }

    fn expect(&self, r: Sent, want: u16, what: &str) -> Result<bool, String> {
        match r {
            Sent::Cut => Ok(false),
            Sent::Answer(s, _) if s == want => Ok(true),
            Sent::Answer(s, b) => Err(format!("{what}: {s}: {}", String::from_utf8_lossy(&b))),
        }
    }

    fn put(&mut self, m: &mut Model, path: &str, old: Option<Content>, c: Content) -> Result<bool, String> {
        m.files.insert(path.to_string(), vec![old, Some(c)]);
        // A new file at the path holds none of the old one's pins.
        m.pinned.remove(path);
        let data = c.data();
        let rb = self
            .http
            .put(format!("{}{path}", self.url))
            .header("Digest", Adler32::of(&data).digest_header())
            .header("Overwrite", if old.is_some() { "T" } else { "F" })
            .body(data);
        match self.send(rb) {
            Sent::Cut => Ok(false),
            // 201 for a new file, 200 for one replaced (RFC 9110 9.3.4).
            Sent::Answer(200 | 201, _) => {
                m.files.insert(path.to_string(), vec![Some(c)]);
                Ok(true)
            }
            Sent::Answer(s, b) => Err(format!("PUT {path}: {s}: {}", String::from_utf8_lossy(&b))),
        }
    }
}
