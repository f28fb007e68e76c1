//! Where the members of an archive job come from: the tape crate writes
//! packages but does not know namespace paths or the cache. The server
//! injects a [`MemberSource`]: [`CatalogMembers`] over the catalog and a
//! way to open data (the cache's).

use async_trait::async_trait;
use bale_catalog::{DynCatalog, Node};
use bale_pack::{MemberMeta, MemberProp};
use bale_util::{Adler32, FileId, NsPath};

/// The members of a package to write, and their data.
#[async_trait]
pub trait MemberSource: Send + Sync + 'static {
    /// The metadata of the files of a job that still exist, with their
    /// paths, in the job's order, from one consistent catalog read; a
    /// member that cannot go into a package (its path is not valid) is an
    /// error of its own, which the write holds back.
    async fn members(&self, files: &[FileId]) -> Result<Vec<Result<MemberMeta, BadMember>>, String>;

    /// Opens a member's data for reading.
    fn open(&self, file_id: FileId) -> std::io::Result<std::fs::File>;

    /// Whether the file still exists (a member whose data cannot be opened
    /// may have been deleted since the plan).
    async fn exists(&self, file_id: FileId) -> Result<bool, String>;
}

/// A member of a job that cannot be written, and why.
#[derive(Clone, Debug)]
pub struct BadMember {
    pub file_id: FileId,
    pub why: String,
}

/// Where the members of a package read back from tape go (the server's
/// cache). The package reader checks each member's size and adler32 after
/// it was written, and the package's own size and adler32 at the end: a
/// sink keeps what it wrote invisible until the whole read succeeded.
pub trait MemberSink: Send + Sync + 'static {
    /// Receives one member's data, which it must consume.
    fn member(&self, member: &bale_pack::ManifestMember, data: &mut dyn std::io::Read) -> std::io::Result<()>;
}

/// A member's metadata as the manifest records it, from its catalog node
/// and path.
pub fn member_meta(node: &Node, path: &NsPath) -> MemberMeta {
    MemberMeta {
        file_id: node.file_id.expect("a file"),
        path: path.to_string(),
        size: node.size,
        adler32: node.adler32.unwrap_or(Adler32(1)),
        owner: node.owner.clone(),
        group: node.group.clone(),
        mode: node.mode,
        ctime: node.ctime,
        mtime: node.mtime,
        props: Vec::new(),
    }
}

/// The source the server uses (and tests): members and their paths from
/// the catalog in one `files_with_paths` read per job, data from `open`
/// (the cache's, in the server).
pub struct CatalogMembers<F> {
    pub catalog: DynCatalog,
    pub open: F,
}

#[async_trait]
impl<F> MemberSource for CatalogMembers<F>
where
    F: Fn(FileId) -> std::io::Result<std::fs::File> + Send + Sync + 'static,
{
    async fn members(&self, files: &[FileId]) -> Result<Vec<Result<MemberMeta, BadMember>>, String> {
        let found = self.catalog.files_with_paths(files).await.map_err(|e| e.to_string())?;
        // The members' dead properties go into the manifest with them.
        let ids: Vec<_> = found.iter().map(|(n, _)| n.id).collect();
        let mut props: std::collections::HashMap<_, Vec<MemberProp>> = std::collections::HashMap::new();
        for (id, p) in self.catalog.dead_props(&ids).await.map_err(|e| e.to_string())? {
            props.entry(id).or_default().push(MemberProp {
                ns: p.ns,
                name: p.name,
                xml: p.xml,
            });
        }
        Ok(found
            .iter()
            .map(|(node, path)| match NsPath::parse(path) {
                Ok(p) => Ok(MemberMeta {
                    props: props.remove(&node.id).unwrap_or_default(),
                    ..member_meta(node, &p)
                }),
                Err(e) => Err(BadMember {
                    file_id: node.file_id.expect("a file"),
                    why: format!("its path in the catalog is not valid ({e}): {path:.200}"),
                }),
            })
            .collect())
    }

    fn open(&self, file_id: FileId) -> std::io::Result<std::fs::File> {
        (self.open)(file_id)
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
