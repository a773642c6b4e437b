//! Choosing an index's bit length from the column's number of distinct values.
//!
//! With `X` distinct values and an `N`-bit tag, a lookup fetches the rows of every value
//! that shares its tag: about `rows / 2^N` rows in `private` mode, its own rows plus
//! `X / 2^N` false-positive values' rows in `unique` mode. The private range is the
//! DB-ESDK beacon rule: `2^N < X / 2` (every tag is shared by more than two values on
//! average, so equal tags do not mean equal values) and `2^N > √X` (lookups stay cheap).

use crate::blind_index::value::{MAX_INDEX_BITS, MIN_INDEX_BITS};

/// The bits `unique` mode uses when nothing else is said: false positives are about
/// `X / 2^64` values per lookup (one in 4·10^9 lookups at `X = 2^32`).
pub const DEFAULT_UNIQUE_BITS: u16 = 64;

/// A recommendation for a column.
#[derive(Debug, Clone, PartialEq)]
pub struct BitsAdvice {
    /// Distinct values the recommendation is for.
    pub distinct: u64,
    /// Rows (non-NULL values) of the column.
    pub rows: u64,
    /// Bits for `unique` mode: at least [`DEFAULT_UNIQUE_BITS`], and at least
    /// `log2(X) + 32` rounded up to a byte (fewer than 2^-32 false-positive values per
    /// lookup).
    pub unique_bits: u16,
    /// The private range `(lowest, highest)`: `2^N > √X` and `2^N < X/2`; `None` when no
    /// `N` of 8 bits or more satisfies both (too few distinct values to hide equality:
    /// fewer than about 512).
    pub private_range: Option<(u16, u16)>,
    /// The recommended private bits: the highest of the range (the fewest rows per
    /// lookup while every tag is still shared by more than two values).
    pub private_bits: Option<u16>,
}

impl BitsAdvice {
    /// The advice for `distinct` values over `rows` rows.
    pub fn for_column(distinct: u64, rows: u64) -> Self {
        let x = distinct.max(1) as f64;
        let log2 = x.log2();
        let unique = ((log2.ceil() as u32 + 32).div_ceil(8) * 8) as u16;
        let unique_bits = unique.clamp(DEFAULT_UNIQUE_BITS, MAX_INDEX_BITS);
        // 2^N > sqrt(X): N > log2(X)/2; 2^N < X/2: N < log2(X) - 1.
        let low = ((log2 / 2.0).floor() as i64 + 1).max(i64::from(MIN_INDEX_BITS));
        let high = (log2 - 1.0).ceil() as i64 - 1;
        let private_range = (low <= high).then_some((low as u16, high as u16));
        BitsAdvice {
            distinct,
            rows,
            unique_bits,
            private_range,
            private_bits: private_range.map(|(_, high)| high),
        }
    }

    /// Expected rows a lookup fetches with `bits` (its own value's rows included, on
    /// average): `rows / X` for the value plus `(X − 1) / 2^N` other values' rows.
    pub fn rows_per_lookup(&self, bits: u16) -> f64 {
        let x = self.distinct.max(1) as f64;
        let per_value = self.rows as f64 / x;
        per_value * (1.0 + (x - 1.0) / 2f64.powi(i32::from(bits)))
    }
}

/// The distinct-value estimate from a sample (GEE, Charikar et al., PODS 2000):
/// `√(rows / sample) · f1 + Σ_{j≥2} f_j`, where `f_j` is the number of values seen `j`
/// times in the sample. Its ratio error is at most about `√(rows / sample)` in either
/// direction; with the whole column (`sample == rows`) it is the exact count.
pub fn estimate_distinct(
    frequencies: impl IntoIterator<Item = u64>,
    sample: u64,
    rows: u64,
) -> u64 {
    let (mut once, mut more) = (0u64, 0u64);
    for f in frequencies {
        if f == 1 {
            once += 1;
        } else if f > 1 {
            more += 1;
        }
    }
    if sample == 0 {
        return 0;
    }
    let scale = (rows.max(sample) as f64 / sample as f64).sqrt();
    (scale * once as f64).round() as u64 + more
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_private_range_follows_the_rule() {
        let a = BitsAdvice::for_column(1_000_000, 1_000_000);
        let (low, high) = a.private_range.unwrap();
        assert!(2f64.powi(low.into()) > 1000.0 && 2f64.powi((low - 1).into()) <= 1000.0);
        assert!(2f64.powi(high.into()) < 500_000.0 && 2f64.powi((high + 1).into()) >= 500_000.0);
        assert_eq!((low, high), (10, 18));
        assert_eq!(a.unique_bits, 64);
        assert!(BitsAdvice::for_column(100, 100).private_range.is_none());
        assert_eq!(BitsAdvice::for_column(1 << 40, 1 << 40).unique_bits, 72);
    }

    #[test]
    fn rows_per_lookup_counts_collisions() {
        let a = BitsAdvice::for_column(1_000_000, 10_000_000);
        assert!((a.rows_per_lookup(64) - 10.0).abs() < 1e-6);
        assert!((a.rows_per_lookup(16) - 10.0 * (1.0 + 999_999.0 / 65536.0)).abs() < 1e-6);
    }

    #[test]
    fn the_estimate_is_exact_on_the_whole_column() {
        assert_eq!(estimate_distinct([1, 1, 2, 5], 9, 9), 4);
        assert_eq!(estimate_distinct([1, 1, 2], 4, 400), 21);
    }
}
