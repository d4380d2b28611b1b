//! Fixed-point prices: `i64` in units of 1e-9 of the quote currency.

use std::fmt;
use std::str::FromStr;

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};

/// Quantity: a plain signed 64-bit count of contracts, shares or coins.
pub type Qty = i64;

/// A price in fixed point: 1 unit = 1e-9 of the quote currency (as Databento
/// DBN does). [`Price::NULL`] (`i64::MAX`) means "no price".
#[repr(transparent)]
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Pod,
    Zeroable,
)]
pub struct Price(pub i64);

/// Units of [`Price`] per 1.0 of the quote currency.
pub const PRICE_SCALE: i64 = 1_000_000_000;
const SCALE_DIGITS: u32 = 9;

impl Price {
    /// "No price": an empty book level or an empty side of a tick.
    pub const NULL: Price = Price(i64::MAX);

    /// A price from raw 1e-9 units.
    #[inline]
    pub const fn from_raw(units: i64) -> Price {
        Price(units)
    }

    /// The raw 1e-9 units.
    #[inline]
    pub const fn raw(self) -> i64 {
        self.0
    }

    /// Whether this is [`Price::NULL`].
    #[inline]
    pub const fn is_null(self) -> bool {
        self.0 == i64::MAX
    }

    /// The nearest price to `value` (rounded to 1e-9). NaN, infinities and
    /// values outside the `i64` range (or equal to `NULL`) are errors.
    pub fn from_f64(value: f64) -> Result<Price> {
        let scaled = (value * PRICE_SCALE as f64).round();
        // i64::MAX as f64 rounds up to 2^63, so `<` excludes it and NULL.
        if !scaled.is_finite() || scaled < i64::MIN as f64 || scaled >= i64::MAX as f64 {
            return Err(Error::Price {
                input: value.to_string(),
                reason: "not a finite price within the i64 1e-9 range",
            });
        }
        Ok(Price(scaled as i64))
    }

    /// The price as `f64`, or `None` for [`Price::NULL`]. Exact for up to
    /// 2^53 units; beyond that the nearest `f64`.
    pub fn to_f64(self) -> Option<f64> {
        if self.is_null() {
            return None;
        }
        let whole = self.0 / PRICE_SCALE;
        let frac = self.0 % PRICE_SCALE;
        Some(whole as f64 + frac as f64 / PRICE_SCALE as f64)
    }

    /// Writes the exact decimal form (no exponent, no trailing zeros) into
    /// `out`; `NULL` is written as `null`.
    pub fn write_decimal(self, out: &mut String) {
        use std::fmt::Write;
        let _ = write!(out, "{self}");
    }
}

impl fmt::Display for Price {
    /// Exact decimal: `4123.5`, `-12.25`, `0.000000001`, `4123`; `NULL` is `null`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_null() {
            return f.write_str("null");
        }
        let v = self.0 as i128;
        let neg = v < 0;
        let abs = v.unsigned_abs();
        let whole = abs / PRICE_SCALE as u128;
        let mut frac = (abs % PRICE_SCALE as u128) as u64;
        if neg {
            f.write_str("-")?;
        }
        write!(f, "{whole}")?;
        if frac != 0 {
            let mut digits = SCALE_DIGITS as usize;
            while frac.is_multiple_of(10) {
                frac /= 10;
                digits -= 1;
            }
            write!(f, ".{frac:0digits$}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Price({self})")
    }
}

impl FromStr for Price {
    type Err = Error;

    /// Parses a decimal exactly: `4123.5`, `-12.25`, `+7`, `.5`, `1e-09`,
    /// `4.1235E3`. A value that is not a whole number of 1e-9 units, does
    /// not fit in `i64`, or is malformed is an error naming the input.
    fn from_str(s: &str) -> Result<Price> {
        parse_decimal(s).map(Price)
    }
}

fn price_err(input: &str, reason: &'static str) -> Error {
    Error::Price {
        input: input.to_string(),
        reason,
    }
}

