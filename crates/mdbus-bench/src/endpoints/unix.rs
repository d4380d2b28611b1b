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
                self.socket
                    .set_read_timeout(Some(timeout.max(Duration::from_micros(1))))
                    .map_err(|e| Error::io(&self.path, e))?;
                Ok(self.recv_once()?.then(|| f(&self.buffer)))
            }
        }
    }
}
