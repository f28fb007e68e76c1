//! Who may use the PostgreSQL catalog: the nodes that use it, and API tokens.

use crate::rows::{self, TOKEN_COLS};
use crate::*;

#[async_trait::async_trait]
impl AccessCatalog for PostgresCatalog {
    async fn claim_catalog(&self, node: &str, host: &str, now: Timestamp, stale_ns: i64) -> Result<()> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        // Two nodes starting at once take turns.
        tx.execute("LOCK TABLE catalog_users IN EXCLUSIVE MODE", &[]).await?;
        let other = tx
            .query_opt(
                "SELECT node, host, seen FROM catalog_users WHERE node <> $1 AND seen > $2 ORDER BY seen DESC LIMIT 1",
                &[&node, &(now.0 - stale_ns)],
            )
            .await?;
        if let Some(r) = other {
            let (other, on): (String, String) = (r.get(0), r.get(1));
            return Err(crate::catalog_in_use(&other, &on, Timestamp(r.get(2)), now));
        }
        tx.execute("DELETE FROM catalog_users WHERE node <> $1", &[&node])
            .await?;
        tx.execute(
            "INSERT INTO catalog_users (node, host, started, seen) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (node) DO UPDATE SET host = EXCLUDED.host, started = EXCLUDED.started, seen = EXCLUDED.seen",
            &[&node, &host, &now.0],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn heartbeat(&self, node: &str, now: Timestamp) -> Result<()> {
        let c = self.pool.get().await?;
        c.execute("UPDATE catalog_users SET seen = $2 WHERE node = $1", &[&node, &now.0])
            .await?;
        Ok(())
    }

    async fn release_catalog(&self, node: &str) -> Result<()> {
        let c = self.pool.get().await?;
        c.execute("DELETE FROM catalog_users WHERE node = $1", &[&node]).await?;
        Ok(())
    }

    async fn create_token(&self, t: &NewToken) -> Result<TokenInfo> {
        let c = self.pool.get().await?;
        let row = c
            .query_opt(
                &format!(
                    "INSERT INTO tokens (id, hash, user_name, grp, admin, created, comment) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING {TOKEN_COLS}"
                ),
                &[&t.id, &t.hash, &t.user, &t.group, &t.admin, &t.created.0, &t.comment],
            )
            .await?
            .ok_or_else(|| CatalogError::AlreadyExists(format!("token {}", t.id)))?;
        rows::token(&row)
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenInfo>> {
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached(&format!(
                "SELECT {TOKEN_COLS} FROM tokens WHERE hash = $1 AND revoked IS NULL"
            ))
            .await?;
        c.query_opt(&st, &[&hash]).await?.map(|r| rows::token(&r)).transpose()
    }

    async fn revoke_token(&self, id: &str, at: Timestamp) -> Result<bool> {
        let c = self.pool.get().await?;
        Ok(c.execute(
            "UPDATE tokens SET revoked = $2 WHERE id = $1 AND revoked IS NULL",
            &[&id, &at.0],
        )
        .await?
            > 0)
    }

    async fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        let c = self.pool.get().await?;
        let rows = c
            .query(&format!("SELECT {TOKEN_COLS} FROM tokens ORDER BY created, id"), &[])
            .await?;
        rows.iter().map(rows::token).collect()
    }
}