fn parse_decimal(input: &str) -> Result<i64> {
    let s = input.trim();
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut neg = false;
    if let Some(&c) = bytes.first()
        && (c == b'-' || c == b'+')
    {
        neg = c == b'-';
        i = 1;
    }
    // Mantissa digits (leading zeros skipped), the position of the point.
    let mut mantissa: u128 = 0;
    let mut mantissa_digits = 0u32; // significant digits kept
    let mut frac_digits: i64 = 0;
    let mut seen_digit = false;
    let mut seen_point = false;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'0'..=b'9' => {
                seen_digit = true;
                if mantissa != 0 || c != b'0' {
                    mantissa_digits += 1;
                    if mantissa_digits > 38 {
                        return Err(price_err(input, "too many digits"));
                    }
                }
                mantissa = mantissa * 10 + u128::from(c - b'0');
                if seen_point {
                    frac_digits += 1;
                }
            }
            b'.' if !seen_point => seen_point = true,
            b'e' | b'E' => break,
            _ => return Err(price_err(input, "not a decimal number")),
        }
        i += 1;
    }
    if !seen_digit {
        return Err(price_err(input, "no digits"));
    }
    let mut exponent: i64 = 0;
    if i < bytes.len() {
        // bytes[i] is 'e' or 'E'
        let exp_str = &s[i + 1..];
        if exp_str.is_empty() {
            return Err(price_err(input, "empty exponent"));
        }
        exponent = exp_str
            .parse::<i64>()
            .map_err(|_| price_err(input, "malformed exponent"))?;
        if exponent.abs() > 400 {
            return Err(price_err(input, "exponent out of range"));
        }
    }
    // value = mantissa * 10^(exponent - frac_digits); units = value * 1e9.
    let shift = exponent - frac_digits + i64::from(SCALE_DIGITS);
    let units: u128 = if mantissa == 0 {
        0
    } else if shift >= 0 {
        let mut v = mantissa;
        for _ in 0..shift {
            v = v
                .checked_mul(10)
                .filter(|v| *v <= i64::MAX as u128 + 1)
                .ok_or_else(|| price_err(input, "out of the i64 1e-9 range"))?;
        }
        v
    } else {
        let mut v = mantissa;
        for _ in 0..(-shift) {
            if !v.is_multiple_of(10) {
                return Err(price_err(input, "finer than 1e-9"));
            }
            v /= 10;
        }
        v
    };
    let signed: i128 = if neg { -(units as i128) } else { units as i128 };
    if signed < i64::MIN as i128 || signed >= i64::MAX as i128 {
        return Err(price_err(input, "out of the i64 1e-9 range"));
    }
    Ok(signed as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_prints_exact_decimals() {
        let cases = [
            ("4123.5", 4_123_500_000_000),
            ("-12.25", -12_250_000_000),
            ("0.000000001", 1),
            ("1e-09", 1),
            ("4123", 4_123_000_000_000),
            ("-0.000000001", -1),
        ];
        for (text, raw) in cases {
            let p: Price = text.parse().unwrap();
            assert_eq!(p.raw(), raw, "{text}");
        }
        assert_eq!(Price(4_123_500_000_000).to_string(), "4123.5");
        assert_eq!(Price(1).to_string(), "0.000000001");
        assert_eq!(Price(-12_250_000_000).to_string(), "-12.25");
        assert_eq!(Price(i64::MIN).to_string(), "-9223372036.854775808");
        assert_eq!(Price::NULL.to_string(), "null");
        assert_eq!("4.1235E3".parse::<Price>().unwrap(), "4123.5".parse().unwrap());
    }

    #[test]
    fn malformed_or_out_of_range_is_an_error_naming_the_input() {
        for bad in [
            "",
            "-",
            "abc",
            "1.2.3",
            "1e",
            "0.0000000001",
            "1e30",
            "9223372037",
            "1 2",
        ] {
            let err = bad.parse::<Price>().unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn f64_conversions() {
        assert_eq!(Price::from_f64(4123.4).unwrap(), "4123.4".parse().unwrap());
        assert_eq!(Price::from_f64(-12.375).unwrap().raw(), -12_375_000_000);
        assert!(Price::from_f64(f64::NAN).is_err());
        assert!(Price::from_f64(1e12).is_err());
        assert_eq!(Price(4_123_400_000_000).to_f64(), Some(4123.4));
        assert_eq!(Price::NULL.to_f64(), None);
    }

    proptest! {
        #[test]
        fn string_round_trip(raw in (i64::MIN..i64::MAX)) {
            let p = Price(raw);
            let back: Price = p.to_string().parse().unwrap();
            prop_assert_eq!(back, p);
        }

        #[test]
        fn f64_round_trip_for_prices_with_at_most_15_digits(raw in -999_999_999_999_999i64..999_999_999_999_999) {
            let p = Price(raw);
            prop_assert_eq!(Price::from_f64(p.to_f64().unwrap()).unwrap(), p);
        }
    }
}
