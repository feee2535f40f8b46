//! Exact money. Every amount on the money path is a [`Usd`]: a decimal, never a float.
//!
//! Rounding policy (the same in every backend and binding): each line of a cost breakdown is
//! computed exactly and rounded once, half-to-even, to 1e-9 USD (one nano-dollar); an event's
//! total is the sum of its rounded lines, so lines always add up to the total.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Sub};
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// Decimal places kept after rounding: 9, i.e. nano-USD.
pub const USD_SCALE: u32 = 9;

/// An exact amount of US dollars.
///
/// ```
/// use usage_core::Usd;
/// let a: Usd = "0.1".parse().unwrap();
/// let b: Usd = "0.2".parse().unwrap();
/// assert_eq!((a + b).to_string(), "0.3");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usd(Decimal);

impl Usd {
    /// Zero dollars.
    pub const ZERO: Usd = Usd(Decimal::ZERO);

    /// Wraps an exact decimal.
    pub const fn new(amount: Decimal) -> Self {
        Usd(amount)
    }

    /// The amount as an exact decimal.
    pub const fn as_decimal(&self) -> Decimal {
        self.0
    }

    /// Rounds half-to-even to 1e-9 USD, the precision every stored figure has.
    pub fn round(self) -> Self {
        if self.0.scale() <= USD_SCALE {
            return self;
        }
        Usd(self
            .0
            .round_dp_with_strategy(USD_SCALE, RoundingStrategy::MidpointNearestEven))
    }

    /// The amount in whole nano-dollars (1e-9 USD), after [`Usd::round`]; how stores keep it.
    pub fn to_nanos(self) -> i128 {
        let r = self.round().0;
        let scaled = r * Decimal::from(1_000_000_000u64);
        scaled.trunc().mantissa() / 10i128.pow(scaled.trunc().scale())
    }

    /// An amount from whole nano-dollars.
    pub fn from_nanos(nanos: i128) -> Self {
        Usd(Decimal::from_i128_with_scale(nanos, USD_SCALE).normalize())
    }

    /// True for exactly zero.
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }
}

impl fmt::Display for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.normalize(), f)
    }
}

impl FromStr for Usd {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim();
        let d = Decimal::from_str_exact(t)
            .or_else(|_| Decimal::from_scientific(t))
            .map_err(|e| Error::argument("usd", format!("`{s}` is not a decimal amount: {e}")))?;
        Ok(Usd(d))
    }
}

impl From<Decimal> for Usd {
    fn from(d: Decimal) -> Self {
        Usd(d)
    }
}

impl Add for Usd {
    type Output = Usd;
    fn add(self, rhs: Usd) -> Usd {
        Usd(self.0 + rhs.0)
    }
}

impl AddAssign for Usd {
    fn add_assign(&mut self, rhs: Usd) {
        self.0 += rhs.0;
    }
}

impl Sub for Usd {
    type Output = Usd;
    fn sub(self, rhs: Usd) -> Usd {
        Usd(self.0 - rhs.0)
    }
}

impl Sum for Usd {
    fn sum<I: Iterator<Item = Usd>>(iter: I) -> Usd {
        iter.fold(Usd::ZERO, |a, b| a + b)
    }
}

impl<'a> Sum<&'a Usd> for Usd {
    fn sum<I: Iterator<Item = &'a Usd>>(iter: I) -> Usd {
        iter.fold(Usd::ZERO, |a, b| a + *b)
    }
}

/// Serialises as a decimal string (`"0.012345678"`), so no JSON reader turns it into a float.
impl Serialize for Usd {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Reads a decimal string, or a JSON number taken digit for digit (never through `f64`).
impl<'de> Deserialize<'de> for Usd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = DecimalText::deserialize(d)?;
        v.0.parse::<Usd>().map_err(serde::de::Error::custom)
    }
}

/// A decimal read from JSON: strings digit for digit; numbers through their shortest round-trip
/// text, which gives back the literal a writer meant for up to 15 significant digits. Catalog
/// files write prices as strings so that nothing depends on that.
pub(crate) struct DecimalText(pub(crate) String);

impl<'de> Deserialize<'de> for DecimalText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = DecimalText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal number or a decimal string")
            }
            fn visit_str<E: serde::de::Error>(
                self,
                v: &str,
            ) -> std::result::Result<DecimalText, E> {
                Ok(DecimalText(v.to_owned()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<DecimalText, E> {
                Ok(DecimalText(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<DecimalText, E> {
                Ok(DecimalText(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<DecimalText, E> {
                // Only reached for JSON numbers with a fraction; Rust's shortest round-trip
                // formatting gives back the literal the writer meant ("0.075", not 0.07499…).
                Ok(DecimalText(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses a decimal from a `serde_json::Value` (string or number), for the extractors.
pub(crate) fn decimal_from_json(v: &serde_json::Value) -> Option<Decimal> {
    match v {
        serde_json::Value::String(s) => Decimal::from_str_exact(s.trim())
            .or_else(|_| Decimal::from_scientific(s.trim()))
            .ok(),
        serde_json::Value::Number(n) => {
            let t = n.to_string();
            Decimal::from_str_exact(&t)
                .or_else(|_| Decimal::from_scientific(&t))
                .ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_half_to_even_at_nine_places() {
        let u: Usd = "0.0000000005".parse().unwrap();
        assert_eq!(u.round(), Usd::ZERO);
        let u: Usd = "0.0000000015".parse().unwrap();
        assert_eq!(u.round().to_string(), "0.000000002");
        let u: Usd = "0.0000000025".parse().unwrap();
        assert_eq!(u.round().to_string(), "0.000000002");
    }

    #[test]
    fn nanos_round_trip() {
        let u: Usd = "12.345678901".parse().unwrap();
        assert_eq!(u.to_nanos(), 12_345_678_901);
        assert_eq!(Usd::from_nanos(12_345_678_901), u);
        assert_eq!(Usd::from_nanos(-5).to_string(), "-0.000000005");
    }

    #[test]
    fn serialises_as_string_and_reads_numbers_exactly() {
        let u: Usd = serde_json::from_str("0.075").unwrap();
        assert_eq!(serde_json::to_string(&u).unwrap(), "\"0.075\"");
        let u: Usd = serde_json::from_str("\"1e-7\"").unwrap();
        assert_eq!(u.to_string(), "0.0000001");
        assert!("abc".parse::<Usd>().is_err());
    }
}
