//! The catalog conformance suite: every test here runs against every backend
//! (see `tests/conformance.rs`). A backend is correct when it passes all of
//! them; nothing backend-specific may be observable through the trait.
//!
//! Also home to [`fresh_postgres`], which gives a test its own PostgreSQL
//! schema, so that tests never share state.

use crate::*;
use bale_util::{Adler32, NsPath, Timestamp};

/// The PostgreSQL server tests use: `BALE_TEST_PG`, or the local default.
pub fn test_postgres_base() -> String {
    std::env::var("BALE_TEST_PG").unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_string())
}

/// Creates an empty schema on the test server and returns a catalog URL
/// confined to it, and the schema's name (to drop it later).
pub async fn fresh_postgres() -> (String, String) {
    let base = test_postgres_base();
    let schema = format!("bale_t_{}", uuid::Uuid::now_v7().simple());
    let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL at {base} (set BALE_TEST_PG): {e}"));
    let h = tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("create test schema");
    drop(client);
    let _ = h.await;
    let sep = if base.contains('?') { '&' } else { '?' };
    (format!("{base}{sep}options=-csearch_path%3D{schema}"), schema)
}

/// Drops a schema made by [`fresh_postgres`].
pub async fn drop_postgres_schema(schema: &str) {
    let base = test_postgres_base();
    if let Ok((client, conn)) = tokio_postgres::connect(&base, tokio_postgres::NoTls).await {
        let h = tokio::spawn(conn);
        let _ = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await;
        drop(client);
        let _ = h.await;
    }
}

fn p(s: &str) -> NsPath {
    NsPath::parse(s).unwrap()
}

fn t(n: i64) -> Timestamp {
    Timestamp(n * 1_000_000_000)
}

/// A directory owned by someone else than the suite's usual owner.
fn other_dir(parent: NodeId, name: &str) -> NewDir {
    NewDir {
        parent,
        name: name.into(),
        owner: "x".into(),
        group: "x".into(),
        mode: 0o700,
        time: t(1),
    }
}

async fn mkdir(c: &dyn Catalog, parent: NodeId, name: &str) -> Node {
    c.create_dir(NewDir {
        parent,
        name: name.into(),
        owner: "alice".into(),
        group: "phys".into(),
        mode: 0o755,
        time: t(10),
    })
    .await
    .unwrap_or_else(|e| panic!("mkdir {name}: {e}"))
}

fn new_file(parent: NodeId, name: &str, size: u64) -> NewFile {
    NewFile {
        parent,
        name: name.into(),
        file_id: FileId::generate(),
        owner: "alice".into(),
        group: "phys".into(),
        mode: 0o644,
        size,
        adler32: Adler32(size as u32 + 1),
        time: t(20),
        replace: false,
        archive: None,
        inline: None,
    }
}

async fn put(c: &dyn Catalog, parent: NodeId, name: &str, size: u64) -> Node {
    let mut r = c
        .commit_files("n1", &[new_file(parent, name, size)], &[])
        .await
        .unwrap();
    r.remove(0).unwrap().node
}

pub async fn root_exists(c: &dyn Catalog) {
    let root = c.lookup(&NsPath::root()).await.unwrap().expect("root");
    assert_eq!(root.id, ROOT_ID);
    assert_eq!(root.parent, None);
    assert!(root.is_dir());
    assert_eq!(c.path_of(ROOT_ID).await.unwrap(), NsPath::root());
    assert!(c.lookup(&p("/nope")).await.unwrap().is_none());
}

pub async fn directories_nest(c: &dyn Catalog) {
    let a = mkdir(c, ROOT_ID, "a").await;
    let b = mkdir(c, a.id, "b").await;
    assert_eq!(c.lookup(&p("/a/b")).await.unwrap().unwrap().id, b.id);
    assert_eq!(c.child(a.id, "b").await.unwrap().unwrap().id, b.id);
    assert!(c.child(a.id, "nope").await.unwrap().is_none());
    assert_eq!(c.path_of(b.id).await.unwrap(), p("/a/b"));
    assert_eq!(b.parent, Some(a.id));
    assert_eq!(b.owner, "alice");
    assert_eq!(b.mode, 0o755);
    let dup = c.create_dir(other_dir(a.id, "b")).await;
    assert!(matches!(dup, Err(CatalogError::AlreadyExists(_))), "{dup:?}");
    let f = put(c, a.id, "f", 1).await;
    let under_file = c.create_dir(other_dir(f.id, "x")).await;
    assert!(
        matches!(under_file, Err(CatalogError::NotADirectory(_))),
        "{under_file:?}"
    );
    let missing = c.create_dir(other_dir(999_999, "x")).await;
    assert!(matches!(missing, Err(CatalogError::NotFound(_))), "{missing:?}");
    assert!(c.lookup(&p("/a/f/x")).await.unwrap().is_none());
}

pub async fn tags_inherit_at_creation(c: &dyn Catalog) {
    let top = mkdir(c, ROOT_ID, "exp").await;
    let mut tags = Tags::default();
    tags.set("storage_group", Some("mu2e")).unwrap();
    tags.set("file_family", Some("raw")).unwrap();
    tags.set("file_family_width", Some("2")).unwrap();
    let top = c.set_tags(top.id, &tags).await.unwrap();
    assert_eq!(top.tags, tags);
    let sub = mkdir(c, top.id, "run1").await;
    assert_eq!(sub.tags, tags, "a new subdirectory inherits its parent's tags");
    let f = put(c, sub.id, "f1", 5).await;
    assert_eq!(f.tags, tags, "a file records the tags in force at creation");

    // Changing the parent later changes neither existing children nor files.
    let mut t2 = tags.clone();
    t2.set("file_family", Some("reco")).unwrap();
    c.set_tags(top.id, &t2).await.unwrap();
    assert_eq!(c.node(sub.id).await.unwrap().unwrap().tags, tags);
    assert_eq!(c.node(f.id).await.unwrap().unwrap().tags, tags);
    let sub2 = mkdir(c, top.id, "run2").await;
    assert_eq!(sub2.tags.file_family.as_deref(), Some("reco"));

    let on_file = c.set_tags(f.id, &tags).await;
    assert!(matches!(on_file, Err(CatalogError::NotADirectory(_))), "{on_file:?}");
}

