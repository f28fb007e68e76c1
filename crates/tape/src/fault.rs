//! Fault injection, as a wrapper around a drive's volume backend (tests and
//! drills): the scheduler and the drives hold no fault logic, they meet the
//! failures as a real drive would report them.

use crate::backend::{Label, Mounted, VolumeBackend};
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

/// A fault to inject. Each fires once.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// The next tape write on this volume fails partway (a medium error).
    WriteError { volume: String },
    /// The next tape file read on this volume fails (a medium error).
    ReadError { volume: String },
    /// This drive fails at its next load, write or read.
    DriveFailure { drive: String },
}

/// The drive itself failed (not the medium): the error a backend returns,
/// inside an [`io::Error`], when the drive must go out of service.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DriveFailed(pub String);

/// Whether `e` reports a failed drive rather than a failed medium.
pub fn is_drive_failure(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|i| i.is::<DriveFailed>())
}

/// The armed faults, shared by every drive of the system.
#[derive(Clone, Default)]
pub(crate) struct Faults(Arc<Mutex<Vec<Fault>>>);

impl Faults {
    pub fn arm(&self, fault: Fault) {
        self.0.lock().unwrap().push(fault);
    }

    /// Takes (disarms) the first fault matching `pred`.
    fn take(&self, pred: impl Fn(&Fault) -> bool) -> bool {
        let mut f = self.0.lock().unwrap();
        match f.iter().position(pred) {
            Some(i) => {
                f.remove(i);
                true
            }
            None => false,
        }
    }

    fn drive_fails(&self, drive: &str, when: &str) -> io::Result<()> {
        if self.take(|f| matches!(f, Fault::DriveFailure { drive: d } if d == drive)) {
            return Err(io::Error::other(DriveFailed(format!("the drive failed while {when}"))));
        }
        Ok(())
    }
}

/// A drive's view of its library's backend, with the faults armed for it.
pub(crate) struct FaultyBackend {
    pub inner: Arc<dyn VolumeBackend>,
    pub drive: String,
    pub faults: Faults,
}

impl VolumeBackend for FaultyBackend {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn labels(&self) -> io::Result<Vec<crate::backend::Label>> {
        self.inner.labels()
    }
    fn real_timing(&self) -> bool {
        self.inner.real_timing()
    }
    fn format(&self, label: &Label) -> io::Result<()> {
        self.inner.format(label)
    }
    fn load(&self, label: &str, capacity: u64) -> io::Result<Box<dyn Mounted>> {
        self.faults.drive_fails(&self.drive, "loading")?;
        Ok(Box::new(FaultyVolume {
            inner: self.inner.load(label, capacity)?,
            drive: self.drive.clone(),
            faults: self.faults.clone(),
        }))
    }
    fn end_of_data(&self, label: &str) -> io::Result<u32> {
        self.inner.end_of_data(label)
    }
    fn truncate(&self, label: &str, seq: u32) -> io::Result<u32> {
        self.inner.truncate(label, seq)
    }
}

struct FaultyVolume {
    inner: Box<dyn Mounted>,
    drive: String,
    faults: Faults,
}

/// Bytes an injected write error lets through before it fires.
const WRITE_ERROR_AFTER: u64 = 32 * 1024;

/// Fails once `left` bytes have passed; `fired` says whether it did.
struct FailAfter<'a> {
    inner: &'a mut dyn Write,
    left: u64,
    fired: bool,
}

impl Write for FailAfter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.left == 0 {
            self.fired = true;
            return Err(io::Error::other("injected write error (medium error)"));
        }
        let n = (buf.len() as u64).min(self.left) as usize;
        let n = self.inner.write(&buf[..n])?;
        self.left -= n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Mounted for FaultyVolume {
    fn label(&self) -> &Label {
        self.inner.label()
    }
    fn position(&self) -> u32 {
        self.inner.position()
    }
    fn locate(&mut self, seq: u32) -> io::Result<()> {
        self.inner.locate(seq)
    }
    fn write_file(&mut self, fill: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>) -> io::Result<u64> {
        self.faults.drive_fails(&self.drive, "writing")?;
        let label = self.inner.label().label.clone();
        if !self
            .faults
            .take(|f| matches!(f, Fault::WriteError { volume } if *volume == label))
        {
            return self.inner.write_file(fill);
        }
        self.inner.write_file(&mut |w| {
            let mut w = FailAfter {
                inner: w,
                left: WRITE_ERROR_AFTER,
                fired: false,
            };
            match fill(&mut w) {
                // A tape file shorter than the limit fails at its end.
                Ok(()) if !w.fired => Err(io::Error::other("injected write error (medium error)")),
                r => r,
            }
        })
    }
    fn read_file(&mut self, sink: &mut dyn FnMut(&mut dyn Read) -> io::Result<()>) -> io::Result<u64> {
        self.faults.drive_fails(&self.drive, "reading")?;
        let label = self.inner.label().label.clone();
        if self
            .faults
            .take(|f| matches!(f, Fault::ReadError { volume } if *volume == label))
        {
            return Err(io::Error::other("injected read error (medium error)"));
        }
        self.inner.read_file(sink)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
    fn unload(self: Box<Self>) -> io::Result<()> {
        self.inner.unload()
    }
}
