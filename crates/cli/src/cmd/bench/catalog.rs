//! `bale bench catalog`: the catalog at the scale of an experiment's
//! archive. Ten million archived files are loaded in bulk straight into the
//! catalog (`Catalog::import_nodes` and the tape commit of their packages:
//! writing them through HTTP would take hours and measure ingest, not the
//! catalog), then the real server is started on it and measured over HTTP:
//! stat latency of random files (p50, p99, max), a 100,000-entry directory
//! listed by a streamed PROPFIND and by `bale ls`'s paged listing, and the
//! server's resident memory. The floor is the same lookups made in process
//! on the catalog, with no HTTP and no permission checks, and a request
//! that authenticates and reads nothing. The catalog is warm, as on a
//! server that has run a while: its files (SQLite) or relations
//! (PostgreSQL, pg_prewarm) are read into the page cache first, and 2,000
//! stats of other files go before the timed ones.

use super::common::{in_scratch, spawn_server};
use crate::client::check;
use anyhow::{bail, Context, Result};
use bale_core::catalog::{
    self, Family, ImportNode, ImportParent, NewMember, NewPackage, NewVolume, NodeId, NodeKind, Tags, TapeStats,
    VolumeState, VolumeWrite,
};
use bale_util::{Adler32, FileId, NsPath, Timestamp};
use clap::Args;
use futures::StreamExt;
use rand::Rng;
use reqwest::Method;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct CatalogArgs {
    /// Scratch directory (removed afterwards unless --keep).
    #[arg(long, default_value = "./bale-bench-catalog")]
    dir: PathBuf,
    /// Files in the catalog.
    #[arg(long, default_value_t = 10_000_000)]
    files: usize,
    /// Entries of the one big directory (listed by the bench).
    #[arg(long, default_value_t = 100_000)]
    big_dir: usize,
    /// Files per directory elsewhere.
    #[arg(long, default_value_t = 1_000)]
    per_dir: usize,
    /// Members per package (packages are spread over volumes of 1,000).
    #[arg(long, default_value_t = 1_000)]
    members: usize,
    /// Timed stat requests of random files.
    #[arg(long, default_value_t = 20_000)]
    stats: usize,
    /// Timed listings of the big directory, each way; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Catalog: sqlite or a postgres:// URL (of an empty database).
    #[arg(long, default_value = "sqlite")]
    catalog: String,
    /// Keep the scratch directory (and the catalog) for --reuse.
    #[arg(long)]
    keep: bool,
    /// Measure the catalog a run with --keep loaded into --dir (and
    /// --catalog) again, without loading it; --files and the layout must be
    /// the same.
    #[arg(long)]
    reuse: bool,
}

pub async fn run(a: &CatalogArgs) -> Result<ExitCode> {
    if a.files <= a.big_dir || a.big_dir == 0 || a.per_dir == 0 || a.members == 0 || a.stats == 0 || a.rounds == 0 {
        bail!("--files must exceed --big-dir, and every count must be positive");
    }
    if a.reuse {
        if !a.dir.join("data").is_dir() {
            bail!("--reuse: {} holds no data directory of an earlier run", a.dir.display());
        }
        return bench(a).await;
    }
    in_scratch(&a.dir, a.keep, bench(a)).await
}

/// File `i`'s name.
fn name_of(a: &CatalogArgs, i: usize) -> String {
    match i < a.big_dir {
        true => format!("f{i:07}.dat"),
        false => format!("run-{:08}.root", i - a.big_dir),
    }
}

/// Where file `i` lives: the big directory first, then `per_dir` a directory.
fn path_of(a: &CatalogArgs, i: usize) -> String {
    match i < a.big_dir {
        true => format!("/scale/big/{}", name_of(a, i)),
        false => format!("/scale/d{:05}/{}", (i - a.big_dir) / a.per_dir, name_of(a, i)),
    }
}

fn dirs_of(a: &CatalogArgs) -> usize {
    (a.files - a.big_dir).div_ceil(a.per_dir)
}

/// A file's size: 1 kB to 100 MB, the same for the same index.
fn size_of(i: usize) -> u64 {
    let x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    1_000 + x % 100_000_000
}

