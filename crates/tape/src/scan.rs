//! Reading a library's volumes without a catalog: each volume's label and
//! every tape file on it, its size and adler32, and the package manifest
//! it begins with (each member checked against the manifest's adler32 as
//! it streams by). What `bale recover` rebuilds a catalog from.
//!
//! This reads the media directly through the library's backend, with no
//! drive, robot or timing model: it is an offline recovery tool, run while
//! no server uses the library.

use crate::backend::{FsBackend, Label, VolumeBackend};
use crate::config::{BackendKind, LibraryConfig, TapeConfig};
use crate::read::Hashing;
use bale_pack::Manifest;
use bale_util::checksum::Adler32Hasher;
use bale_util::Adler32;
use std::io;
use std::path::Path;

/// A volume as found on the media.
#[derive(Debug)]
pub struct ScannedVolume {
    pub library: String,
    pub label: Label,
    /// The capacity new volumes of the library get (the label does not
    /// record it).
    pub capacity: u64,
    pub mount_limit: u64,
    pub files: Vec<ScannedFile>,
}

/// One tape file as found on the media.
#[derive(Debug)]
pub struct ScannedFile {
    pub seq: u32,
    /// Byte position on the volume (the sizes of the tape files before it).
    pub position: u64,
    pub size: u64,
    pub adler32: Adler32,
    /// The manifest, or why the tape file does not read as a package
    /// (its manifest or a member does not check out).
    pub manifest: Result<Manifest, String>,
}

/// The backend of a configured library, for reading only.
fn backend(lib: &LibraryConfig, data_dir: &Path) -> io::Result<FsBackend> {
    let path = data_dir.join(&lib.path);
    match lib.backend {
        BackendKind::Emulated if !path.is_dir() => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("library {}: {} does not exist", lib.name, path.display()),
        )),
        BackendKind::Emulated => FsBackend::emulated(&path),
        BackendKind::Directory => FsBackend::directory(&path),
    }
}

/// The labels of every volume in every configured library, with their
/// library's name.
pub fn labels(cfg: &TapeConfig, data_dir: &Path) -> io::Result<Vec<(String, Label)>> {
    let mut out = Vec::new();
    for lib in &cfg.libraries {
        for l in backend(lib, data_dir)?.labels()? {
            out.push((lib.name.clone(), l));
        }
    }
    Ok(out)
}

/// Reads volume `label` of library `library` through: every tape file in
/// order.
pub fn scan_volume(cfg: &TapeConfig, data_dir: &Path, library: &str, label: &Label) -> io::Result<ScannedVolume> {
    let lib = cfg
        .libraries
        .iter()
        .find(|l| l.name == library)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no library {library:?} is configured")))?;
    let profile = cfg.profiles().get(&lib.media).cloned().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("library {library}: unknown media {:?}", lib.media),
        )
    })?;
    // As the tape system sizes the library's new volumes.
    let capacity = lib
        .volume_capacity
        .map(|c| c.0)
        .unwrap_or(profile.scaled(lib.scale).capacity.0);
    let b = backend(lib, data_dir)?;
    let eod = b.end_of_data(&label.label)?;
    // Loaded with no limit: a read never writes.
    let mut vol = b.load(&label.label, u64::MAX)?;
    let mut files = Vec::with_capacity(eod as usize);
    let mut position = 0;
    for seq in 0..eod {
        vol.locate(seq)?;
        let mut hash = Adler32Hasher::new();
        let mut manifest = Err("not read".to_string());
        let size = vol.read_file(&mut |src| {
            let mut src = Hashing {
                inner: src,
                hash: &mut hash,
            };
            manifest = bale_pack::read(&mut src, |_, data| io::copy(data, &mut io::sink()).map(|_| ()))
                .map_err(|e| e.to_string());
            // The rest (tar padding, or what a bad tape file holds).
            io::copy(&mut src, &mut io::sink()).map(|_| ())
        })?;
        files.push(ScannedFile {
            seq,
            position,
            size,
            adler32: hash.finish(),
            manifest,
        });
        position += size;
    }
    vol.unload()?;
    Ok(ScannedVolume {
        library: library.to_string(),
        label: label.clone(),
        capacity,
        mount_limit: lib.mount_limit,
        files,
    })
}
