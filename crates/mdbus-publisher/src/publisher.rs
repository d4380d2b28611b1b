//! The sequencing publisher: assigns dense `seq` from 1, stamps
//! `ts_publish`, marks the end of each send batch, and sends.

use std::ops::RangeInclusive;

use mdbus_transport::MdSender;
use mdbus_types::{FLAG_END_OF_BATCH, Heartbeat, Kind, MdSample, RecordHeader, clock};

use crate::error::Result;

/// Stamps a record as it is sequenced: `seq`, `ts_publish` (now, before
/// the WAL append and the send), and `END_OF_BATCH` on the batch's last
/// record only (other flags are kept).
#[inline]
pub(crate) fn stamp(sample: &mut MdSample, seq: u64, last_of_batch: bool) {
    stamp_header(sample.header_mut(), seq, last_of_batch);
}

/// [`stamp`] on a record's header.
#[inline]
pub(crate) fn stamp_header(header: &mut RecordHeader, seq: u64, last_of_batch: bool) {
    header.seq = seq;
    header.ts_publish = clock::now_ns();
    header.flags &= !FLAG_END_OF_BATCH;
    if last_of_batch {
        header.flags |= FLAG_END_OF_BATCH;
    }
}

/// What a publisher has sent so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublisherStats {
    /// Records sent.
    pub records: u64,
    /// Send batches ended.
    pub batches: u64,
    /// Heartbeats sent (included in `records`).
    pub heartbeats: u64,
}

/// Publishes records of one feed on a transport.
///
/// Every record, heartbeats included, takes the next `seq`; `ts_publish`
/// is stamped when the record is sequenced, just before it is sent.
#[derive(Debug)]
pub struct Publisher<S> {
    sender: S,
    next_seq: u64,
    stats: PublisherStats,
}

impl<S: MdSender> Publisher<S> {
    /// A publisher whose first record gets seq 1.
    pub fn new(sender: S) -> Publisher<S> {
        Publisher::starting_at(sender, 1)
    }

    /// A publisher whose first record gets `next_seq` (a restart continues
    /// after the last seq in the WAL).
    pub fn starting_at(sender: S, next_seq: u64) -> Publisher<S> {
        Publisher {
            sender,
            next_seq: next_seq.max(1),
            stats: PublisherStats::default(),
        }
    }

    /// The seq the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// What has been sent so far.
    pub fn stats(&self) -> PublisherStats {
        self.stats
    }

    /// The transport.
    pub fn sender_mut(&mut self) -> &mut S {
        &mut self.sender
    }

    /// Sequences, stamps and sends a batch; the last record gets
    /// `END_OF_BATCH` (the flag is cleared on the others), then the batch
    /// is ended on the transport. Returns the seqs taken. The records'
    /// headers are updated in place, so the caller holds what was sent.
    pub fn publish_batch(&mut self, batch: &mut [MdSample]) -> Result<RangeInclusive<u64>> {
        let first = self.next_seq;
        let Some(last_index) = batch.len().checked_sub(1) else {
            return Ok(first..=first - 1);
        };
        for (i, sample) in batch.iter_mut().enumerate() {
            sample.header().kind()?;
            stamp(sample, self.next_seq, i == last_index);
            if sample.header().kind == Kind::Heartbeat as u16 {
                self.stats.heartbeats += 1;
            }
            self.sender.send(sample)?;
            self.next_seq += 1;
            self.stats.records += 1;
        }
        self.sender.end_batch()?;
        self.stats.batches += 1;
        Ok(first..=self.next_seq - 1)
    }

    /// Publishes one record as a batch of one; returns its seq.
    pub fn publish(&mut self, sample: &mut MdSample) -> Result<u64> {
        Ok(*self.publish_batch(std::slice::from_mut(sample))?.start())
    }

    /// Sends a heartbeat (a quiet feed still shows its seq); returns its seq.
    pub fn heartbeat(&mut self) -> Result<u64> {
        let mut sample = MdSample::from(Heartbeat {
            header: RecordHeader::new(Kind::Heartbeat, clock::now_ns()),
        });
        self.publish(&mut sample)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SyntheticFeed;
    use mdbus_transport::{InProcBus, MdReceiver};

    #[test]
    fn seq_is_dense_from_one_and_batches_are_flagged() {
        let bus = InProcBus::new(1 << 16);
        let mut rx = bus.subscribe();
        let mut publisher = Publisher::new(bus.sender());
        let mut feed = SyntheticFeed::new(3, 1).unwrap();
        let mut batch = Vec::new();
        for round in 0..100 {
            batch.clear();
            for _ in 0..(round % 7 + 1) {
                feed.next_event(round, &mut batch);
            }
            let n = batch.len() as u64;
            let seqs = publisher.publish_batch(&mut batch).unwrap();
            assert_eq!(seqs.end() - seqs.start() + 1, n);
        }
        publisher.heartbeat().unwrap();
        let total = publisher.stats().records;
        let mut expected = 1;
        let mut batch_ends = 0;
        while let Some(sample) = rx.try_recv().unwrap() {
            let h = sample.header();
            assert_eq!(h.seq, expected);
            assert!(h.ts_publish > 0);
            expected += 1;
            batch_ends += u64::from(h.flags & FLAG_END_OF_BATCH != 0);
        }
        assert_eq!(expected - 1, total);
        assert_eq!(batch_ends, 101);
        assert_eq!(publisher.stats().heartbeats, 1);
        assert_eq!(publisher.next_seq(), total + 1);
    }

    #[test]
    fn unknown_kind_is_refused_and_takes_no_seq() {
        let bus = InProcBus::new(16);
        let mut publisher = Publisher::starting_at(bus.sender(), 10);
        let mut bad = MdSample::default();
        bad.header_mut().kind = 99;
        assert!(publisher.publish(&mut bad).is_err());
        assert_eq!(publisher.next_seq(), 10);
        assert_eq!(publisher.heartbeat().unwrap(), 10);
    }
}