async fn load(a: &CatalogArgs, spec: &str) -> Result<()> {
    let c = catalog::open(spec).await?;
    if c.lookup(&NsPath::parse("/scale")?).await?.is_some() {
        bail!("the catalog already holds /scale: give an empty database");
    }
    let t0 = Timestamp::now();
    let tags = Tags {
        storage_group: Some("bench".into()),
        file_family: Some("scale".into()),
        file_family_width: Some(1),
        wrapper: Some("tar".into()),
        library: Some("vault".into()),
        write_once: None,
    };
    let entry = |parent, name: String, file: Option<(FileId, u64)>| ImportNode {
        parent,
        name,
        kind: if file.is_some() { NodeKind::File } else { NodeKind::Dir },
        owner: "mu2epro".into(),
        group: "mu2e".into(),
        mode: if file.is_some() { 0o644 } else { 0o755 },
        size: file.map_or(0, |f| f.1),
        ctime: t0,
        mtime: t0,
        atime: t0,
        file_id: file.map(|f| f.0),
        adler32: file.map(|f| Adler32(f.1 as u32)),
        tags: tags.clone(),
        cached: file.is_none(),
    };
    // The directories, in one import.
    let mut dirs = vec![
        entry(ImportParent::Node(catalog::ROOT_ID), "scale".into(), None),
        entry(ImportParent::Entry(0), "big".into(), None),
    ];
    for d in 0..dirs_of(a) {
        dirs.push(entry(ImportParent::Entry(0), format!("d{d:05}"), None));
    }
    let dir_ids = c.import_nodes(&dirs).await?;
    let dir_of = |i: usize| -> NodeId {
        match i < a.big_dir {
            true => dir_ids[1],
            false => dir_ids[2 + (i - a.big_dir) / a.per_dir],
        }
    };
    // The volumes: 1,000 packages each, in a library no drive serves.
    let per_volume = 1_000 * a.members;
    let volumes = a.files.div_ceil(per_volume);
    let labels: Vec<String> = (0..volumes).map(|v| format!("SC{v:04}")).collect();
    c.add_volumes(
        &labels
            .iter()
            .map(|l| NewVolume {
                label: l.clone(),
                library: "vault".into(),
                media: "LTO-9".into(),
                capacity: 18_000_000_000_000,
                mount_limit: 20_000,
                created: t0,
            })
            .collect::<Vec<_>>(),
    )
    .await?;
    // The files, 100,000 an import, and their packages, 100 a tape commit.
    let chunk = 100_000 / a.members.min(100_000) * a.members.min(100_000);
    let mut volume_end = vec![(0u32, 0u64); volumes];
    let started = Instant::now();
    let mut i = 0;
    while i < a.files {
        let n = chunk.min(a.files - i);
        let files: Vec<(usize, FileId, u64)> = (i..i + n).map(|k| (k, FileId::generate(), size_of(k))).collect();
        let batch: Vec<ImportNode> = files
            .iter()
            .map(|&(k, id, size)| entry(ImportParent::Node(dir_of(k)), name_of(a, k), Some((id, size))))
            .collect();
        c.import_nodes(&batch).await?;
        let mut by_volume: Vec<Vec<NewPackage>> = vec![Vec::new(); volumes];
        for members in files.chunks(a.members) {
            let v = members[0].0 / per_volume;
            let (seq, position) = volume_end[v];
            let mut offset = 512;
            let members: Vec<NewMember> = members
                .iter()
                .map(|&(_, file_id, size)| {
                    let m = NewMember {
                        file_id,
                        offset,
                        size,
                        adler32: Adler32(size as u32),
                    };
                    offset += size.div_ceil(512) * 512 + 512;
                    m
                })
                .collect();
            let size = offset + 1024;
            volume_end[v] = (seq + 1, position + size);
            by_volume[v].push(NewPackage {
                id: format!("{}-{seq:05}", labels[v]),
                seq,
                position,
                size,
                adler32: Adler32(seq),
                created: t0,
                members,
                job: None,
            });
        }
        for (v, packages) in by_volume.into_iter().enumerate() {
            if packages.is_empty() {
                continue;
            }
            let vw = VolumeWrite {
                label: labels[v].clone(),
                family: Family {
                    storage_group: "bench".into(),
                    file_family: "scale".into(),
                    wrapper: "tar".into(),
                },
                state: VolumeState::Full,
                stats: TapeStats::default(),
            };
            c.commit_tape_files(&vw, &packages).await?;
        }
        i += n;
        if i % 1_000_000 < chunk || i == a.files {
            eprintln!(
                "  {i} files loaded ({:.0} files/s)",
                i as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

/// Reads the catalog into the kernel's page cache.
async fn warm(spec: &str) -> Result<()> {
    if let Some(path) = spec.strip_prefix("sqlite:") {
        for suffix in ["", "-wal"] {
            let f = format!("{path}{suffix}");
            if let Ok(mut file) = std::fs::File::open(&f) {
                std::io::copy(&mut file, &mut std::io::sink())?;
            }
        }
        return Ok(());
    }
    let (client, conn) = tokio_postgres::connect(spec, tokio_postgres::NoTls).await?;
    let h = tokio::spawn(conn);
    // Statistics first, as after any bulk load (autovacuum would take its
    // time): without them the planner guessed joins for an empty catalog.
    client.batch_execute("ANALYZE").await?;
    let prewarm = async {
        client
            .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
            .await?;
        let rels = client
            .query(
                "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace \
                 WHERE s.nspname = current_schema() AND c.relkind IN ('r', 'i')",
                &[],
            )
            .await?;
        for r in &rels {
            let rel: String = r.get(0);
            client
                .query("SELECT pg_prewarm($1::text::regclass, 'read')", &[&rel])
                .await?;
        }
        Ok::<(), tokio_postgres::Error>(())
    };
    if let Err(e) = prewarm.await {
        eprintln!("  (pg_prewarm not used: {e}; the catalog warms by the untimed stats only)");
    }
    drop(client);
    let _ = h.await;
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(mut v: Vec<f64>) -> String {
    v.sort_by(|a, b| a.total_cmp(b));
    format!(
        "p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        percentile(&v, 0.5) * 1e3,
        percentile(&v, 0.99) * 1e3,
        v[v.len() - 1] * 1e3
    )
}

/// Resident memory of process `pid`: now and at its peak (MB).
fn rss_mb(pid: u32) -> Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<f64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("no {name} in /proc/{pid}/status"))?;
        let kb: f64 = line.split_whitespace().nth(1).context("value")?.parse()?;
        Ok(kb / 1024.0)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

async fn bench(a: &CatalogArgs) -> Result<ExitCode> {
    let data = a.dir.join("data");
    std::fs::create_dir_all(&data)?;
    let spec = match a.catalog.as_str() {
        "sqlite" => format!("sqlite:{}", data.join("catalog.sqlite").display()),
        url => url.to_string(),
    };
    let load_s = if a.reuse {
        let c = catalog::open(&spec).await?;
        if c.lookup(&NsPath::parse(&path_of(a, a.files - 1))?).await?.is_none() {
            bail!("--reuse: the catalog does not hold the files of an earlier run of this layout");
        }
        None
    } else {
        eprintln!("loading {} files into the {} catalog", a.files, a.catalog);
        let t = Instant::now();
        load(a, &spec).await?;
        eprintln!("  loaded in {:.0} s", t.elapsed().as_secs_f64());
        Some(t.elapsed().as_secs_f64())
    };

    let t = Instant::now();
    let server = spawn_server(&data, "", &a.catalog)?;
    let start_s = t.elapsed().as_secs_f64();
    let pid = server.pid();
    let c = server.client.clone();
    let mut rss_at = vec![("started", rss_mb(pid)?.0)];
    let mut rng = rand::rng();
    let picks: Vec<usize> = (0..a.stats).map(|_| rng.random_range(0..a.files)).collect();
    warm(&spec).await?;
    for _ in 0..2_000 {
        let p = path_of(a, rng.random_range(0..a.files));
        let _: serde_json::Value = c.get_json("stat", &[("path", &p)]).await?;
    }

    // One client, each pick measured four ways in turn, so that whatever
    // else the machine does falls on all four alike: the floor (the
    // lookup in process, on the catalog alone), the HTTP floor (a request
    // that authenticates and reads no catalog), the JSON stat (with the
    // file's archive status) and a WebDAV stat (PROPFIND Depth 0).
    let cat = catalog::open(&spec).await?;
    let propfind = Method::from_bytes(b"PROPFIND")?;
    let mut floor = Vec::with_capacity(picks.len());
    let mut http_s = Vec::with_capacity(picks.len());
    let mut stat_s = Vec::with_capacity(picks.len());
    let mut dav_s = Vec::with_capacity(picks.len());
    for &k in &picks {
        let p = path_of(a, k);
        let np = NsPath::parse(&p)?;
        let t = Instant::now();
        cat.lookup(&np).await?.context("a loaded file is missing")?;
        floor.push(t.elapsed().as_secs_f64());

        let t = Instant::now();
        let _: serde_json::Value = c.get_json("whoami", &[]).await?;
        http_s.push(t.elapsed().as_secs_f64());

        let t = Instant::now();
        let v: serde_json::Value = c.get_json("stat", &[("path", &p)]).await?;
        stat_s.push(t.elapsed().as_secs_f64());
        if v["archive"]["state"] != "archived" {
            bail!("{p}: not archived: {v}");
        }

        let t = Instant::now();
        let r = c
            .request(propfind.clone(), &c.url(&p))
            .header("Depth", "0")
            .send()
            .await;
        check(r, &p).await?.bytes().await?;
        dav_s.push(t.elapsed().as_secs_f64());
    }
    drop(cat);
    // Eight clients at once.
    let parallel = 8;
    let t = Instant::now();
    let many: Vec<f64> = futures::stream::iter(picks.iter().map(|&k| {
        let (c, p) = (c.clone(), path_of(a, k));
        async move {
            let t = Instant::now();
            let _: serde_json::Value = c.get_json("stat", &[("path", &p)]).await?;
            Ok::<f64, anyhow::Error>(t.elapsed().as_secs_f64())
        }
    }))
    .buffer_unordered(parallel)
    .collect::<Vec<_>>()
    .await
    .into_iter()
    .collect::<Result<_>>()?;
    let many_rate = many.len() as f64 / t.elapsed().as_secs_f64();
    rss_at.push(("after the stats", rss_mb(pid)?.0));

    // The big directory, streamed by PROPFIND Depth 1 and paged as `bale ls` does.
    let mut stream_s = Vec::new();
    let mut first_s = Vec::new();
    let mut paged_s = Vec::new();
    for _ in 0..a.rounds {
        let t = Instant::now();
        let r = c
            .request(propfind.clone(), &c.url("/scale/big"))
            .header("Depth", "1")
            .send()
            .await;
        let mut body = check(r, "PROPFIND /scale/big").await?.bytes_stream();
        let (mut entries, mut first) = (0usize, None);
        let mut tail = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            first.get_or_insert_with(|| t.elapsed().as_secs_f64());
            // Count responses across chunk boundaries: what is kept of a
            // chunk is one byte short of a whole tag, so no tag counts twice.
            const TAG: &[u8] = b"<D:response>";
            tail.extend_from_slice(&chunk);
            entries += tail.windows(TAG.len()).filter(|w| *w == TAG).count();
            tail.drain(..tail.len().saturating_sub(TAG.len() - 1));
        }
        stream_s.push(t.elapsed().as_secs_f64());
        first_s.push(first.unwrap_or_default());
        if entries != a.big_dir + 1 {
            bail!("PROPFIND listed {entries} responses, not {}", a.big_dir + 1);
        }
        let t = Instant::now();
        let mut n = 0;
        c.list_all("/scale/big", |_| {
            n += 1;
            Ok(())
        })
        .await?;
        paged_s.push(t.elapsed().as_secs_f64());
        if n != a.big_dir {
            bail!("the paged listing gave {n} entries, not {}", a.big_dir);
        }
    }
    let (rss, peak) = rss_mb(pid)?;
    rss_at.push(("after the listings", rss));
    server.stop()?;

    let med = |v: Vec<f64>| super::common::median(v);
    println!(
        "catalog {}: {} files ({} directories of {}, one of {}), {} packages of {} members",
        a.catalog,
        a.files,
        dirs_of(a),
        a.per_dir,
        a.big_dir,
        a.files.div_ceil(a.members),
        a.members
    );
    match load_s {
        Some(s) => println!("  bulk load:                         {s:.0} s"),
        None => println!("  bulk load:                         (an earlier run's, reused)"),
    }
    println!("  server start on it:                {start_s:.2} s");
    println!("  lookup in process (floor), {} random: {}", a.stats, summary(floor));
    println!("  GET /api/v1/whoami (HTTP floor):   {}", summary(http_s));
    println!("  stat (GET /api/v1/stat), 1 client: {}", summary(stat_s));
    println!("  stat (PROPFIND Depth 0), 1 client: {}", summary(dav_s));
    println!(
        "  stat, {parallel} clients:                  {} ({many_rate:.0} stats/s)",
        summary(many)
    );
    println!(
        "  PROPFIND Depth 1 of {} entries, streamed: {:.3} s (first byte {:.3} s; median of {})",
        a.big_dir,
        med(stream_s),
        med(first_s),
        a.rounds
    );
    println!("  the same paged as bale ls (5,000 a page): {:.3} s", med(paged_s));
    let phases: Vec<String> = rss_at.iter().map(|(when, mb)| format!("{mb:.0} MB {when}")).collect();
    println!("  server RSS: {}; peak {peak:.0} MB", phases.join(", "));
    Ok(ExitCode::SUCCESS)
}