pub async fn batch_commit_is_per_file(c: &dyn Catalog) {
    let d = mkdir(c, ROOT_ID, "d").await;
    let f = mkdir(c, ROOT_ID, "sub").await;
    let mut first = new_file(d.id, "exists", 3);
    (first.owner, first.group, first.mode) = ("alice".into(), "phys".into(), 0o664);
    c.commit_files("n1", &[first], &[]).await.unwrap().remove(0).unwrap();
    // carol of group phys overwrites alice's group-writable file.
    let mut replace = new_file(d.id, "exists", 7);
    (replace.owner, replace.group, replace.mode) = ("carol".into(), "other".into(), 0o600);
    replace.replace = true;
    let batch = vec![
        new_file(d.id, "a", 1),
        new_file(d.id, "a", 2),         // same name later in the same batch
        new_file(999_999, "orphan", 3), // no such parent
        new_file(ROOT_ID, "sub", 4),    // a directory has that name
        new_file(d.id, "exists", 5),    // exists, no replace
        replace,                        // exists, replace
        new_file(f.id, "b", 6),
    ];
    let r = c.commit_files("n1", &batch, &[]).await.unwrap();
    assert_eq!(r.len(), batch.len());
    assert!(r[0].is_ok());
    assert!(matches!(r[1], Err(CatalogError::AlreadyExists(_))), "{:?}", r[1]);
    assert!(matches!(r[2], Err(CatalogError::NotFound(_))), "{:?}", r[2]);
    assert!(matches!(r[3], Err(CatalogError::IsADirectory(_))), "{:?}", r[3]);
    assert!(matches!(r[4], Err(CatalogError::AlreadyExists(_))), "{:?}", r[4]);
    let rep = r[5].as_ref().unwrap();
    assert_eq!(rep.replaced.len(), 1);
    assert_eq!(rep.replaced[0].size, 3);
    assert!(r[6].is_ok());

    let a = c.lookup(&p("/d/a")).await.unwrap().unwrap();
    assert_eq!(a.size, 1);
    assert_eq!(a.file_id, Some(batch[0].file_id));
    assert_eq!(a.adler32, Some(batch[0].adler32));
    assert_eq!(a.mtime, t(20));
    assert_eq!(a.atime, t(20));
    let e = c.lookup(&p("/d/exists")).await.unwrap().unwrap();
    assert_eq!(e.size, 7);
    // An overwrite keeps the file's owner, group and mode.
    assert_eq!((e.owner.as_str(), e.group.as_str(), e.mode), ("alice", "phys", 0o664));
    // The walk of a path: the root and every existing component.
    let walk = c.walk(&p("/d/exists")).await.unwrap();
    assert_eq!(
        walk.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
        ["", "d", "exists"]
    );
    let walk = c.walk(&p("/d/missing/deeper")).await.unwrap();
    assert_eq!(walk.iter().map(|n| n.id).collect::<Vec<_>>(), [ROOT_ID, d.id]);
    assert_eq!(
        c.node_by_file_id(batch[6].file_id).await.unwrap().unwrap().id,
        c.lookup(&p("/sub/b")).await.unwrap().unwrap().id
    );
    assert!(c.node_by_file_id(batch[1].file_id).await.unwrap().is_none());
    assert!(c
        .node_by_file_id(rep.replaced[0].file_id.unwrap())
        .await
        .unwrap()
        .is_none());
}

/// Files by file id with their paths, in the order asked, the gone left out.
pub async fn files_with_paths(c: &dyn Catalog) {
    let a = mkdir(c, ROOT_ID, "a").await;
    let b = mkdir(c, a.id, "b c").await;
    let deep = put(c, b.id, "deep.dat", 5).await;
    let top = put(c, ROOT_ID, "top.dat", 6).await;
    let gone = put(c, a.id, "gone.dat", 7).await;
    c.remove(gone.id, false, None).await.unwrap();
    let ids = [top.file_id.unwrap(), gone.file_id.unwrap(), deep.file_id.unwrap()];
    let found = c.files_with_paths(&ids).await.unwrap();
    let got: Vec<(NodeId, String)> = found.iter().map(|(n, p)| (n.id, p.to_string())).collect();
    assert_eq!(
        got,
        vec![
            (top.id, "/top.dat".to_string()),
            (deep.id, "/a/b c/deep.dat".to_string())
        ]
    );
    assert_eq!(found[1].0.size, 5);
    assert!(c.files_with_paths(&[]).await.unwrap().is_empty());
}

pub async fn listing_pages_in_byte_order(c: &dyn Catalog) {
    let d = mkdir(c, ROOT_ID, "many").await;
    let mut names: Vec<String> = (0..57).map(|i| format!("f{i:03}")).collect();
    names.extend(["B", "a", "Z", "_x", "é", "ß", "~"].map(String::from));
    let batch: Vec<NewFile> = names.iter().map(|n| new_file(d.id, n, 1)).collect();
    for r in c.commit_files("n1", &batch, &[]).await.unwrap() {
        r.unwrap();
    }
    mkdir(c, d.id, "adir").await;
    names.push("adir".into());
    names.sort(); // Rust sorts strings by bytes, as the catalog must.
    let mut got = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = c.list(d.id, after.as_deref(), 10).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 10);
        after = Some(page.last().unwrap().name.clone());
        got.extend(page.into_iter().map(|n| n.name));
    }
    assert_eq!(got, names);
    assert!(c
        .list(ROOT_ID, None, 100)
        .await
        .unwrap()
        .iter()
        .any(|n| n.name == "many"));
}

