//! crossbeam channels between threads of one process: one bounded
//! channel per subscriber (capacity as iceoryx2's subscriber buffer),
//! blocking sends (a full channel makes the publisher wait, no loss).

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use mdbus_types::MdSample;

use super::{Sink, Source, stamp};
use crate::error::{Error, Result};
use crate::scenario::Wait;

/// Capacity of each channel: iceoryx2's subscriber buffer in mdbus.
pub const CAPACITY: usize = 4096;

/// The publisher's end: one sender per subscriber.
#[derive(Debug)]
pub struct ChannelSink {
    senders: Vec<Sender<MdSample>>,
}

/// A subscriber's end.
#[derive(Debug)]
pub struct ChannelSource {
    receiver: Receiver<MdSample>,
    finished: bool,
}

/// A sink and `subscribers` sources.
pub fn channels(subscribers: usize) -> (ChannelSink, Vec<ChannelSource>) {
    let (senders, sources) = (0..subscribers)
        .map(|_| {
            let (tx, rx) = crossbeam_channel::bounded(CAPACITY);
            (
                tx,
                ChannelSource {
                    receiver: rx,
                    finished: false,
                },
            )
        })
        .unzip();
    (ChannelSink { senders }, sources)
}

impl Sink for ChannelSink {
    fn send_batch(&mut self, batch: &mut [MdSample]) -> Result<()> {
        for sample in batch.iter_mut() {
            stamp(sample);
            for sender in &self.senders {
                sender
                    .send(*sample)
                    .map_err(|_| Error::Run("a crossbeam subscriber thread is gone".to_string()))?;
            }
        }
        Ok(())
    }
}

impl Source for ChannelSource {
    fn recv<R>(&mut self, wait: Wait, timeout: Duration, f: impl FnOnce(&MdSample) -> R) -> Result<Option<R>> {
        match wait {
            Wait::Spin => {
                let deadline = Instant::now() + timeout;
                let mut polls = 0u32;
                loop {
                    match self.receiver.try_recv() {
                        Ok(sample) => return Ok(Some(f(&sample))),
                        Err(TryRecvError::Disconnected) => {
                            self.finished = true;
                            return Ok(None);
                        }
                        Err(TryRecvError::Empty) => {}
                    }
                    polls = polls.wrapping_add(1);
                    if polls & 0xff == 0 && Instant::now() >= deadline {
                        return Ok(None);
                    }
                    std::hint::spin_loop();
                }
            }
            Wait::Block => match self.receiver.recv_timeout(timeout) {
                Ok(sample) => Ok(Some(f(&sample))),
                Err(RecvTimeoutError::Timeout) => Ok(None),
                Err(RecvTimeoutError::Disconnected) => {
                    self.finished = true;
                    Ok(None)
                }
            },
        }
    }

    fn finished(&self) -> bool {
        self.finished
    }
}
