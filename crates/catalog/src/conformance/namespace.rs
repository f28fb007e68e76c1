//! Conformance: the namespace, files, landing notes, tokens.

use super::*;

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
    replace.replace = Replace::Any;
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

/// Bulk walks give what one walk per path gives: missing entries, missing
/// parents, a file used as a directory, the root, the same path twice.
pub async fn walks_in_bulk(c: &dyn Catalog) {
    let a = mkdir(c, ROOT_ID, "a").await;
    let b = mkdir(c, a.id, "b c").await;
    for i in 0..5 {
        put(c, b.id, &format!("f{i}"), i + 1).await;
    }
    put(c, ROOT_ID, "top", 1).await;
    let named = c
        .children_named(b.id, &["f1".into(), "nope".into(), "f3".into()])
        .await
        .unwrap();
    let mut names: Vec<&str> = named.iter().map(|n| n.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["f1", "f3"]);
    let paths: Vec<NsPath> = [
        "/a/b c/f0",
        "/a/b c/nope",
        "/a/x/f1",
        "/top/f",
        "/",
        "/top",
        "/a/b c/f4",
        "/a/b c/f0",
        "/a/b c",
    ]
    .iter()
    .map(|s| p(s))
    .collect();
    let bulk = c.walk_many(&paths).await.unwrap();
    assert_eq!(bulk.len(), paths.len());
    for (path, chain) in paths.iter().zip(&bulk) {
        let one = c.walk(path).await.unwrap();
        let ids = |v: &Vec<Node>| v.iter().map(|n| n.id).collect::<Vec<_>>();
        assert_eq!(ids(chain), ids(&one), "{path}");
    }
    assert_eq!(bulk[0].last().unwrap().size, 1);
    assert!(c.walk_many(&[]).await.unwrap().is_empty());
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
                mtime: Some(t(77)),
            },
        )
        .await
        .unwrap();
    assert_eq!((n.owner.as_str(), n.group.as_str(), n.mode), ("bob", "phys", 0o700));
    assert_eq!(n.mtime, t(77));
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

/// A tree whose deepest file's path is `4096 - slack` bytes long: "/a",
/// 16 directories of 250-byte names (4018 bytes), a file of `77 - slack`
/// bytes.
/// Returns the top, the deepest directory and the file.
async fn deep_tree(c: &dyn Catalog, top: &str, slack: usize) -> (Node, Node, Node) {
    let a = mkdir(c, ROOT_ID, top).await;
    let mut d = a.clone();
    let mut len = 1 + top.len();
    for i in 0..16 {
        d = mkdir(c, d.id, &format!("{i:x}").repeat(250)[..250]).await;
        len += 251;
    }
    let name = "f".repeat(4096 - slack - len - 1);
    let f = put(c, d.id, &name, 1).await;
    assert_eq!(c.path_of(f.id).await.unwrap().as_str().len(), 4096 - slack);
    (a, d, f)
}

