//! Real-time pacing, as a wrapper around an emulated library's backend: with
//! a time scale, tape files stream no faster than the modelled drive (the
//! timing model's seconds times the scale), so that benchmarks and demos
//! see tape-like durations while the scheduler knows nothing of it.

use crate::backend::{Label, Mounted, VolumeBackend};
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A backend whose transfers take at least `bytes / rate` real seconds.
pub(crate) struct Paced {
    pub inner: Arc<dyn VolumeBackend>,
    /// Bytes per real second.
    pub rate: f64,
}

impl VolumeBackend for Paced {
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
        Ok(Box::new(PacedVolume {
            inner: self.inner.load(label, capacity)?,
            rate: self.rate,
        }))
    }
    fn end_of_data(&self, label: &str) -> io::Result<u32> {
        self.inner.end_of_data(label)
    }
    fn truncate(&self, label: &str, seq: u32) -> io::Result<u32> {
        self.inner.truncate(label, seq)
    }
}

struct PacedVolume {
    inner: Box<dyn Mounted>,
    rate: f64,
}

/// Sleeps so that `done` bytes since `start` took at least `done / rate`.
fn keep_pace(start: Instant, done: u64, rate: f64) {
    let due = Duration::from_secs_f64(done as f64 / rate);
    if let Some(wait) = due.checked_sub(start.elapsed()) {
        std::thread::sleep(wait);
    }
}

struct PacedWriter<'a> {
    inner: &'a mut dyn Write,
    rate: f64,
    start: Instant,
    done: u64,
}

impl Write for PacedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.done += n as u64;
        keep_pace(self.start, self.done, self.rate);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct PacedReader<'a> {
    inner: &'a mut dyn Read,
    rate: f64,
    start: Instant,
    done: u64,
}

impl Read for PacedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        keep_pace(self.start, self.done, self.rate);
        Ok(n)
    }
}

impl Mounted for PacedVolume {
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
        let rate = self.rate;
        self.inner.write_file(&mut |w| {
            fill(&mut PacedWriter {
                inner: w,
                rate,
                start: Instant::now(),
                done: 0,
            })
        })
    }
    fn read_file(&mut self, sink: &mut dyn FnMut(&mut dyn Read) -> io::Result<()>) -> io::Result<u64> {
        let rate = self.rate;
        self.inner.read_file(&mut |r| {
            sink(&mut PacedReader {
                inner: r,
                rate,
                start: Instant::now(),
                done: 0,
            })
        })
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
    fn unload(self: Box<Self>) -> io::Result<()> {
        self.inner.unload()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::FsBackend;
    use bale_util::Timestamp;

    #[test]
    fn a_paced_volume_streams_no_faster_than_its_rate() {
        let dir = tempfile::tempdir().unwrap();
        let fs: Arc<dyn VolumeBackend> = Arc::new(FsBackend::emulated(dir.path()).unwrap());
        let paced = Paced {
            inner: fs,
            rate: 10.0 * 1024.0 * 1024.0,
        };
        paced
            .format(&Label {
                label: "P1".into(),
                media: "LTO-9".into(),
                owner: "test".into(),
                created: Timestamp::now(),
            })
            .unwrap();
        let mut v = paced.load("P1", 1 << 30).unwrap();
        let t0 = Instant::now();
        let data = vec![7u8; 2 << 20];
        v.write_file(&mut |w| w.write_all(&data)).unwrap();
        // 2 MiB at 10 MiB/s: at least 0.2 s.
        assert!(t0.elapsed() >= Duration::from_millis(190), "{:?}", t0.elapsed());
        v.locate(0).unwrap();
        let t0 = Instant::now();
        let mut back = Vec::new();
        v.read_file(&mut |r| r.read_to_end(&mut back).map(|_| ())).unwrap();
        assert_eq!(back, data);
        assert!(t0.elapsed() >= Duration::from_millis(190), "{:?}", t0.elapsed());
    }
}
