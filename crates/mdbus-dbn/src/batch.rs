//! The records of one `publish_batch`, written into reused sample slots.

use mdbus_types::{MdSample, Record};

/// The samples of the next publish. Its slots outlive a publish: a record
/// is copied into a slot whose tail is already zero, so only the bytes a
/// longer record left there are cleared, not all 376 (`MdSample::from`
/// zeroes the whole sample, then copies the record in: for a 72-byte
/// delta that memset was most of the cost of writing it).
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// Slots; `[..len]` hold this batch's records, the rest hold zeros
    /// past their `written` lengths.
    slots: Vec<MdSample>,
    /// The bytes of each slot that may be non-zero (the record last
    /// written to it).
    written: Vec<usize>,
    len: usize,
}

impl Batch {
    /// A batch with room for `capacity` records before it grows.
    pub(crate) fn with_capacity(capacity: usize) -> Batch {
        Batch {
            slots: vec![MdSample::default(); capacity],
            written: vec![0; capacity],
            len: 0,
        }
    }

    /// Appends `record` (its bytes at offset 0, the rest of the sample
    /// zero, as `MdSample::from`).
    #[inline]
    pub(crate) fn push<R: Record>(&mut self, record: &R) {
        let bytes = bytemuck::bytes_of(record);
        if self.len == self.slots.len() {
            self.slots.push(MdSample::default());
            self.written.push(0);
        }
        let slot = bytemuck::bytes_of_mut(&mut self.slots[self.len]);
        let written = &mut self.written[self.len];
        slot[..bytes.len()].copy_from_slice(bytes);
        if *written > bytes.len() {
            slot[bytes.len()..*written].fill(0);
        }
        *written = bytes.len();
        self.len += 1;
    }

    /// Records in the batch.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch holds none.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The batch's samples (to stamp and publish).
    pub(crate) fn samples_mut(&mut self) -> &mut [MdSample] {
        &mut self.slots[..self.len]
    }

    /// The batch's samples.
    pub(crate) fn samples(&self) -> &[MdSample] {
        &self.slots[..self.len]
    }

    /// Empties the batch; the slots stay for the next.
    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mdbus_types::{BookDelta, BookSnapshot, InstrumentId, Price, Side};

    /// A slot reused for a shorter record holds exactly what a fresh
    /// sample of that record holds.
    #[test]
    fn a_reused_slot_equals_a_fresh_sample() {
        let id = InstrumentId::new("ESH1").unwrap();
        let mut snapshot = BookSnapshot::empty(id, 7);
        snapshot.bid_count = 1;
        snapshot.bids[0].price = Price(100);
        snapshot.bids[0].qty = 3;
        let delta = BookDelta::new(id, Side::Ask, Price(101), 4, 8);
        let mut batch = Batch::with_capacity(1);
        batch.push(&snapshot);
        batch.push(&delta);
        assert_eq!(batch.samples(), &[MdSample::from(snapshot), MdSample::from(delta)]);
        batch.clear();
        batch.push(&delta);
        batch.push(&snapshot);
        batch.push(&delta);
        assert_eq!(
            batch.samples(),
            &[MdSample::from(delta), MdSample::from(snapshot), MdSample::from(delta)]
        );
        assert_eq!(batch.len(), 3);
    }
}