/// No path the catalog holds is longer than 4096 bytes, whatever makes
/// it: a commit, a directory, an import, a rename of a file, or a move of
/// a directory that would lengthen every path below it. A refusal
/// changes nothing; the limit itself is allowed.
pub async fn paths_stay_within_the_limit(c: &dyn Catalog) {
    let too_long = |r: Result<Node>| matches!(r, Err(CatalogError::TooLong(_)));
    let (a, deep, f) = deep_tree(c, "a", 10).await;
    let f_path = c.path_of(f.id).await.unwrap();
    // The top moved to a name 10 bytes longer: the deepest path is 4096.
    let ten = "a".repeat(11);
    c.rename(a.id, ROOT_ID, &ten, false).await.unwrap();
    assert_eq!(c.path_of(f.id).await.unwrap().as_str().len(), 4096);
    // One byte more: refused, nothing moved.
    let e = c.rename(a.id, ROOT_ID, &"a".repeat(12), false).await.unwrap_err();
    assert!(matches!(&e, CatalogError::TooLong(m) if m.contains("4097")), "{e}");
    assert_eq!(c.path_of(f.id).await.unwrap().as_str().len(), 4096);
    // Moved to a shorter name: nothing to check below.
    c.rename(a.id, ROOT_ID, "a", false).await.unwrap();
    assert_eq!(c.path_of(f.id).await.unwrap(), f_path);
    // Into a directory deep enough that it would not fit.
    let b = mkdir(c, ROOT_ID, "b").await;
    let x = put(c, b.id, &"x".repeat(100), 1).await;
    assert!(matches!(
        c.rename(b.id, deep.id, "b", false).await,
        Err(CatalogError::TooLong(_))
    ));
    assert_eq!(c.path_of(x.id).await.unwrap().as_str().len(), 2 + 1 + 100);
    // A file renamed into it under a name too long.
    let room = 4096 - (c.path_of(deep.id).await.unwrap().as_str().len() + 1);
    assert!(too_long(
        c.rename(x.id, deep.id, &"x".repeat(room + 1), false)
            .await
            .map(|r| r.node)
    ));
    c.rename(x.id, deep.id, &"x".repeat(room), false).await.unwrap();
    // Entries made there: one byte past the limit is refused.
    assert!(too_long(
        c.create_dir(NewDir {
            name: "d".repeat(room + 1),
            ..other_dir(deep.id, "x")
        })
        .await
    ));
    c.create_dir(NewDir {
        name: "d".repeat(room.min(255)),
        ..other_dir(deep.id, "x")
    })
    .await
    .unwrap();
    let out = c
        .commit_files(
            "n1",
            &[new_file(deep.id, &"g".repeat(room + 1), 1), new_file(deep.id, "g", 1)],
            &[],
        )
        .await
        .unwrap();
    assert!(matches!(&out[0], Err(CatalogError::TooLong(_))), "{:?}", out[0]);
    assert!(out[1].is_ok(), "the neighbour in the batch is committed");
    let entry = |name: &str| ImportNode {
        parent: ImportParent::Node(deep.id),
        name: name.into(),
        kind: NodeKind::Dir,
        owner: "o".into(),
        group: "g".into(),
        mode: 0o755,
        size: 0,
        ctime: t(1),
        mtime: t(1),
        atime: t(1),
        file_id: None,
        adler32: None,
        tags: Tags::default(),
        cached: true,
    };
    let before = c.list(deep.id, None, 100).await.unwrap().len();
    assert!(matches!(
        c.import_nodes(&[entry("i"), entry(&"i".repeat(room + 1))]).await,
        Err(CatalogError::TooLong(_))
    ));
    assert_eq!(
        c.list(deep.id, None, 100).await.unwrap().len(),
        before,
        "all or nothing"
    );
}

/// A file created deep in a tree while the tree's top moves to a longer
/// name: either fits alone, not both, and exactly one of them happens
/// (on PostgreSQL neither transaction could see the other's uncommitted
/// change without the path lock).
pub async fn paths_stay_within_the_limit_under_concurrency(c: std::sync::Arc<dyn Catalog>) {
    let (a, deep, f) = deep_tree(&*c, "a", 40).await;
    c.remove(f.id, false, None).await.unwrap();
    // The deepest directory's path is 4018 bytes: a file of 60 bytes fits
    // there (4079) unless the top grows by 20 bytes (4099).
    let long_top = "a".repeat(21);
    for round in 0..20 {
        let name = format!("{round:02}").repeat(30);
        let (c1, c2) = (c.clone(), c.clone());
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(2));
        let (s1, s2) = (start.clone(), start.clone());
        let top = long_top.clone();
        let mv = tokio::spawn(async move {
            s1.wait().await;
            c1.rename(a.id, ROOT_ID, &top, false).await
        });
        let put = tokio::spawn(async move {
            s2.wait().await;
            c2.commit_files("n1", &[new_file(deep.id, &name, 1)], &[])
                .await
                .unwrap()
                .remove(0)
        });
        let (mv, put) = (mv.await.unwrap(), put.await.unwrap());
        match (&mv, &put) {
            (Ok(_), Err(CatalogError::TooLong(_))) => {
                c.rename(a.id, ROOT_ID, "a", false).await.unwrap();
            }
            (Err(CatalogError::TooLong(_)), Ok(done)) => {
                c.remove(done.node.id, false, None).await.unwrap();
            }
            _ => panic!("round {round}: move {mv:?}, file {put:?}"),
        };
        assert!(c.list(deep.id, None, 10).await.unwrap().is_empty());
    }
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

