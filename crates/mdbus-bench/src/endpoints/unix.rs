//! Unix domain datagram sockets: one bound socket per subscriber; the
//! publisher connects one socket to each and sends every record to each
//! with blocking sends (a full socket queue, `net.unix.max_dgram_qlen`
//! datagrams, makes the publisher wait: no loss).

use std::io::ErrorKind;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mdbus_types::{MdSample, SAMPLE_SIZE};

use super::{Sink, Source, stamp};
use crate::error::{Error, Result};
use crate::scenario::Wait;

/// The socket path of subscriber `index` in a run folder.
pub fn socket_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("sub-{index}.sock"))
}

/// The publisher's end: one socket connected to each subscriber's path.
#[derive(Debug)]
pub struct UnixSink {
    sockets: Vec<(UnixDatagram, PathBuf)>,
}

impl UnixSink {
    /// A sink that sends to `targets` (bound by the subscribers).
    pub fn new(targets: Vec<PathBuf>) -> Result<UnixSink> {
        let sockets = targets
            .into_iter()
            .map(|target| {
                let socket = UnixDatagram::unbound().map_err(|e| Error::io(&target, e))?;
                socket.connect(&target).map_err(|e| Error::io(&target, e))?;
                Ok((socket, target))
            })
            .collect::<Result<_>>()?;
        Ok(UnixSink { sockets })
    }
}

impl Sink for UnixSink {
    fn send_batch(&mut self, batch: &mut [MdSample]) -> Result<()> {
        for sample in batch.iter_mut() {
            stamp(sample);
            for (socket, target) in &self.sockets {
                socket.send(sample.as_bytes()).map_err(|e| Error::io(target, e))?;
            }
        }
        Ok(())
    }
}

/// A subscriber's bound socket.
#[derive(Debug)]
pub struct UnixSource {
    socket: UnixDatagram,
    path: PathBuf,
    nonblocking: bool,
    /// The read timeout last set (`None`: none set yet), so block mode
    /// pays the `setsockopt` only when the timeout changes.
    read_timeout: Option<Duration>,
    buffer: MdSample,
}

impl UnixSource {
    /// Binds `path` (removed first if left over).
    pub fn bind(path: &Path) -> Result<UnixSource> {
        let _ = std::fs::remove_file(path);
        let socket = UnixDatagram::bind(path).map_err(|e| Error::io(path, e))?;
        Ok(UnixSource {
            socket,
            path: path.to_path_buf(),
            nonblocking: false,
            read_timeout: None,
            buffer: bytemuck::Zeroable::zeroed(),
        })
    }

    fn set_nonblocking(&mut self, nonblocking: bool) -> Result<()> {
        if self.nonblocking != nonblocking {
            self.socket
                .set_nonblocking(nonblocking)
                .map_err(|e| Error::io(&self.path, e))?;
            self.nonblocking = nonblocking;
        }
        Ok(())
    }

    fn set_read_timeout(&mut self, timeout: Duration) -> Result<()> {
        let timeout = timeout.max(Duration::from_micros(1));
        if self.read_timeout != Some(timeout) {
            self.socket
                .set_read_timeout(Some(timeout))
                .map_err(|e| Error::io(&self.path, e))?;
            self.read_timeout = Some(timeout);
        }
        Ok(())
    }

    /// One `recv`: `Ok(true)` when a whole sample was read.
    fn recv_once(&mut self) -> Result<bool> {
        let bytes: &mut [u8] = bytemuck::bytes_of_mut(&mut self.buffer);
        match self.socket.recv(bytes) {
            Ok(SAMPLE_SIZE) => Ok(true),
            Ok(n) => Err(Error::Run(format!(
                "{}: a datagram of {n} bytes (expected {SAMPLE_SIZE})",
                self.path.display()
            ))),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(Error::io(&self.path, e)),
        }
    }
}

impl Drop for UnixSource {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Source for UnixSource {
    fn recv<R>(&mut self, wait: Wait, timeout: Duration, f: impl FnOnce(&MdSample) -> R) -> Result<Option<R>> {
        match wait {
            Wait::Spin => {
                self.set_nonblocking(true)?;
                let deadline = Instant::now() + timeout;
                let mut polls = 0u32;
                loop {
                    if self.recv_once()? {
                        return Ok(Some(f(&self.buffer)));
                    }
                    polls = polls.wrapping_add(1);
                    if polls & 0xff == 0 && Instant::now() >= deadline {
                        return Ok(None);
                    }
                    std::hint::spin_loop();
                }
            }
            Wait::Block => {
                self.set_nonblocking(false)?;
                self.set_read_timeout(timeout)?;
                Ok(self.recv_once()?.then(|| f(&self.buffer)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload;

    #[test]
    fn block_mode_sets_the_read_timeout_once_and_receives() {
        let dir = tempfile::tempdir().unwrap();
        let path = socket_path(dir.path(), 0);
        let mut source = UnixSource::bind(&path).unwrap();
        let timeout = Duration::from_millis(1);
        assert_eq!(source.recv(Wait::Block, timeout, |_| ()).unwrap(), None);
        assert_eq!(source.read_timeout, Some(timeout));
        // The kernel rounds it up to its tick: set, not necessarily 1 ms.
        assert!(source.socket.read_timeout().unwrap().is_some());
        let mut sink = UnixSink::new(vec![path]).unwrap();
        sink.send_batch(&mut [payload::tick(5, true)]).unwrap();
        let got = source.recv(Wait::Block, timeout, payload::read).unwrap();
        assert_eq!(got.flatten().map(|r| r.index), Some(5));
        assert_eq!(source.read_timeout, Some(timeout));
    }
}
