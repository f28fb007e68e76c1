//! Who may use the PostgreSQL catalog: the nodes that use it, and API tokens.

use crate::rows::{self, TOKEN_COLS};
use crate::*;

#[async_trait::async_trait]
impl AccessCatalog for PostgresCatalog {
    async fn claim_catalog(&self, claim: &CatalogClaim) -> Result<()> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        // Two nodes starting at once take turns.
        tx.execute("LOCK TABLE catalog_users IN EXCLUSIVE MODE", &[]).await?;
        let other = tx
            .query_opt(
                "SELECT node, instance, host, seen FROM catalog_users \
                 WHERE seen > $1 AND NOT (node = $2 AND instance = $3) ORDER BY seen DESC LIMIT 1",
                &[&(claim.now.0 - claim.stale_ns), &claim.node, &claim.predecessor],
            )
            .await?;
        if let Some(r) = other {
            let (other, instance, on): (String, String, String) = (r.get(0), r.get(1), r.get(2));
            return Err(crate::catalog_in_use(
                claim,
                &other,
                &instance,
                &on,
                Timestamp(r.get(3)),
            ));
        }
        tx.execute("DELETE FROM catalog_users WHERE node <> $1", &[&claim.node])
            .await?;
        tx.execute(
            "INSERT INTO catalog_users (node, instance, host, started, seen) VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (node) DO UPDATE SET instance = EXCLUDED.instance, host = EXCLUDED.host, \
             started = EXCLUDED.started, seen = EXCLUDED.seen",
            &[&claim.node, &claim.instance, &claim.host, &claim.now.0],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn heartbeat(&self, node: &str, instance: &str, now: Timestamp) -> Result<bool> {
        let c = self.pool.get().await?;
        let n = c
            .execute(
                "UPDATE catalog_users SET seen = $3 WHERE node = $1 AND instance = $2",
                &[&node, &instance, &now.0],
            )
            .await?;
        Ok(n > 0)
    }

    async fn release_catalog(&self, node: &str, instance: &str) -> Result<()> {
        let c = self.pool.get().await?;
        c.execute(
            "DELETE FROM catalog_users WHERE node = $1 AND instance = $2",
            &[&node, &instance],
        )
        .await?;
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