/// A bulk import records entries as given (its own tags, times and
/// residency), parents by index or by id, all or nothing, with ids that
/// later entries never get again.
pub async fn imports_in_bulk(c: &dyn Catalog) {
    let base = mkdir(c, ROOT_ID, "base").await;
    let plain = put(c, base.id, "plain", 3).await;
    let tags = Tags {
        storage_group: Some("mu2e".into()),
        file_family: Some("raw".into()),
        file_family_width: Some(2),
        wrapper: Some("cpio_odc".into()),
        library: Some("lib1".into()),
        write_once: None,
    };
    let entry = |parent, name: &str, file: bool| ImportNode {
        parent,
        name: name.into(),
        kind: if file { NodeKind::File } else { NodeKind::Dir },
        owner: "bob".into(),
        group: "mu2e".into(),
        mode: if file { 0o640 } else { 0o750 },
        size: if file { 1000 } else { 0 },
        ctime: t(5),
        mtime: t(6),
        atime: t(7),
        file_id: file.then(FileId::generate),
        adler32: file.then_some(Adler32(99)),
        tags: tags.clone(),
        cached: !file,
    };
    let batch = vec![
        entry(ImportParent::Node(base.id), "run1", false),
        entry(ImportParent::Entry(0), "a.dat", true),
        entry(ImportParent::Entry(0), "sub", false),
        entry(ImportParent::Entry(2), "b.dat", true),
        entry(ImportParent::Node(base.id), "top.dat", true),
    ];
    let ids = c.import_nodes(&batch).await.unwrap();
    assert_eq!(ids.len(), 5);
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 5, "distinct ids");
    assert!(
        ids.iter().all(|&i| i > plain.id),
        "ids follow every id handed out before"
    );
    let b = c
        .lookup(&p("/base/run1/sub/b.dat"))
        .await
        .unwrap()
        .expect("imported file");
    assert_eq!(b.id, ids[3]);
    assert_eq!(
        (b.owner.as_str(), b.group.as_str(), b.mode, b.size),
        ("bob", "mu2e", 0o640, 1000)
    );
    assert_eq!((b.ctime, b.mtime, b.atime), (t(5), t(6), t(7)));
    assert_eq!(
        (b.file_id, b.adler32, b.cached),
        (batch[3].file_id, Some(Adler32(99)), false)
    );
    assert_eq!(b.tags, tags, "an import keeps its own tags");
    assert_eq!(
        c.node_by_file_id(batch[1].file_id.unwrap()).await.unwrap().unwrap().id,
        ids[1]
    );
    let run1 = c.list(ids[0], None, 10).await.unwrap();
    assert_eq!(
        run1.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
        ["a.dat", "sub"]
    );
    assert!(run1[1].is_dir() && run1[1].cached);

    // All or nothing: a taken name, a missing parent, a file as parent.
    let before = c.list(base.id, None, 100).await.unwrap().len();
    let taken = vec![
        entry(ImportParent::Node(base.id), "fresh", false),
        entry(ImportParent::Node(base.id), "plain", true),
    ];
    assert!(matches!(
        c.import_nodes(&taken).await,
        Err(CatalogError::AlreadyExists(_))
    ));
    let dup_id = vec![ImportNode {
        file_id: batch[1].file_id,
        ..entry(ImportParent::Node(base.id), "again.dat", true)
    }];
    assert!(matches!(
        c.import_nodes(&dup_id).await,
        Err(CatalogError::AlreadyExists(_))
    ));
    let orphan = vec![entry(ImportParent::Node(999_999), "x", true)];
    assert!(matches!(c.import_nodes(&orphan).await, Err(CatalogError::NotFound(_))));
    let under_file = vec![entry(ImportParent::Node(plain.id), "x", true)];
    assert!(matches!(
        c.import_nodes(&under_file).await,
        Err(CatalogError::NotADirectory(_))
    ));
    for bad in [
        vec![entry(ImportParent::Entry(0), "self", false)],
        vec![
            entry(ImportParent::Node(base.id), "f", true),
            entry(ImportParent::Entry(0), "g", true),
        ],
        vec![entry(ImportParent::Node(base.id), "a/b", true)],
        vec![entry(ImportParent::Node(base.id), "..", false)],
        vec![ImportNode {
            adler32: None,
            ..entry(ImportParent::Node(base.id), "nosum", true)
        }],
        vec![ImportNode {
            size: 5,
            ..entry(ImportParent::Node(base.id), "bigdir", false)
        }],
    ] {
        assert!(
            matches!(c.import_nodes(&bad).await, Err(CatalogError::Invalid(_))),
            "{bad:?}"
        );
    }
    assert_eq!(
        c.list(base.id, None, 100).await.unwrap().len(),
        before,
        "a refused import records nothing"
    );
    assert!(c.lookup(&p("/base/fresh")).await.unwrap().is_none());
    // Ids handed out by an import (even a refused one) are not handed out again.
    let later = mkdir(c, base.id, "later").await;
    assert!(later.id > *ids.iter().max().unwrap());
}

