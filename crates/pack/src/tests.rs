use super::*;
use std::process::Command;

fn member(path: &str, data: &[u8]) -> MemberMeta {
    MemberMeta {
        file_id: FileId::generate(),
        path: path.into(),
        size: data.len() as u64,
        adler32: Adler32::of(data),
        owner: "alice".into(),
        group: "mu2e".into(),
        mode: 0o640,
        ctime: Timestamp(1_700_000_000_000_000_000),
        mtime: Timestamp(1_700_000_001_000_000_000),
        props: Vec::new(),
    }
}

fn build(members: &[(&str, Vec<u8>)]) -> (Plan, Vec<u8>, Written) {
    let metas = members.iter().map(|(p, d)| member(p, d)).collect();
    let plan = Plan::new("0190a5b2-0000-7000-8000-000000000001", Timestamp::now(), metas).unwrap();
    let mut out = Vec::new();
    let w = plan
        .write(&mut out, |i, _| Ok(io::Cursor::new(members[i].1.clone())))
        .unwrap();
    (plan, out, w)
}

fn long_path() -> String {
    format!("/{}/{}/file.dat", "d".repeat(120), "e".repeat(140))
}

#[test]
fn a_package_reads_back_with_its_manifest_and_offsets() {
    let members = vec![
        ("/exp/a.dat", b"hello".to_vec()),
        ("/exp/run 1/b.dat", vec![7u8; 1000]),
        ("/exp/empty", Vec::new()),
        (long_path().leak() as &str, vec![1u8; 513]),
    ];
    let (plan, bytes, w) = build(&members);
    assert_eq!(w.size, bytes.len() as u64);
    assert_eq!(w.size, plan.size());
    assert_eq!(w.adler32, Adler32::of(&bytes));
    for (m, (_, data)) in plan.manifest().members.iter().zip(&members) {
        let at = m.offset as usize;
        assert_eq!(&bytes[at..at + data.len()], &data[..], "{}", m.meta.path);
    }
    let mut seen = Vec::new();
    let manifest = read(&bytes[..], |m, r| {
        let mut d = Vec::new();
        r.read_to_end(&mut d)?;
        seen.push((m.meta.path.clone(), d));
        Ok(())
    })
    .unwrap();
    assert_eq!(&manifest, plan.manifest());
    let expected: Vec<_> = members.iter().map(|(p, d)| (p.to_string(), d.clone())).collect();
    assert_eq!(seen, expected);
}

#[test]
fn a_member_with_the_wrong_checksum_or_length_is_refused() {
    let data = b"payload".to_vec();
    let plan = Plan::new("p", Timestamp::now(), vec![member("/x", &data)]).unwrap();
    let e = plan
        .write(&mut Vec::new(), |_, _| Ok(io::Cursor::new(b"paylaod".to_vec())))
        .unwrap_err();
    assert!(matches!(e, PackError::Checksum { index: 0, .. }), "{e}");
    let e = plan
        .write(&mut Vec::new(), |_, _| Ok(io::Cursor::new(b"pay".to_vec())))
        .unwrap_err();
    assert!(matches!(e, PackError::Short { got: 3, .. }), "{e}");
}

#[test]
fn a_damaged_package_is_detected_on_read() {
    let (plan, mut bytes, _) = build(&[("/a", vec![5u8; 100])]);
    let at = plan.manifest().members[0].offset as usize + 10;
    bytes[at] ^= 1;
    let e = read(&bytes[..], |_, _| Ok(())).unwrap_err();
    assert!(matches!(e, PackError::Checksum { .. }), "{e}");
    let e = read(&b"not a tar at all"[..], |_, _| Ok(())).unwrap_err();
    assert!(!e.to_string().is_empty());
}

