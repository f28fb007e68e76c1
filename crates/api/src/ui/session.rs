//! Logins of the status page: a random session id in an HttpOnly,
//! SameSite=Strict cookie scoped to `/ui/`, standing for the token typed
//! into the login form. The token is checked again at every request (a
//! revoked token ends its sessions); a session also carries the secret a
//! state-changing request must echo in `X-CSRF-Token`. Sessions live in
//! memory: a restart asks for a new login. At most [`MAX_SESSIONS`]; past
//! that the one nearest its end goes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const COOKIE: &str = "bale_ui";
pub const MAX_SESSIONS: usize = 10_000;

#[derive(Clone, Debug)]
pub struct Session {
    /// The `Authorization` header the login stands for.
    pub authorization: String,
    pub csrf: String,
    pub ends: Instant,
}

pub struct Sessions {
    lifetime: Duration,
    map: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes in hex.
fn secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

impl Sessions {
    pub fn new(lifetime: Duration) -> Sessions {
        Sessions {
            lifetime,
            map: Mutex::new(HashMap::new()),
        }
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// A new session for `authorization`; returns its id.
    pub fn create(&self, authorization: String) -> String {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap();
        map.retain(|_, s| s.ends > now);
        if map.len() >= MAX_SESSIONS {
            if let Some(k) = map.iter().min_by_key(|(_, s)| s.ends).map(|(k, _)| k.clone()) {
                map.remove(&k);
            }
        }
        let id = secret();
        map.insert(
            id.clone(),
            Session {
                authorization,
                csrf: secret(),
                ends: now + self.lifetime,
            },
        );
        id
    }

    /// The live session `id`.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.map.lock().unwrap();
        match map.get(id) {
            Some(s) if s.ends > Instant::now() => Some(s.clone()),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    pub fn remove(&self, id: &str) {
        self.map.lock().unwrap().remove(id);
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// Whether two secrets are equal, in time that does not depend on where
/// they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_end_and_are_bounded() {
        let s = Sessions::new(Duration::from_millis(50));
        let id = s.create("Bearer x".into());
        assert_eq!(id.len(), 64);
        let got = s.get(&id).unwrap();
        assert_eq!(got.authorization, "Bearer x");
        assert_ne!(got.csrf, id);
        std::thread::sleep(Duration::from_millis(60));
        assert!(s.get(&id).is_none(), "ended");
        let s = Sessions::new(Duration::from_secs(60));
        let first = s.create("a".into());
        for _ in 0..MAX_SESSIONS {
            s.create("b".into());
        }
        assert!(s.get(&first).is_none(), "the oldest went at the bound");
        assert_eq!(s.map.lock().unwrap().len(), MAX_SESSIONS);
    }

    #[test]
    fn cookies_and_secrets() {
        assert_eq!(cookie("a=1; bale_ui=xyz; b=2", COOKIE), Some("xyz"));
        assert_eq!(cookie("bale_uix=1", COOKIE), None);
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }
}