/// An overwrite replaces only the file its writer checked, and takes the
/// client's modification time; the replaced file's dead properties go to
/// the new one.
pub async fn overwrite_replaces_the_checked_file(c: &dyn Catalog) {
    let d = mkdir(c, ROOT_ID, "ow").await;
    let first = put(c, d.id, "f", 3).await;
    let prop = DeadProp {
        ns: "urn:x".into(),
        name: "k".into(),
        xml: "<k xmlns=\"urn:x\">v</k>".into(),
    };
    c.patch_props(first.id, &[PropChange::Set(prop.clone())], None)
        .await
        .unwrap();
    // Checked against another file: refused, nothing changes.
    let mut stale = new_file(d.id, "f", 5);
    stale.replace = Replace::File(FileId::generate());
    let r = c.commit_files("n1", &[stale], &[]).await.unwrap().remove(0);
    assert!(matches!(r, Err(CatalogError::Changed(_))), "{r:?}");
    assert_eq!(c.child(d.id, "f").await.unwrap().unwrap().file_id, first.file_id);
    // Create-only: refused.
    let r = c
        .commit_files("n1", &[new_file(d.id, "f", 5)], &[])
        .await
        .unwrap()
        .remove(0);
    assert!(matches!(r, Err(CatalogError::AlreadyExists(_))), "{r:?}");
    // Checked against this one: replaced, with the client's time and the props.
    let mut ok = new_file(d.id, "f", 7);
    ok.replace = Replace::File(first.file_id.unwrap());
    ok.mtime = Some(t(3));
    let n = c.commit_files("n1", &[ok], &[]).await.unwrap().remove(0).unwrap().node;
    assert_eq!((n.size, n.mtime), (7, t(3)));
    assert_ne!(n.id, first.id);
    assert_eq!(c.dead_props(&[n.id]).await.unwrap(), vec![(n.id, prop)]);
    assert!(c.dead_props(&[first.id]).await.unwrap().is_empty());
}

/// Dead properties: set and removed in order, all or nothing; they stay
/// with their node through a rename and go with it.
pub async fn dead_props_live_with_their_node(c: &dyn Catalog) {
    let d = mkdir(c, ROOT_ID, "props").await;
    let f = put(c, d.id, "f", 1).await;
    let g = put(c, d.id, "g", 1).await;
    let prop = |ns: &str, name: &str, v: &str| DeadProp {
        ns: ns.into(),
        name: name.into(),
        xml: format!("<{name} xmlns=\"{ns}\">{v}</{name}>"),
    };
    let rm = |ns: &str, name: &str| PropChange::Remove {
        ns: ns.into(),
        name: name.into(),
    };
    // In order: remove (of nothing), set x, set y: y stays. Same name in two namespaces: two.
    let n = c
        .patch_props(
            f.id,
            &[
                rm("urn:a", "p"),
                PropChange::Set(prop("urn:a", "p", "x")),
                PropChange::Set(prop("urn:a", "p", "y")),
                PropChange::Set(prop("urn:b", "p", "z")),
                PropChange::Set(prop("", "q", "nons")),
            ],
            Some(t(42)),
        )
        .await
        .unwrap();
    assert_eq!(n.mtime, t(42));
    c.patch_props(g.id, &[PropChange::Set(prop("urn:a", "p", "g"))], None)
        .await
        .unwrap();
    let got = c.dead_props(&[g.id, f.id]).await.unwrap();
    assert_eq!(
        got,
        vec![
            (g.id, prop("urn:a", "p", "g")),
            (f.id, prop("", "q", "nons")),
            (f.id, prop("urn:a", "p", "y")),
            (f.id, prop("urn:b", "p", "z")),
        ]
    );
    // Set then remove: gone.
    c.patch_props(
        f.id,
        &[PropChange::Set(prop("urn:c", "r", "1")), rm("urn:c", "r")],
        None,
    )
    .await
    .unwrap();
    assert_eq!(c.dead_props(&[f.id]).await.unwrap().len(), 3);
    // Past the limit: nothing of the patch is kept.
    let many: Vec<PropChange> = (0..MAX_DEAD_PROPS)
        .map(|i| PropChange::Set(prop("urn:m", &format!("m{i}"), "v")))
        .collect();
    let e = c.patch_props(f.id, &many, Some(t(99))).await.unwrap_err();
    assert!(matches!(e, CatalogError::Limit(_)), "{e:?}");
    assert_eq!(c.dead_props(&[f.id]).await.unwrap().len(), 3);
    assert_eq!(c.node(f.id).await.unwrap().unwrap().mtime, t(42));
    // Past the bytes: nothing either (one value of 64 KiB).
    let big = PropChange::Set(prop("urn:big", "b", &"é".repeat(MAX_DEAD_PROP_BYTES / 2)));
    let e = c.patch_props(f.id, &[big], None).await.unwrap_err();
    assert!(matches!(e, CatalogError::Limit(_)), "{e:?}");
    assert_eq!(c.dead_props(&[f.id]).await.unwrap().len(), 3);
    // A rename keeps them; a remove takes them.
    c.rename(f.id, ROOT_ID, "moved", false).await.unwrap();
    assert_eq!(c.dead_props(&[f.id]).await.unwrap().len(), 3);
    c.remove(f.id, false, None).await.unwrap();
    assert!(c.dead_props(&[f.id]).await.unwrap().is_empty());
    let e = c.patch_props(f.id, &[rm("urn:a", "p")], None).await.unwrap_err();
    assert!(matches!(e, CatalogError::NotFound(_)), "{e:?}");
}