pub async fn remove_rules(c: &dyn Catalog) {
    let d = mkdir(c, ROOT_ID, "r").await;
    let sub = mkdir(c, d.id, "s").await;
    let f1 = put(c, d.id, "f1", 1).await;
    let f2 = put(c, sub.id, "f2", 2).await;

    let e = c.remove(d.id, false, None).await;
    assert!(matches!(e, Err(CatalogError::NotEmpty(_))), "{e:?}");
    let e = c.remove(ROOT_ID, true, None).await;
    assert!(matches!(e, Err(CatalogError::Invalid(_))), "{e:?}");

    // A foreign entry in the tree: nothing is removed.
    c.set_attrs(
        f2.id,
        &AttrChange {
            owner: Some("bob".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let e = c.remove(d.id, true, Some("alice")).await;
    assert!(matches!(e, Err(CatalogError::PermissionDenied(_))), "{e:?}");
    assert!(c.node(f2.id).await.unwrap().is_some());
    assert!(c.node(f1.id).await.unwrap().is_some());

    let removed = c.remove(f1.id, false, Some("alice")).await.unwrap();
    assert_eq!(removed.len(), 1);
    assert!(c.lookup(&p("/r/f1")).await.unwrap().is_none());

    let removed = c.remove(d.id, true, None).await.unwrap();
    assert_eq!(
        removed.iter().map(|n| n.id).collect::<Vec<_>>(),
        vec![f2.id],
        "only files are returned"
    );
    assert!(c.node(sub.id).await.unwrap().is_none());
    assert!(c.lookup(&p("/r")).await.unwrap().is_none());
    let e = c.remove(d.id, false, None).await;
    assert!(matches!(e, Err(CatalogError::NotFound(_))), "{e:?}");
}

pub async fn rename_rules(c: &dyn Catalog) {
    let a = mkdir(c, ROOT_ID, "ma").await;
    let b = mkdir(c, a.id, "mb").await;
    let other = mkdir(c, ROOT_ID, "other").await;
    let f = put(c, a.id, "f", 1).await;
    let g = put(c, other.id, "g", 2).await;

    let moved = c.rename(f.id, other.id, "f2", false).await.unwrap();
    assert_eq!(moved.node.id, f.id);
    assert_eq!(moved.node.file_id, f.file_id, "a rename keeps the file id");
    assert_eq!(c.path_of(f.id).await.unwrap(), p("/other/f2"));
    assert!(c.lookup(&p("/ma/f")).await.unwrap().is_none());

    let e = c.rename(f.id, other.id, "g", false).await;
    assert!(matches!(e, Err(CatalogError::AlreadyExists(_))), "{e:?}");
    let over = c.rename(f.id, other.id, "g", true).await.unwrap();
    assert_eq!(over.replaced.iter().map(|n| n.id).collect::<Vec<_>>(), vec![g.id]);
    assert_eq!(c.lookup(&p("/other/g")).await.unwrap().unwrap().id, f.id);

    let e = c.rename(a.id, b.id, "loop", false).await;
    assert!(matches!(e, Err(CatalogError::Invalid(_))), "{e:?}");
    let e = c.rename(a.id, a.id, "self", false).await;
    assert!(matches!(e, Err(CatalogError::Invalid(_))), "{e:?}");
    let e = c.rename(a.id, f.id, "x", false).await;
    assert!(matches!(e, Err(CatalogError::NotADirectory(_))), "{e:?}");
    let e = c.rename(a.id, ROOT_ID, "other", true).await;
    assert!(matches!(e, Err(CatalogError::NotEmpty(_))), "{e:?}");

    // Moving a directory moves its subtree.
    c.rename(a.id, other.id, "ma2", false).await.unwrap();
    assert_eq!(c.lookup(&p("/other/ma2/mb")).await.unwrap().unwrap().id, b.id);
    assert_eq!(c.path_of(b.id).await.unwrap(), p("/other/ma2/mb"));
}

pub async fn access_time_moves_forward(c: &dyn Catalog) {
    let f = put(c, ROOT_ID, "acc", 1).await;
    assert_eq!(f.atime, t(20));
    c.record_access(&[(f.id, t(30))]).await.unwrap();
    assert_eq!(c.node(f.id).await.unwrap().unwrap().atime, t(30));
    c.record_access(&[(f.id, t(25)), (999_999, t(40))]).await.unwrap();
    let n = c.node(f.id).await.unwrap().unwrap();
    assert_eq!(n.atime, t(30), "never moves back");
    assert_eq!(n.mtime, t(20), "reading does not modify");
    c.record_access(&[]).await.unwrap();
}

pub async fn attrs_change(c: &dyn Catalog) {
    let d = mkdir(c, ROOT_ID, "attrs").await;
    let n = c
        .set_attrs(
            d.id,
            &AttrChange {
                owner: Some("bob".into()),
                group: None,
                mode: Some(0o700),
            },
        )
        .await
        .unwrap();
    assert_eq!((n.owner.as_str(), n.group.as_str(), n.mode), ("bob", "phys", 0o700));
    let e = c.set_attrs(999_999, &AttrChange::default()).await;
    assert!(matches!(e, Err(CatalogError::NotFound(_))), "{e:?}");
}

pub async fn landing_notes(c: &dyn Catalog) {
    let d = mkdir(c, ROOT_ID, "land").await;
    let a = new_file(d.id, "a", 1);
    // b's data is kept with its note, byte for byte (all 256 values).
    let data: Vec<u8> = (0..70_000u32).map(|i| (i % 256) as u8).collect();
    let b = NewFile {
        inline: Some(bytes::Bytes::from(data.clone())),
        ..new_file(d.id, "b", 2)
    };
    let dup = new_file(d.id, "a", 3);
    let r = c.commit_files("n1", &[a.clone(), b.clone(), dup], &[]).await.unwrap();
    assert!(r[2].is_err());
    let other = new_file(d.id, "c", 4);
    c.commit_files("n2", std::slice::from_ref(&other), &[]).await.unwrap();

    // Only recorded files are noted, per cache node.
    let l = c.landing_files("n1").await.unwrap();
    let mut ids: Vec<FileId> = l.iter().map(|x| x.id).collect();
    ids.sort();
    let mut want = vec![a.file_id, b.file_id];
    want.sort();
    assert_eq!(ids, want);
    assert!(l.iter().all(|x| x.node.is_some()));
    for x in &l {
        let want = (x.id == b.file_id).then(|| data.clone());
        assert_eq!(x.inline, want, "inline data of {}", x.id);
    }
    assert_eq!(c.landing_files("n2").await.unwrap().len(), 1);

    // A later commit settles earlier files; a removed file shows as None.
    let e = new_file(d.id, "e", 5);
    c.commit_files("n1", std::slice::from_ref(&e), &[a.file_id])
        .await
        .unwrap();
    let bnode = c.lookup(&p("/land/b")).await.unwrap().unwrap();
    c.remove(bnode.id, false, None).await.unwrap();
    let l = c.landing_files("n1").await.unwrap();
    assert_eq!(l.len(), 2);
    for x in &l {
        if x.id == b.file_id {
            assert!(x.node.is_none());
            assert_eq!(x.inline.as_deref(), Some(&data[..]), "data stays until settled");
        } else {
            assert_eq!(x.id, e.file_id);
            assert_eq!(x.node.as_ref().unwrap().name, "e");
        }
    }
    c.settle_files(&[b.file_id, e.file_id]).await.unwrap();
    c.settle_files(&[]).await.unwrap();
    assert!(c.landing_files("n1").await.unwrap().is_empty());
}

pub async fn tokens_lifecycle(c: &dyn Catalog) {
    let tok = NewToken {
        id: "tok1".into(),
        hash: "h1".into(),
        user: "alice".into(),
        group: "phys".into(),
        admin: false,
        created: t(1),
        comment: "laptop".into(),
    };
    let info = c.create_token(&tok).await.unwrap();
    assert_eq!((info.user.as_str(), info.admin, info.revoked), ("alice", false, None));
    let dup = c.create_token(&tok).await;
    assert!(matches!(dup, Err(CatalogError::AlreadyExists(_))), "{dup:?}");
    assert_eq!(c.token_by_hash("h1").await.unwrap().unwrap().id, "tok1");
    assert!(c.token_by_hash("h2").await.unwrap().is_none());
    assert!(c.revoke_token("tok1", t(2)).await.unwrap());
    assert!(!c.revoke_token("tok1", t(3)).await.unwrap(), "already revoked");
    assert!(!c.revoke_token("nope", t(3)).await.unwrap());
    assert!(c.token_by_hash("h1").await.unwrap().is_none());
    let all = c.list_tokens().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].revoked, Some(t(2)));
}

pub async fn deep_paths(c: &dyn Catalog) {
    let mut parent = ROOT_ID;
    let mut path = String::new();
    for i in 0..40 {
        let name = format!("level{i}");
        parent = mkdir(c, parent, &name).await.id;
        path.push('/');
        path.push_str(&name);
    }
    let f = put(c, parent, "leaf", 9).await;
    let full = format!("{path}/leaf");
    assert_eq!(c.lookup(&p(&full)).await.unwrap().unwrap().id, f.id);
    assert_eq!(c.path_of(f.id).await.unwrap(), p(&full));
    assert!(c.lookup(&p(&format!("{path}/nope/leaf"))).await.unwrap().is_none());
}

/// Commits from many tasks at once end with every file recorded exactly once.
pub async fn concurrent_commits(c: std::sync::Arc<dyn Catalog>) {
    let d = mkdir(&*c, ROOT_ID, "conc").await;
    let mut tasks = Vec::new();
    for w in 0..8 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                let batch = vec![new_file(d.id, &format!("w{w}-{i}"), 1), new_file(d.id, "shared", 1)];
                c.commit_files("n1", &batch, &[]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let all = c.list(d.id, None, 1000).await.unwrap();
    assert_eq!(all.len(), 8 * 25 + 1);
}

fn family(ff: &str) -> Family {
    Family {
        storage_group: "mu2e".into(),
        file_family: ff.into(),
        wrapper: "tar".into(),
    }
}

fn target(ff: &str) -> JobTarget {
    JobTarget {
        library: "lib1".into(),
        family: family(ff),
        width: 2,
    }
}

fn new_volume(label: &str) -> NewVolume {
    NewVolume {
        label: label.into(),
        library: "lib1".into(),
        media: "LTO-9".into(),
        capacity: 1_000_000,
        mount_limit: 100,
        created: t(1),
    }
}

pub async fn volumes_and_drives(c: &dyn Catalog) {
    c.add_volumes(&[new_volume("VL0002"), new_volume("VL0001")])
        .await
        .unwrap();
    // A label taken fails the lot.
    let e = c
        .add_volumes(&[new_volume("VL0003"), new_volume("VL0001")])
        .await
        .unwrap_err();
    assert!(matches!(e, CatalogError::AlreadyExists(_)), "{e}");
    let vols = c.volumes().await.unwrap();
    assert_eq!(
        vols.iter().map(|v| v.label.as_str()).collect::<Vec<_>>(),
        ["VL0001", "VL0002"]
    );
    let v = &vols[0];
    assert_eq!(
        (v.state, v.used, v.tape_files, v.family.clone()),
        (VolumeState::Blank, 0, 0, None)
    );
    assert_eq!(v.remaining(), 1_000_000);
    let v = c.set_volume_state("VL0002", VolumeState::Shelf).await.unwrap();
    assert_eq!(v.state, VolumeState::Shelf);
    assert!(matches!(
        c.set_volume_state("NOPE", VolumeState::Full).await,
        Err(CatalogError::NotFound(_))
    ));
    let stats = TapeStats {
        mounts: 3,
        load_s: 45.0,
        bytes_written: 10,
        ..TapeStats::default()
    };
    c.save_volume_stats("VL0001", &stats).await.unwrap();
    assert_eq!(c.volume("VL0001").await.unwrap().unwrap().stats, stats);
    assert!(c.volume("VL0003").await.unwrap().is_none());

    let drives = [
        ("d2".to_string(), "lib1".to_string()),
        ("d1".to_string(), "lib1".to_string()),
    ];
    c.register_drives(&drives).await.unwrap();
    c.set_drive_state("d1", DriveState::Offline).await.unwrap();
    // Registering again keeps what is recorded.
    c.register_drives(&drives).await.unwrap();
    c.save_drive_stats("d2", &stats).await.unwrap();
    let d = c.drives().await.unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!((d[0].name.as_str(), d[0].state), ("d1", DriveState::Offline));
    assert_eq!((d[1].name.as_str(), &d[1].stats), ("d2", &stats));
    assert!(matches!(
        c.set_drive_state("d9", DriveState::Online).await,
        Err(CatalogError::NotFound(_))
    ));
}

pub async fn archive_jobs_follow_their_files(c: &dyn Catalog) {
    let d = mkdir(c, ROOT_ID, "raw").await;
    let mut big = new_file(d.id, "big", 5000);
    big.archive = Some(ArchiveRoute::Direct(target("ff1")));
    let mut other = new_file(d.id, "other", 7000);
    other.archive = Some(ArchiveRoute::Direct(target("ff2")));
    let r = c
        .commit_files("n1", &[big.clone(), other.clone(), new_file(d.id, "small", 1)], &[])
        .await
        .unwrap();
    let jobs: Vec<Option<i64>> = r.iter().map(|r| r.as_ref().unwrap().job).collect();
    assert!(jobs[0].is_some() && jobs[1].is_some() && jobs[2].is_none(), "{jobs:?}");
    let all = c.archive_jobs().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].id, jobs[0].unwrap());
    assert_eq!(all[0].files, vec![big.file_id]);
    assert_eq!(
        (all[0].bytes, all[0].state, &all[0].target),
        (5000, JobState::Queued, &target("ff1"))
    );
    assert_eq!(c.job_of(other.file_id).await.unwrap().unwrap().id, jobs[1].unwrap());

    c.job_attempt_failed(all[0].id, "drive fell over", false).await.unwrap();
    let j = c.job_of(big.file_id).await.unwrap().unwrap();
    assert_eq!(
        (j.attempts, j.state, j.error.as_deref()),
        (1, JobState::Queued, Some("drive fell over"))
    );
    c.job_attempt_failed(all[0].id, "again", true).await.unwrap();
    assert_eq!(c.job_of(big.file_id).await.unwrap().unwrap().state, JobState::Failed);

    // Removing a file takes it out of its job; an empty job goes.
    let node = c.lookup(&p("/raw/other")).await.unwrap().unwrap();
    c.remove(node.id, false, None).await.unwrap();
    assert!(c.job_of(other.file_id).await.unwrap().is_none());
    assert_eq!(c.archive_jobs().await.unwrap().len(), 1);
    // So does replacing it.
    let mut again = new_file(d.id, "big", 10);
    again.replace = true;
    c.commit_files("n1", &[again], &[]).await.unwrap().remove(0).unwrap();
    assert!(c.archive_jobs().await.unwrap().is_empty());
}

