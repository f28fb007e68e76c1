//! The read path: tape files read into local files, a volume's batch in
//! tape order on one mount, every tape file's adler32 checked against the
//! catalog; failed reads retried up to `read_attempts`, a failed drive's
//! reads handed to another drive. Staging builds on this.

use crate::drive::{DriveTask, OpError};
use crate::media::Charge;
use crate::schedule::TapeRead;
use crate::state::{PendingRead, ReadDone};
use crate::{Result, TapeError};
use bale_catalog::Package;
use std::io;
use std::time::Instant;

impl DriveTask {
    /// Serves a volume's batch of reads (already in tape order).
    pub(crate) async fn read(&mut self, label: &str, reqs: Vec<PendingRead>) {
        let reqs: Vec<PendingRead> = reqs.into_iter().filter(|r| !r.abandoned()).collect();
        if reqs.is_empty() {
            return;
        }
        let packages = match self.sys.catalog.packages(Some(label)).await {
            Ok(p) => p,
            Err(e) => {
                for r in reqs {
                    let _ = r.reply.send(Err(TapeError::Catalog(e.clone())));
                }
                return;
            }
        };
        if let Err(e) = self.mount(label).await {
            let msg = e.message();
            self.op_failed(label, &e).await;
            self.retry_reads(reqs, &msg);
            return;
        }
        let mut rest = reqs.into_iter();
        while let Some(r) = rest.next() {
            if r.abandoned() {
                self.reads_abandoned += 1;
                continue;
            }
            let Some(pkg) = packages.iter().find(|p| p.seq == r.req.seq).cloned() else {
                let _ = r.reply.send(Err(TapeError::NotFound(format!(
                    "volume {label} has no tape file {} in the catalog",
                    r.req.seq
                ))));
                continue;
            };
            match self.read_one(label, &pkg, &r).await {
                // Stopped on purpose (its stage was cancelled): no alarm, no retry.
                Err(_) if r.abandoned() => {
                    self.reads_abandoned += 1;
                    tracing::info!("volume {label}: read of tape file {} abandoned", pkg.seq);
                }
                Ok(done) => {
                    self.reads_done += 1;
                    let _ = r.reply.send(Ok(done));
                }
                Err(OpError::NoSpace(m)) => {
                    // The cache it reads into is full: not the tape's fault,
                    // no attempt counted; the stager retries later.
                    let _ = r.reply.send(Err(TapeError::NoSpace(m)));
                }
                Err(OpError::Drive(m)) => {
                    let e = OpError::Drive(m.clone());
                    self.op_failed(label, &e).await;
                    let left: Vec<PendingRead> = std::iter::once(r).chain(rest).collect();
                    self.retry_reads(left, &m);
                    return;
                }
                Err(e) => {
                    let msg = e.message();
                    let bad_data = matches!(e, OpError::Data(_));
                    let alarm = format!("volume {label}: reading tape file {} failed: {msg}", pkg.seq);
                    tracing::error!("{alarm}");
                    self.event(label, "error", Some(pkg.seq), 0, alarm.clone());
                    let _ = self
                        .sys
                        .catalog
                        .raise_alarm("error", &format!("volume {label}"), &alarm)
                        .await;
                    self.retry_reads_of(vec![r], &msg, bad_data);
                }
            }
        }
        self.save_stats(Some(label)).await;
    }

    /// Requeues reads that failed; those out of attempts fail.
    fn retry_reads(&self, reqs: Vec<PendingRead>, msg: &str) {
        self.retry_reads_of(reqs, msg, false)
    }

    /// [`Self::retry_reads`]; `bad_data`: the last attempt read the tape
    /// file and its data did not check out, so a read out of attempts
    /// fails with [`TapeError::BadData`] (the copy is bad).
    fn retry_reads_of(&self, reqs: Vec<PendingRead>, msg: &str, bad_data: bool) {
        let mut st = self.lock();
        for mut r in reqs {
            r.attempts += 1;
            if r.attempts >= self.sys.cfg.read_attempts {
                let msg = format!(
                    "reading tape file {} of volume {} failed {} times: {msg}",
                    r.req.seq, r.req.volume, r.attempts
                );
                let _ = r.reply.send(Err(match bad_data {
                    true => TapeError::BadData(msg),
                    false => TapeError::Failed(msg),
                }));
            } else {
                let volume = r.req.volume.clone();
                st.add_read(&volume, r);
            }
        }
        drop(st);
        self.sys.wake();
    }

    async fn read_one(&mut self, label: &str, pkg: &Package, r: &PendingRead) -> Result<ReadDone, OpError> {
        self.locate(label, pkg.seq, pkg.position).await?;
        let mut vol = self.vol.take().expect("mounted");
        let dest_path = &r.req.dest;
        let dest = dest_path.clone();
        let unpack = r.unpack.clone();
        let t0 = Instant::now();
        let (vol, r) = tokio::task::spawn_blocking(move || {
            let mut hash = bale_util::checksum::Adler32Hasher::new();
            let r = vol.read_file(&mut |src| {
                let mut src = Hashing {
                    inner: src,
                    hash: &mut hash,
                };
                match &unpack {
                    // Members straight from the tape into the sink, each
                    // checked; then the rest of the tape file, for its checksum.
                    Some(sink) => {
                        bale_pack::read(&mut src, |m, data| sink.member(m, data)).map_err(|e| match e {
                            bale_pack::PackError::Io(e) => e,
                            e => io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
                        })?;
                        io::copy(&mut src, &mut io::sink()).map(|_| ())
                    }
                    None => {
                        let mut out = std::fs::File::create(&dest)?;
                        io::copy(&mut src, &mut out)?;
                        out.sync_all()
                    }
                }
            });
            (vol, r.map(|n| (n, hash.finish())))
        })
        .await
        .map_err(|e| OpError::Other(e.to_string()))?;
        self.vol = Some(vol);
        let (bytes, sum) = r.map_err(|e| match e.kind() {
            // A member or the package does not check out: the data is bad.
            io::ErrorKind::InvalidData => OpError::Data(format!("package {}: {e}", pkg.id)),
            _ => OpError::from_io("read error", e),
        })?;
        self.head = pkg.position + bytes;
        self.charge(label, Charge::Read, self.lib.profile.transfer_s(bytes), t0.elapsed())
            .await;
        self.count(label, |s| s.bytes_read += bytes);
        metrics::counter!(bale_util::metrics::TAPE_FILES_READ, "library" => self.lib.name.clone()).increment(1);
        self.event(label, "read", Some(pkg.seq), bytes, format!("package {}", pkg.id));
        if bytes != pkg.size || sum != pkg.adler32 {
            if !dest_path.as_os_str().is_empty() {
                let _ = std::fs::remove_file(dest_path);
            }
            return Err(OpError::Data(format!(
                "tape file {} has {bytes} bytes with adler32 {sum}; the catalog says {} bytes with {}",
                pkg.seq, pkg.size, pkg.adler32
            )));
        }
        Ok(ReadDone { bytes, adler32: sum })
    }
}

/// Hashes what is read through it.
pub(crate) struct Hashing<'a, R: ?Sized> {
    pub(crate) inner: &'a mut R,
    pub(crate) hash: &'a mut bale_util::checksum::Adler32Hasher,
}

impl<R: io::Read + ?Sized> io::Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}