/// The write_once tag is kept on the directory that has it and is not
/// copied to directories made beneath it (it is in force there through
/// their ancestor).
pub async fn write_once_tag(c: &dyn Catalog) {
    let d = mkdir(c, ROOT_ID, "wo").await;
    let mut tags = d.tags.clone();
    tags.set("write_once", Some("true")).unwrap();
    tags.set("storage_group", Some("sg")).unwrap();
    let n = c.set_tags(d.id, &tags).await.unwrap();
    assert_eq!(n.tags.write_once, Some(true));
    let sub = mkdir(c, d.id, "sub").await;
    assert_eq!(
        (sub.tags.write_once, sub.tags.storage_group.as_deref()),
        (None, Some("sg"))
    );
    let f = put(c, sub.id, "f", 1).await;
    assert_eq!(f.tags.write_once, None);
    tags.set("write_once", Some("false")).unwrap();
    assert_eq!(c.set_tags(d.id, &tags).await.unwrap().tags.write_once, Some(false));
    assert!(tags.set("write_once", Some("yes")).is_err());
}

async fn group_dir(c: &dyn Catalog, name: &str, group: &str) -> Node {
    let d = mkdir(c, ROOT_ID, name).await;
    let mut tags = d.tags.clone();
    tags.set("storage_group", Some(group)).unwrap();
    c.set_tags(d.id, &tags).await.unwrap()
}

fn usage_of(all: &[GroupUsage], group: &str) -> (u64, u64) {
    all.iter()
        .find(|u| u.storage_group == group)
        .map_or((0, 0), |u| (u.files, u.bytes))
}

