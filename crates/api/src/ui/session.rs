//! Logins of the status page: a random session id in an HttpOnly,
//! SameSite=Strict cookie scoped to `/ui/`, standing for the token typed
//! into the login form. The token is checked again at every request (a
//! revoked token ends its sessions); a session also carries the secret a
//! state-changing request must echo in `X-CSRF-Token`. Sessions live in
//! memory: a restart asks for a new login. At most [`MAX_PER_USER`] per
//! user and [`MAX_SESSIONS`] in all; past either, the one nearest its end
//! goes (of that user first).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const COOKIE: &str = "bale_ui";
pub const MAX_SESSIONS: usize = 10_000;
/// Sessions of one user at most: logging in again and again ends that
/// user's oldest sessions, never another user's.
pub const MAX_PER_USER: usize = 20;

#[derive(Clone, Debug)]
pub struct Session {
    /// The `Authorization` header the login stands for.
    pub authorization: String,
    pub csrf: String,
    pub user: String,
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

    /// A new session of `user` for `authorization`; returns its id.
    pub fn create(&self, authorization: String, user: &str) -> String {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap();
        map.retain(|_, s| s.ends > now);
        let theirs = map.values().filter(|s| s.user == user).count();
        if theirs >= MAX_PER_USER {
            if let Some(k) = map
                .iter()
                .filter(|(_, s)| s.user == user)
                .min_by_key(|(_, s)| s.ends)
                .map(|(k, _)| k.clone())
            {
                map.remove(&k);
            }
        }
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
                user: user.to_string(),
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
        let id = s.create("Bearer x".into(), "alice");
        assert_eq!(id.len(), 64);
        let got = s.get(&id).unwrap();
        assert_eq!(got.authorization, "Bearer x");
        assert_ne!(got.csrf, id);
        std::thread::sleep(Duration::from_millis(60));
        assert!(s.get(&id).is_none(), "ended");
        let s = Sessions::new(Duration::from_secs(60));
        let alice = s.create("a".into(), "alice");
        let first = s.create("b".into(), "bob");
        for _ in 0..MAX_PER_USER {
            s.create("b".into(), "bob");
        }
        assert!(s.get(&first).is_none(), "bob's oldest went at his bound");
        assert!(s.get(&alice).is_some(), "not alice's");
        for i in 0..MAX_SESSIONS {
            s.create("c".into(), &format!("user{i}"));
        }
        assert!(s.get(&alice).is_none(), "the oldest went at the bound");
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