pub async fn tape_files_commit_in_sequence(c: &dyn Catalog) {
    c.add_volumes(&[new_volume("VL0001")]).await.unwrap();
    let d = mkdir(c, ROOT_ID, "raw").await;
    let mut files = Vec::new();
    for i in 0..3 {
        let mut f = new_file(d.id, &format!("f{i}"), 1000 + i);
        f.archive = Some(ArchiveRoute::Direct(target("ff1")));
        files.push(f);
    }
    let committed = c.commit_files("n1", &files, &[]).await.unwrap();
    let job = |i: usize| committed[i].as_ref().unwrap().job;
    let pkg = |i: usize, seq: u32, position: u64| NewPackage {
        id: format!("pkg-{i}"),
        seq,
        position,
        size: 3072,
        adler32: Adler32(99),
        created: t(30),
        members: vec![NewMember {
            file_id: files[i].file_id,
            offset: 1536,
            size: files[i].size,
            adler32: files[i].adler32,
        }],
        job: job(i),
    };
    let vw = |state| VolumeWrite {
        label: "VL0001".into(),
        family: family("ff1"),
        state,
        stats: TapeStats {
            bytes_written: 3072,
            ..TapeStats::default()
        },
    };
    let v = c
        .commit_tape_files(&vw(VolumeState::Appendable), &[pkg(0, 0, 0), pkg(1, 1, 3072)])
        .await
        .unwrap()
        .volume;
    assert_eq!((v.tape_files, v.used, v.state), (2, 6144, VolumeState::Appendable));
    assert_eq!(v.family, Some(family("ff1")));
    assert_eq!(v.stats.bytes_written, 3072);
    // A write that does not continue the volume records nothing.
    for bad in [pkg(2, 1, 6144), pkg(2, 3, 6144), pkg(2, 2, 100)] {
        let e = c.commit_tape_files(&vw(VolumeState::Full), &[bad]).await.unwrap_err();
        assert!(matches!(e, CatalogError::Invalid(_)), "{e}");
    }
    let v = c.volume("VL0001").await.unwrap().unwrap();
    assert_eq!((v.tape_files, v.state), (2, VolumeState::Appendable));
    assert_eq!(c.archive_jobs().await.unwrap().len(), 1, "only the third job is left");
    c.commit_tape_files(&vw(VolumeState::Full), &[pkg(2, 2, 6144)])
        .await
        .unwrap();
    assert!(c.archive_jobs().await.unwrap().is_empty());
    let pkgs = c.packages(Some("VL0001")).await.unwrap();
    assert_eq!(pkgs.iter().map(|p| p.seq).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(
        (pkgs[1].position, pkgs[1].members, pkgs[1].volume.as_str()),
        (3072, 1, "VL0001")
    );
    let copies = c.tape_copies(files[1].file_id).await.unwrap();
    assert_eq!(copies.len(), 1);
    assert_eq!((copies[0].package.id.as_str(), copies[0].offset), ("pkg-1", 1536));
    // A file deleted after archiving keeps its tape copy (dead bytes).
    let n = c.lookup(&p("/raw/f1")).await.unwrap().unwrap();
    c.remove(n.id, false, None).await.unwrap();
    assert_eq!(c.tape_copies(files[1].file_id).await.unwrap().len(), 1);
    let (pkg1, members) = c.package("pkg-1").await.unwrap().unwrap();
    assert_eq!((pkg1.dead_members, pkg1.dead_bytes), (1, files[1].size));
    assert_eq!(members.len(), 1);
    assert_eq!((members[0].file_id, members[0].offset), (files[1].file_id, 1536));
    assert_eq!(c.packages(Some("VL0001")).await.unwrap()[0].dead_bytes, 0);
    assert_eq!(c.packages(None).await.unwrap().len(), 3);
    assert!(c.packages(Some("VL0002")).await.unwrap().is_empty());
    assert!(c.package("pkg-9").await.unwrap().is_none());
    assert_eq!(c.volume("VL0001").await.unwrap().unwrap().state, VolumeState::Full);
}

/// A one-member package for `file` completing `job`, at tape file `seq`.
fn one_member_package(file: &NewFile, job: Option<i64>, seq: u32) -> NewPackage {
    NewPackage {
        id: format!("pkg-{}", file.file_id),
        seq,
        position: seq as u64 * 3072,
        size: 3072,
        adler32: Adler32(7),
        created: t(30),
        members: vec![NewMember {
            file_id: file.file_id,
            offset: 1536,
            size: file.size,
            adler32: file.adler32,
        }],
        job,
    }
}

fn volume_write(label: &str) -> VolumeWrite {
    VolumeWrite {
        label: label.into(),
        family: family("ff1"),
        state: VolumeState::Appendable,
        stats: TapeStats::default(),
    }
}

fn direct(mut f: NewFile) -> NewFile {
    f.archive = Some(ArchiveRoute::Direct(target("ff1")));
    f
}

/// Ids of durable work only grow: the id of a job that is gone is never
/// handed out again (an SQLite `INTEGER PRIMARY KEY` would reuse the
/// newest one), and neither is an alarm's.
pub async fn ids_are_never_reused(c: &dyn Catalog) {
    let d = mkdir(c, ROOT_ID, "raw").await;
    let mut last = 0;
    for i in 0..5 {
        let f = direct(new_file(d.id, &format!("f{i}"), 100));
        let job = c
            .commit_files("n1", &[f], &[])
            .await
            .unwrap()
            .remove(0)
            .unwrap()
            .job
            .unwrap();
        assert!(job > last, "job id {job} after {last}");
        last = job;
        // The newest job goes with its file.
        let n = c.lookup(&p(&format!("/raw/f{i}"))).await.unwrap().unwrap();
        c.remove(n.id, false, None).await.unwrap();
        assert!(c.archive_jobs().await.unwrap().is_empty());
    }
    // Pools closing and members held back draw from the same sequence.
    let mut a = new_file(d.id, "a", 10);
    a.archive = Some(ArchiveRoute::Pool(pool_target("P", "ff1", 1000, 100)));
    c.commit_files("n1", &[a.clone()], &[]).await.unwrap();
    let job = c.close_pool("P", t(100), true).await.unwrap().unwrap();
    assert!(job.id > last);
    let held = c.hold_member(job.id, a.file_id, "bad").await.unwrap();
    assert!(held.id > job.id);
    // Nor is a node's: the access-time log and landing notes name nodes.
    let a = c.lookup(&p("/raw/a")).await.unwrap().unwrap();
    c.remove(a.id, false, None).await.unwrap();
    let b = put(c, d.id, "b", 1).await;
    assert!(b.id > a.id, "node {} after {}", b.id, a.id);
    let x = c.raise_alarm("error", "x", "one").await.unwrap();
    let y = c.raise_alarm("error", "x", "two").await.unwrap();
    assert!(y.id > x.id);
}

/// A tape commit removes exactly the job files it wrote: a job whose files
/// were not all in its packages stays queued with the rest, and is named.
pub async fn tape_commit_removes_exactly_its_files(c: &dyn Catalog) {
    c.add_volumes(&[new_volume("VL0001")]).await.unwrap();
    let d = mkdir(c, ROOT_ID, "raw").await;
    let files: Vec<NewFile> = (0..3).map(|i| new_file(d.id, &format!("f{i}"), 100 + i)).collect();
    let mut pooled = files.clone();
    for f in &mut pooled {
        f.archive = Some(ArchiveRoute::Pool(pool_target("P", "ff1", 1_000_000, 100)));
    }
    c.commit_files("n1", &pooled, &[]).await.unwrap();
    let job = c.close_pool("P", t(100), true).await.unwrap().unwrap();
    assert_eq!(job.files.len(), 3);
    // A package holding only f0, said to complete the job: f1 and f2 stay.
    let done = c
        .commit_tape_files(
            &volume_write("VL0001"),
            &[one_member_package(&files[0], Some(job.id), 0)],
        )
        .await
        .unwrap();
    assert_eq!(done.unfinished.len(), 1, "{:?}", done.unfinished);
    let mut left = vec![files[1].file_id, files[2].file_id];
    left.sort();
    assert_eq!(done.unfinished[0].files, left);
    let jobs = c.archive_jobs().await.unwrap();
    assert_eq!((jobs.len(), jobs[0].id, &jobs[0].files), (1, job.id, &left));
    // A package naming a job that holds none of its members leaves that job alone.
    // (The race this guards against: a job emptied by a delete, its id
    // handed out again, and the old write's commit taking the new file.)
    let other = direct(new_file(d.id, "other", 5));
    let stray = new_file(d.id, "stray", 6);
    let other_job = c
        .commit_files("n1", &[other, stray.clone()], &[])
        .await
        .unwrap()
        .remove(0)
        .unwrap()
        .job;
    let done = c
        .commit_tape_files(&volume_write("VL0001"), &[one_member_package(&stray, other_job, 1)])
        .await
        .unwrap();
    assert_eq!(
        done.unfinished.iter().map(|j| j.id).collect::<Vec<_>>(),
        [other_job.unwrap()]
    );
    assert_eq!(c.archive_jobs().await.unwrap().len(), 2);
    // The commit that completes a job removes it.
    let done = c
        .commit_tape_files(
            &volume_write("VL0001"),
            &[
                one_member_package(&files[1], Some(job.id), 2),
                one_member_package(&files[2], Some(job.id), 3),
            ],
        )
        .await
        .unwrap();
    assert!(done.unfinished.is_empty());
    let ids: Vec<i64> = c.archive_jobs().await.unwrap().iter().map(|j| j.id).collect();
    assert_eq!(ids, [other_job.unwrap()]);
}

/// Files on no way to tape are found, and put back on their way once.
pub async fn stranded_files_are_rerouted(c: &dyn Catalog) {
    let d = mkdir(c, ROOT_ID, "raw").await;
    // Routed files are not stranded; files recorded without a route are.
    let routed = direct(new_file(d.id, "routed", 10));
    let lost_a = new_file(d.id, "lost-a", 20);
    let lost_b = new_file(d.id, "lost-b", 30);
    c.commit_files("n1", &[routed, lost_a.clone(), lost_b.clone()], &[])
        .await
        .unwrap();
    mkdir(c, d.id, "sub").await;
    let mut found: Vec<FileId> = c
        .stranded_files(100)
        .await
        .unwrap()
        .iter()
        .map(|n| n.file_id.unwrap())
        .collect();
    found.sort();
    let mut want = vec![lost_a.file_id, lost_b.file_id];
    want.sort();
    assert_eq!(found, want);
    assert_eq!(c.stranded_files(1).await.unwrap().len(), 1);
    let reroute = |f: &NewFile, route| Reroute {
        file_id: f.file_id,
        size: f.size,
        route,
        at: t(50),
    };
    let pool = ArchiveRoute::Pool(pool_target("P", "ff1", 1000, 100));
    let jobs = c
        .reroute_files(&[
            reroute(&lost_a, pool.clone()),
            reroute(&lost_b, ArchiveRoute::Direct(target("ff1"))),
        ])
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!((jobs[0].files.as_slice(), jobs[0].bytes), (&[lost_b.file_id][..], 30));
    assert_eq!(c.pool_of(lost_a.file_id).await.unwrap().as_deref(), Some("P"));
    assert!(c.stranded_files(100).await.unwrap().is_empty());
    // Again: nothing is stranded any more, nothing changes.
    let again = c
        .reroute_files(&[
            reroute(&lost_a, pool),
            reroute(&lost_b, ArchiveRoute::Direct(target("ff1"))),
        ])
        .await
        .unwrap();
    assert!(again.is_empty());
    assert_eq!(c.archive_jobs().await.unwrap().len(), 2);
    assert_eq!(c.pools().await.unwrap()[0].files, 1);
}

/// Dead member counts stay exact when members are deleted while their
/// package's commit is in flight: 50 rounds of a package commit racing
/// deletes of some of its members.
pub async fn dead_counts_exact_under_concurrency(c: std::sync::Arc<dyn Catalog>) {
    const ROUNDS: u32 = 50;
    const MEMBERS: usize = 6;
    c.add_volumes(&[new_volume("VL0001")]).await.unwrap();
    let d = mkdir(&*c, ROOT_ID, "raw").await;
    let mut position = 0;
    for round in 0..ROUNDS {
        let files: Vec<NewFile> = (0..MEMBERS)
            .map(|i| direct(new_file(d.id, &format!("r{round}-{i}"), 100 + i as u64)))
            .collect();
        let committed = c.commit_files("n1", &files, &[]).await.unwrap();
        let nodes: Vec<Node> = committed.into_iter().map(|r| r.unwrap().node).collect();
        let package = NewPackage {
            id: format!("pkg-{round}"),
            seq: round,
            position,
            size: 10_000,
            adler32: Adler32(7),
            created: t(30),
            members: files
                .iter()
                .enumerate()
                .map(|(i, f)| NewMember {
                    file_id: f.file_id,
                    offset: 512 * (i as u64 + 1),
                    size: f.size,
                    adler32: f.adler32,
                })
                .collect(),
            job: None,
        };
        position += 10_000;
        // Every other member is deleted while the package is recorded.
        let doomed: Vec<Node> = nodes.iter().step_by(2).cloned().collect();
        let deletes = doomed.iter().map(|n| {
            let (c, id) = (c.clone(), n.id);
            tokio::spawn(async move { c.remove(id, false, None).await.unwrap() })
        });
        let deletes: Vec<_> = deletes.collect();
        c.commit_tape_files(&volume_write("VL0001"), &[package]).await.unwrap();
        for t in deletes {
            t.await.unwrap();
        }
        let (pkg, _) = c.package(&format!("pkg-{round}")).await.unwrap().unwrap();
        let bytes: u64 = doomed.iter().map(|n| n.size).sum();
        assert_eq!(
            (pkg.dead_members, pkg.dead_bytes),
            (doomed.len() as u32, bytes),
            "round {round}"
        );
    }
}

/// One node at a time uses a catalog: another is refused while the first
/// one's heartbeat is fresh, and admitted once it is stale or released.
pub async fn catalog_is_claimed_by_one_node(c: &dyn Catalog) {
    const STALE: i64 = 60_000_000_000;
    c.claim_catalog("n1", "host-a", t(100), STALE).await.unwrap();
    // The same node again (a restart) is fine.
    c.claim_catalog("n1", "host-a", t(105), STALE).await.unwrap();
    let e = c.claim_catalog("n2", "host-b", t(110), STALE).await.unwrap_err();
    assert!(
        matches!(&e, CatalogError::AlreadyExists(m) if m.contains("n1") && m.contains("host-a")),
        "{e}"
    );
    c.heartbeat("n1", t(150)).await.unwrap();
    assert!(c.claim_catalog("n2", "host-b", t(200), STALE).await.is_err());
    // Silent for more than a minute: the next node takes over.
    c.claim_catalog("n2", "host-b", t(211), STALE).await.unwrap();
    assert!(c.claim_catalog("n1", "host-a", t(212), STALE).await.is_err());
    c.release_catalog("n2").await.unwrap();
    c.claim_catalog("n1", "host-a", t(213), STALE).await.unwrap();
}

pub async fn alarms_are_kept(c: &dyn Catalog) {
    let a = c.raise_alarm("error", "volume VL0001", "write error").await.unwrap();
    let b = c.raise_alarm("warning", "drive d1", "offline").await.unwrap();
    let all = c.alarms().await.unwrap();
    assert_eq!(all, vec![b, a]);
}

fn pool_target(key: &str, ff: &str, target_size: u64, max_files: u32) -> PoolTarget {
    PoolTarget {
        key: key.into(),
        rule: "small".into(),
        target: target(ff),
        limits: PoolLimits {
            target_size,
            max_files,
            max_wait_ms: 2000,
        },
    }
}

pub async fn pools_fill_and_close(c: &dyn Catalog) {
    let d = mkdir(c, ROOT_ID, "raw").await;
    // Eight files of 100..800 bytes in pool A (target 1000 bytes, at most 3
    // files), two in pool B; one joins at a later time.
    let mut files = Vec::new();
    for i in 0..10u64 {
        let mut f = new_file(d.id, &format!("f{i}"), 100 * (i + 1));
        f.time = t(10 + i as i64);
        f.archive = Some(ArchiveRoute::Pool(if i < 8 {
            pool_target("small/a", "ff1", 1000, 3)
        } else {
            pool_target("small/b", "ff2", 1000, 3)
        }));
        files.push(f);
    }
    for r in c.commit_files("n1", &files, &[]).await.unwrap() {
        assert!(r.unwrap().job.is_none(), "a pooled file has no job yet");
    }
    let pools = c.pools().await.unwrap();
    assert_eq!(pools.len(), 2);
    assert_eq!(
        (pools[0].key.as_str(), pools[0].files, pools[0].bytes, pools[0].oldest),
        ("small/a", 8, 3600, t(10))
    );
    assert_eq!((pools[1].files, pools[1].bytes, pools[1].oldest), (2, 1900, t(18)));
    assert_eq!(pools[0].limits.max_files, 3);
    assert_eq!(pools[1].target, target("ff2"));
    assert_eq!(c.pool_of(files[0].file_id).await.unwrap().as_deref(), Some("small/a"));
    assert!(c.archive_jobs().await.unwrap().is_empty());

    // A pool below every limit stays open until its oldest member waited
    // its 2 s.
    let mut young = new_file(d.id, "young", 10);
    young.time = t(100);
    young.archive = Some(ArchiveRoute::Pool(pool_target("small/c", "ff1", 1000, 3)));
    c.commit_files("n1", &[young], &[]).await.unwrap().remove(0).unwrap();
    assert!(c.close_pool("small/c", t(101), false).await.unwrap().is_none());
    let aged = c.close_pool("small/c", t(102), false).await.unwrap().unwrap();
    assert_eq!((aged.files.len(), aged.bytes), (1, 10));
    assert!(c.pools().await.unwrap().iter().all(|p| p.key != "small/c"));

    // Oldest first; stops at the member that reaches the target: 100+200+300
    // is below 1000 but three files is the limit.
    let j1 = c.close_pool("small/a", t(40), false).await.unwrap().unwrap();
    assert_eq!(j1.files.len(), 3);
    assert_eq!((j1.bytes, j1.pool.as_deref()), (600, Some("small/a")));
    assert_eq!(j1.target, target("ff1"));
    // 400+500 = 900 < 1000, +600 = 1500: past the target by one member.
    let j2 = c.close_pool("small/a", t(41), false).await.unwrap().unwrap();
    assert_eq!(j2.bytes, 1500);
    let mut expect = vec![files[3].file_id, files[4].file_id, files[5].file_id];
    expect.sort();
    assert_eq!(j2.files, expect);
    assert!(c.pool_of(files[3].file_id).await.unwrap().is_none());
    assert_eq!(c.job_of(files[3].file_id).await.unwrap().unwrap().id, j2.id);
    // 700 is below the target; 700 + 800 reaches it.
    let j3 = c.close_pool("small/a", t(42), true).await.unwrap().unwrap();
    assert_eq!((j3.files.len(), j3.bytes), (2, 1500));
    assert!(c.close_pool("small/a", t(43), true).await.unwrap().is_none());
    assert!(c.close_pool("nope", t(43), true).await.unwrap().is_none());
    assert_eq!(c.pools().await.unwrap().len(), 1, "the empty pool is gone");

    // A file deleted from an open pool leaves it; a pool left empty goes.
    for name in ["f8", "f9"] {
        let n = c.lookup(&p(&format!("/raw/{name}"))).await.unwrap().unwrap();
        c.remove(n.id, false, None).await.unwrap();
    }
    assert!(c.pools().await.unwrap().is_empty());
    assert!(c.close_pool("small/b", t(44), true).await.unwrap().is_none());

    // A member whose data is bad is held back in a failed job of its own.
    let held = c.hold_member(j1.id, j1.files[0], "adler32 mismatch").await.unwrap();
    assert_eq!((held.state, held.files.as_slice()), (JobState::Failed, &j1.files[..1]));
    assert_eq!(held.error.as_deref(), Some("adler32 mismatch"));
    let rest = c.job_of(j1.files[1]).await.unwrap().unwrap();
    assert_eq!((rest.id, rest.files.len(), rest.state), (j1.id, 2, JobState::Queued));
    assert!(matches!(
        c.hold_member(j1.id, j1.files[0], "again").await,
        Err(CatalogError::NotFound(_))
    ));
    assert_eq!(c.archive_jobs().await.unwrap().len(), 5);
}