/// Quotas per storage group hold in the commit: files up to the quota are
/// recorded, the next is refused and nothing of it is; an overwrite counts
/// its difference; a remove, a replacing rename and an import keep the use
/// exact; an empty quota removes it.
pub async fn quotas_hold_in_the_commit(c: &dyn Catalog) {
    let d = group_dir(c, "q", "sgq").await;
    let other = mkdir(c, ROOT_ID, "plain").await;
    let mut q = Quota {
        storage_group: "sgq".into(),
        bytes: Some(100),
        files: Some(3),
        volumes: [("lib1".to_string(), 2)].into_iter().collect(),
    };
    c.set_quota(&q).await.unwrap();
    assert_eq!(c.quotas().await.unwrap(), vec![q.clone()]);
    let a = put(c, d.id, "a", 40).await;
    put(c, d.id, "b", 40).await;
    // Bytes: 80 + 30 > 100.
    let r = c
        .commit_files("n1", &[new_file(d.id, "c", 30)], &[])
        .await
        .unwrap()
        .remove(0);
    assert!(matches!(&r, Err(CatalogError::Quota(m)) if m.contains("sgq")), "{r:?}");
    assert!(c.child(d.id, "c").await.unwrap().is_none());
    assert_eq!(usage_of(&c.group_usage().await.unwrap(), "sgq"), (2, 80));
    // Elsewhere no limit.
    put(c, other.id, "big", 1000).await;
    assert_eq!(usage_of(&c.group_usage().await.unwrap(), "default").0, 1);
    // One batch: the third file fits, the fourth does not (files).
    let r = c
        .commit_files("n1", &[new_file(d.id, "c", 10), new_file(d.id, "d", 1)], &[])
        .await
        .unwrap();
    assert!(r[0].is_ok());
    assert!(
        matches!(&r[1], Err(CatalogError::Quota(m)) if m.contains("3 files")),
        "{r:?}"
    );
    assert_eq!(usage_of(&c.group_usage().await.unwrap(), "sgq"), (3, 90));
    // An overwrite counts the difference: 40 -> 50 fits, 40 -> 51 does not.
    let mut over = new_file(d.id, "a", 51);
    over.replace = Replace::File(a.file_id.unwrap());
    let r = c.commit_files("n1", &[over], &[]).await.unwrap().remove(0);
    assert!(matches!(r, Err(CatalogError::Quota(_))), "{r:?}");
    let mut over = new_file(d.id, "a", 50);
    over.replace = Replace::File(a.file_id.unwrap());
    c.commit_files("n1", &[over], &[]).await.unwrap().remove(0).unwrap();
    assert_eq!(usage_of(&c.group_usage().await.unwrap(), "sgq"), (3, 100));
    // A remove frees.
    let b = c.child(d.id, "b").await.unwrap().unwrap();
    c.remove(b.id, false, None).await.unwrap();
    assert_eq!(usage_of(&c.group_usage().await.unwrap(), "sgq"), (2, 60));
    put(c, d.id, "e", 40).await;
    // A rename onto a file frees the replaced one.
    let e = c.child(d.id, "e").await.unwrap().unwrap();
    c.rename(e.id, d.id, "c", true).await.unwrap();
    assert_eq!(usage_of(&c.group_usage().await.unwrap(), "sgq"), (2, 90));
    // No quota: no limit; the use is still kept.
    q.bytes = None;
    q.files = None;
    q.volumes.clear();
    c.set_quota(&q).await.unwrap();
    assert!(c.quotas().await.unwrap().is_empty());
    put(c, d.id, "f", 500).await;
    assert_eq!(usage_of(&c.group_usage().await.unwrap(), "sgq"), (3, 590));
    // A whole tree removed.
    c.remove(d.id, true, None).await.unwrap();
    assert_eq!(usage_of(&c.group_usage().await.unwrap(), "sgq"), (0, 0));
}

/// Concurrent commits never take more than a quota, on either backend
/// (PostgreSQL: separate transactions; the group's use row is locked).
pub async fn quotas_hold_under_concurrent_commits(c: std::sync::Arc<dyn Catalog>) {
    let d = group_dir(&*c, "cq", "sgc").await;
    c.set_quota(&Quota {
        storage_group: "sgc".into(),
        bytes: None,
        files: Some(5),
        volumes: Default::default(),
    })
    .await
    .unwrap();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(12));
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (c, start) = (c.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                c.commit_files(&format!("n{i}"), &[new_file(d.id, &format!("f{i}"), 7)], &[])
                    .await
                    .unwrap()
                    .remove(0)
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(CatalogError::Quota(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(ok, 5);
    assert_eq!(c.list(d.id, None, 100).await.unwrap().len(), 5);
    assert_eq!(usage_of(&c.group_usage().await.unwrap(), "sgc"), (5, 35));
}

/// Two removals of one file at once, and a removal racing an overwrite:
/// the file leaves its storage group's use once.
pub async fn use_is_counted_once_under_concurrent_removals(c: std::sync::Arc<dyn Catalog>) {
    let d = group_dir(&*c, "rq", "sgr").await;
    let mut files = Vec::new();
    for i in 0..20 {
        files.push(put(&*c, d.id, &format!("f{i}"), 10).await);
    }
    let tasks: Vec<_> = files
        .iter()
        .enumerate()
        .flat_map(|(i, f)| (0..2).map(move |k| (i, k, f.clone())))
        .map(|(i, k, f)| {
            let c = c.clone();
            tokio::spawn(async move {
                if i % 2 == 1 && k == 1 {
                    // An overwrite of the same file meanwhile.
                    let mut over = new_file(f.parent.unwrap(), &f.name, 3);
                    over.replace = Replace::File(f.file_id.unwrap());
                    let _ = c.commit_files("n1", &[over], &[]).await;
                } else {
                    let _ = c.remove(f.id, false, None).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    // More files after: a use counted below zero (shown as zero) shows.
    for i in 0..5 {
        put(&*c, d.id, &format!("g{i}"), 7).await;
    }
    let left = c.list(d.id, None, 100).await.unwrap();
    let want = (left.len() as u64, left.iter().map(|n| n.size).sum::<u64>());
    assert_eq!(usage_of(&c.group_usage().await.unwrap(), "sgr"), want);
}
