//! The server's [`MemberSource`]: a job's members with their paths from one
//! catalog read, and their data from the cache.

use bale_cache::Cache;
use bale_catalog::DynCatalog;
use bale_pack::MemberMeta;
use bale_tape::{member_meta, MemberSource};
use bale_util::FileId;

pub struct CatalogMembers {
    pub catalog: DynCatalog,
    pub cache: Cache,
}

#[async_trait::async_trait]
impl MemberSource for CatalogMembers {
    async fn members(&self, files: &[FileId]) -> Result<Vec<MemberMeta>, String> {
        let found = self.catalog.files_with_paths(files).await.map_err(|e| e.to_string())?;
        Ok(found.iter().map(|(node, path)| member_meta(node, path)).collect())
    }

    fn open(&self, file_id: FileId) -> std::io::Result<std::fs::File> {
        self.cache.open_data(file_id)
    }

    async fn exists(&self, file_id: FileId) -> Result<bool, String> {
        Ok(self
            .catalog
            .node_by_file_id(file_id)
            .await
            .map_err(|e| e.to_string())?
            .is_some())
    }
}
