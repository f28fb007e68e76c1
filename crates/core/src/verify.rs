//! Verifying copies, and rewriting bad tape copies from good ones.
//!
//! `bale verify` re-reads a volume's packages (in tape order, one mount),
//! one package, or the cache, and checks every byte against the catalog:
//! a tape file's size and adler32 and each member's adler32 (the package
//! reader checks them as it streams, nothing is written), a cached file's
//! adler32 (the cache half of `bale fsck --checksums`, with repair). Reads
//! can be held to a byte rate. A tape copy whose data does not check out on
//! every attempt is marked bad in the catalog (`mark_package_bad`) with an
//! error alarm; a read through the stager that finds the same marks it
//! too. A copy that could not be read for another reason (a drive, a
//! volume out of service) is reported and not judged.
//!
//! A bad copy is rewritten by the repair worker ([`RepairWorker`]): every
//! live member of a bad package that has no good copy left in that
//! package's library gets a new copy there, written from the cache by an
//! archive job of the library's family; a member that is not cached is
//! first staged from a good copy elsewhere (pinned meanwhile). Its state is
//! the catalog's (bad packages, jobs), so a crash anywhere in it is picked
//! up by the next round. A file stays readable throughout: reads skip bad
//! copies and fall back from one good copy to the next. A file whose every
//! copy is bad and that is not cached cannot be rewritten: an error alarm.
//!
//! The scrub ([`Scrubber`], off unless `verify.scrub_period_s` is set)
//! verifies every good package once per period, the never verified and
//! longest unverified first, one at a time at `verify.scrub_rate`.

use crate::auth::Principal;
use crate::fsck::FsckReport;
use crate::repair::{verify_packages, TapeCheck};
use crate::service::Service;
use crate::{Error, Result};
use bale_util::Timestamp;
use serde::Serialize;
use std::time::Instant;

/// What `bale verify` reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyTarget {
    /// Every package on a volume, in tape order.
    Volume(String),
    /// One package.
    Package(String),
    /// Every cached file's data.
    Cache,
}

/// What a verify found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyReport {
    /// The packages read (`--volume`, `--package`).
    #[serde(flatten)]
    pub tape: TapeCheck,
    /// The cache's check (`--cache`).
    pub cache: Option<FsckReport>,
    pub seconds: f64,
}

impl VerifyReport {
    /// Problems found: bad copies, unreadable copies, cache problems.
    pub fn problems(&self) -> usize {
        self.tape.bad.len() + self.tape.unreadable.len() + self.cache.as_ref().map_or(0, |c| c.problems.len())
    }
}

impl Service {
    /// `bale verify`: re-reads and re-checksums copies (administrators).
    /// `rate` (bytes a second) holds the reads back; `None`: the
    /// configured scrub rate.
    pub async fn verify(&self, who: &Principal, target: VerifyTarget, rate: Option<u64>) -> Result<VerifyReport> {
        crate::authz::allow(who, crate::authz::Action::Verify)?;
        let what = format!("{target:?}");
        let run = self.verify_now(target, rate);
        self.audited(who, crate::authz::Action::Verify, &what, run, |r| {
            format!("{} problem(s)", r.problems())
        })
        .await
    }

    async fn verify_now(&self, target: VerifyTarget, rate: Option<u64>) -> Result<VerifyReport> {
        let rate = rate.or(Some(self.config.verify.scrub_rate.as_u64())).filter(|r| *r > 0);
        let t0 = Instant::now();
        let pkgs = match &target {
            VerifyTarget::Cache => return self.verify_cache(rate).await,
            VerifyTarget::Volume(label) => {
                if self.catalog.volume(label).await?.is_none() {
                    return Err(Error::NotFound(format!("no volume {label:?}; bale volumes lists them")));
                }
                self.catalog.packages(Some(label)).await?
            }
            VerifyTarget::Package(id) => match self.catalog.package(id).await? {
                Some((p, _)) => vec![p],
                None => return Err(Error::NotFound(format!("no package {id:?}; bale packages lists them"))),
            },
        };
        let tape = verify_packages(&self.catalog, &self.tape, pkgs, rate, &self.stager.repair_wake).await?;
        Ok(VerifyReport {
            tape,
            cache: None,
            seconds: t0.elapsed().as_secs_f64(),
        })
    }

    /// The cache half: every cached file's data checksummed and repaired
    /// as `bale fsck --repair --checksums` does; a damaged copy of a file
    /// on tape is dropped (a read stages it back) with a warning alarm.
    async fn verify_cache(&self, rate: Option<u64>) -> Result<VerifyReport> {
        let t0 = Instant::now();
        let settle = self.config.cache.fsck_settle_s as i64 * 1_000_000_000;
        let fsck = self
            .check_cache_at_rate(true, true, Timestamp::now().0 - settle, rate)
            .await?;
        for p in fsck.problems.iter().filter(|p| p.kind == "bad checksum" && p.repaired) {
            let msg = format!(
                "the cache copy of {} was damaged (adler32 mismatch): dropped, a read stages the file from tape",
                p.path.as_deref().or(p.file_id.as_deref()).unwrap_or("a file")
            );
            self.catalog.raise_alarm("warning", "cache", &msg).await?;
        }
        Ok(VerifyReport {
            cache: Some(fsck),
            seconds: t0.elapsed().as_secs_f64(),
            ..VerifyReport::default()
        })
    }
}
