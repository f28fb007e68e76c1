//! Who may use the SQLite catalog: the nodes that use it, and API tokens.

use crate::rows::{self, TOKEN_COLS};
use crate::*;
use rusqlite::{params, OptionalExtension};

#[async_trait::async_trait]
impl AccessCatalog for SqliteCatalog {
    async fn claim_catalog(&self, claim: &CatalogClaim) -> Result<()> {
        let claim = claim.clone();
        self.write(move |tx| {
            let other: Option<(String, String, String, i64)> = tx
                .query_row(
                    "SELECT node, instance, host, seen FROM catalog_users \
                     WHERE seen > ?1 AND NOT (node = ?2 AND instance = ?3) ORDER BY seen DESC LIMIT 1",
                    params![claim.now.0 - claim.stale_ns, claim.node, claim.predecessor],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            if let Some((other, instance, on, seen)) = other {
                return Err(crate::catalog_in_use(&claim, &other, &instance, &on, Timestamp(seen)));
            }
            tx.execute("DELETE FROM catalog_users WHERE node <> ?1", [&claim.node])?;
            tx.execute(
                "INSERT INTO catalog_users (node, instance, host, started, seen) VALUES (?1, ?2, ?3, ?4, ?4) \
                 ON CONFLICT (node) DO UPDATE SET instance = excluded.instance, host = excluded.host, \
                 started = excluded.started, seen = excluded.seen",
                params![claim.node, claim.instance, claim.host, claim.now.0],
            )?;
            Ok(())
        })
        .await
    }

    async fn heartbeat(&self, node: &str, instance: &str, now: Timestamp) -> Result<bool> {
        let (node, instance) = (node.to_string(), instance.to_string());
        self.write(move |tx| {
            let n = tx.execute(
                "UPDATE catalog_users SET seen = ?3 WHERE node = ?1 AND instance = ?2",
                params![node, instance, now.0],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn release_catalog(&self, node: &str, instance: &str) -> Result<()> {
        let (node, instance) = (node.to_string(), instance.to_string());
        self.write(move |tx| {
            tx.execute(
                "DELETE FROM catalog_users WHERE node = ?1 AND instance = ?2",
                [&node, &instance],
            )?;
            Ok(())
        })
        .await
    }

    async fn create_token(&self, t: &NewToken) -> Result<TokenInfo> {
        let t = t.clone();
        self.write(move |tx| {
            let inserted = tx.execute(
                "INSERT INTO tokens (id, hash, user_name, grp, admin, created, comment) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
                params![t.id, t.hash, t.user, t.group, t.admin as i64, t.created.0, t.comment],
            )?;
            if inserted == 0 {
                return Err(CatalogError::AlreadyExists(format!("token {}", t.id)));
            }
            Ok(tx.query_row(
                &format!("SELECT {TOKEN_COLS} FROM tokens WHERE id = ?1"),
                [&t.id],
                |r| rows::token(r),
            )?)
        })
        .await
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenInfo>> {
        let hash = hash.to_string();
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {TOKEN_COLS} FROM tokens WHERE hash = ?1 AND revoked IS NULL"
            ))?;
            Ok(st.query_row([hash], |r| rows::token(r)).optional()?)
        })
        .await
    }

    async fn revoke_token(&self, id: &str, at: Timestamp) -> Result<bool> {
        let id = id.to_string();
        self.write(move |tx| {
            Ok(tx.execute(
                "UPDATE tokens SET revoked = ?2 WHERE id = ?1 AND revoked IS NULL",
                params![id, at.0],
            )? > 0)
        })
        .await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!("SELECT {TOKEN_COLS} FROM tokens ORDER BY created, id"))?;
            let rows = st.query_map([], |r| rows::token(r))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}