#[test]
fn gnu_tar_lists_and_extracts_a_package() {
    if Command::new("tar").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "GNU tar is required in CI");
        return;
    }
    let long = long_path();
    let members = vec![
        ("/exp/a.dat", b"hello tape".to_vec()),
        (long.as_str(), vec![9u8; 70_000]),
    ];
    let (plan, bytes, _) = build(&members);
    let dir = tempfile::tempdir().unwrap();
    let tarfile = dir.path().join("p.tar");
    std::fs::write(&tarfile, &bytes).unwrap();
    let out = Command::new("tar").arg("-tvf").arg(&tarfile).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 3, "{listing}");
    assert!(
        lines[0].ends_with(&Manifest::name_for(&plan.manifest().package)),
        "{listing}"
    );
    assert!(
        lines[1].contains("alice/mu2e") && lines[1].ends_with("exp/a.dat"),
        "{listing}"
    );
    assert!(lines[2].ends_with(long.trim_start_matches('/')), "{listing}");
    let x = dir.path().join("x");
    std::fs::create_dir(&x).unwrap();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(&tarfile)
        .arg("-C")
        .arg(&x)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(std::fs::read(x.join("exp/a.dat")).unwrap(), b"hello tape");
    assert_eq!(
        std::fs::read(x.join(long.trim_start_matches('/'))).unwrap(),
        vec![9u8; 70_000]
    );
    let json = std::fs::read(x.join(Manifest::name_for(&plan.manifest().package))).unwrap();
    let m: Manifest = serde_json::from_slice(&json).unwrap();
    assert_eq!(&m, plan.manifest());
}

/// Members read ahead make the same bytes as members read in turn, whatever
/// the window (even smaller than one member), the threads, or the split
/// between members read whole and members streamed.
#[test]
fn read_ahead_writes_the_same_package() {
    let members: Vec<(String, Vec<u8>)> = (0..200u32)
        .map(|i| {
            let len = (i as usize * 7919) % 20_000;
            (
                format!("/exp/f{i:04}"),
                (0..len).map(|b| (b as u32 ^ i) as u8).collect(),
            )
        })
        .collect();
    let metas = members.iter().map(|(p, d)| member(p, d)).collect();
    let plan = Plan::new("p", Timestamp(5), metas).unwrap();
    let mut plain = Vec::new();
    let w = plan
        .write(&mut plain, |i, _| Ok(io::Cursor::new(members[i].1.clone())))
        .unwrap();
    let by_path = |m: &ManifestMember| {
        let i: usize = m.meta.path[6..].parse().unwrap();
        Ok(io::Cursor::new(members[i].1.clone()))
    };
    for ahead in [
        ReadAhead::default(),
        ReadAhead {
            threads: 3,
            window: 1000,
            whole_max: 10_000,
        },
        ReadAhead {
            threads: 1,
            window: 0,
            whole_max: 0,
        },
    ] {
        let mut out = Vec::new();
        let w2 = plan.write_ahead(&mut out, ahead, by_path).unwrap();
        assert_eq!((w2.size, w2.adler32), (w.size, w.adler32), "{ahead:?}");
        assert!(out == plain, "{ahead:?}");
    }
}

/// A bad member read ahead is reported with its index, and the readers stop.
#[test]
fn read_ahead_reports_the_bad_member() {
    let members: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; 3000]).collect();
    let metas = members
        .iter()
        .enumerate()
        .map(|(i, d)| member(&format!("/m{i}"), d))
        .collect();
    let plan = Plan::new("p", Timestamp(5), metas).unwrap();
    let e = plan
        .write_ahead(&mut Vec::new(), ReadAhead::default(), |m| {
            let i: usize = m.meta.path[2..].parse().unwrap();
            let mut d = members[i].clone();
            if i == 17 {
                d[5] ^= 0xff;
            }
            Ok(io::Cursor::new(d))
        })
        .unwrap_err();
    assert_eq!(e.member(), Some(17), "{e}");
    let e = plan
        .write_ahead(&mut Vec::new(), ReadAhead::default(), |m| {
            if m.meta.path == "/m3" {
                return Err(io::Error::other("gone"));
            }
            let i: usize = m.meta.path[2..].parse().unwrap();
            Ok(io::Cursor::new(members[i].clone()))
        })
        .unwrap_err();
    assert!(matches!(e, PackError::Io(_)), "{e}");
}
