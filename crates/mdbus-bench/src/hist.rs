//! One-way latency histograms: HDR histograms in ns, their V2
//! serialization (how a subscriber process hands its histogram to the
//! parent), merging, and the percentiles the report shows.

use std::path::Path;

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Highest latency a histogram tracks: 60 s (larger values are clamped).
pub const MAX_TRACKED_NS: u64 = 60_000_000_000;

/// Significant decimal digits of every histogram (0.1 % resolution).
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// An empty latency histogram: 1 ns to [`MAX_TRACKED_NS`], 3 digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_NS, SIGNIFICANT_DIGITS).expect("constant bounds are valid")
}

/// Records one latency in ns; 0 and negative values (clock steps) count
/// as 1 ns, values above [`MAX_TRACKED_NS`] as the maximum. Returns
/// whether the value was negative (received before it was stamped: the
/// caller counts these so the report shows them).
#[inline]
pub fn record(histogram: &mut Histogram<u64>, latency_ns: i64) -> bool {
    let value = u64::try_from(latency_ns).unwrap_or(0).max(1);
    histogram.saturating_record(value);
    latency_ns < 0
}

/// The histogram in the HdrHistogram V2 binary format (uncompressed).
pub fn encode(histogram: &Histogram<u64>) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    V2Serializer::new()
        .serialize(histogram, &mut bytes)
        .map_err(|e| Error::Histogram(format!("cannot serialize: {e:?}")))?;
    Ok(bytes)
}

/// A histogram from its V2 bytes (compressed or not).
pub fn decode(mut bytes: &[u8]) -> Result<Histogram<u64>> {
    Deserializer::new()
        .deserialize(&mut bytes)
        .map_err(|e| Error::Histogram(format!("cannot deserialize: {e:?}")))
}

/// Writes a histogram's V2 bytes to `path`.
pub fn write_file(path: &Path, histogram: &Histogram<u64>) -> Result<()> {
    let bytes = encode(histogram)?;
    std::fs::write(path, bytes).map_err(|source| Error::io(path, source))
}

/// Reads a histogram written by [`write_file`].
pub fn read_file(path: &Path) -> Result<Histogram<u64>> {
    let bytes = std::fs::read(path).map_err(|source| Error::io(path, source))?;
    decode(&bytes).map_err(|e| Error::Histogram(format!("{}: {e}", path.display())))
}

/// The sum of `histograms` (all subscribers of a run): an empty
/// histogram when there are none.
pub fn merge<'a>(histograms: impl IntoIterator<Item = &'a Histogram<u64>>) -> Result<Histogram<u64>> {
    let mut total = new_histogram();
    for histogram in histograms {
        total
            .add(histogram)
            .map_err(|e| Error::Histogram(format!("cannot merge: {e:?}")))?;
    }
    Ok(total)
}

/// The percentiles of a histogram that the report shows, in ns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Samples recorded.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest value (at the histogram's resolution).
    pub max: u64,
}

impl Percentiles {
    /// The percentiles of `histogram` (all zero when it is empty).
    pub fn of(histogram: &Histogram<u64>) -> Percentiles {
        if histogram.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: histogram.len(),
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
        }
    }
}

/// Points of an HDR percentile curve: `(percentile, latency ns)`, from
/// 0 % up to the largest value, `ticks_per_half` points per halving of
/// the distance to 100 % (HdrHistogram's percentile distribution).
pub fn percentile_curve(histogram: &Histogram<u64>, ticks_per_half: u32) -> Vec<(f64, u64)> {
    if histogram.is_empty() {
        return Vec::new();
    }
    let mut points: Vec<(f64, u64)> = histogram
        .iter_quantiles(ticks_per_half.max(1))
        .map(|v| (v.percentile(), histogram.highest_equivalent(v.value_iterated_to())))
        .collect();
    if let Some(last) = points.last_mut() {
        last.0 = 100.0;
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(values: impl IntoIterator<Item = i64>) -> Histogram<u64> {
        let mut h = new_histogram();
        for v in values {
            record(&mut h, v);
        }
        h
    }

    #[test]
    fn negative_latencies_are_reported_and_count_as_one_ns() {
        let mut h = new_histogram();
        assert!(record(&mut h, -5));
        assert!(!record(&mut h, 0));
        assert!(!record(&mut h, 7));
        assert_eq!((h.len(), h.min(), h.max()), (3, 1, 7));
    }

    #[test]
    fn encode_decode_round_trip_keeps_every_count() {
        let h = filled((1..=10_000).map(|i| i * 37));
        let back = decode(&encode(&h).unwrap()).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.len(), 10_000);
    }

    #[test]
    fn merge_of_subscribers_equals_one_histogram_of_all_values() {
        let a = filled(1..=1000);
        let b = filled(1001..=3000);
        let all = filled(1..=3000);
        let merged = merge([&a, &b]).unwrap();
        assert_eq!(merged.len(), 3000);
        assert_eq!(Percentiles::of(&merged), Percentiles::of(&all));
    }

    #[test]
    fn merge_of_nothing_is_empty_and_has_zero_percentiles() {
        let merged = merge(std::iter::empty()).unwrap();
        assert!(merged.is_empty());
        assert_eq!(Percentiles::of(&merged), Percentiles::default());
    }

    #[test]
    fn merge_after_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<_> = (0..3).map(|i| dir.path().join(format!("sub-{i}.hgrm"))).collect();
        for (i, path) in paths.iter().enumerate() {
            write_file(path, &filled([100 * (i as i64 + 1); 10])).unwrap();
        }
        let read: Vec<_> = paths.iter().map(|p| read_file(p).unwrap()).collect();
        let merged = merge(&read).unwrap();
        assert_eq!(merged.len(), 30);
        assert_eq!(merged.value_at_quantile(0.5), 200);
        assert_eq!(merged.max(), 300);
    }

    #[test]
    fn percentiles_are_ordered_and_within_resolution() {
        let h = filled(1..=100_000);
        let p = Percentiles::of(&h);
        assert_eq!(p.count, 100_000);
        assert!(p.p50 <= p.p90 && p.p90 <= p.p99 && p.p99 <= p.p999 && p.p999 <= p.max);
        // 3 significant digits: within 0.1 % of the exact value.
        assert!(p.p50.abs_diff(50_000) <= 50, "p50 {}", p.p50);
        assert!(p.p99.abs_diff(99_000) <= 99, "p99 {}", p.p99);
    }

    #[test]
    fn non_positive_latencies_count_as_one_ns_and_huge_ones_saturate() {
        let h = filled([-5, 0, i64::MAX]);
        assert_eq!(h.len(), 3);
        assert_eq!(h.min(), 1);
        assert!(h.max() >= MAX_TRACKED_NS);
    }

    #[test]
    fn percentile_curve_rises_to_the_maximum_at_100() {
        let h = filled(1..=10_000);
        let curve = percentile_curve(&h, 5);
        assert!(curve.len() > 10);
        assert!(curve.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(curve.last().unwrap().0, 100.0);
        assert_eq!(curve.last().unwrap().1, h.highest_equivalent(h.max()));
        assert!(percentile_curve(&new_histogram(), 5).is_empty());
    }
}
