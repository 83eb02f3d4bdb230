//! Quantities written as text with a unit: durations ("250ms"), bit rates
//! ("20mbit"), packet rates ("1000pps"), percentages ("1%") and queue bounds
//! ("64kB" or "500ms").
//!
//! Each has a parse function returning the expected form on error, and a
//! small wrapper type that deserializes through it, so a bad value fails
//! inside serde and the error carries its position in the file.

use std::time::Duration;

use serde::de::{Deserialize, Deserializer, Error as _};

use crate::emulator::model::QueueLimit;

const DURATION_FORM: &str =
    "a duration such as \"250ms\", \"10s\" or \"1.5s\" (units: us, ms, s, min)";
const BIT_RATE_FORM: &str =
    "a rate above zero such as \"20mbit\" or \"500kbit\" (units: bit, kbit, mbit, gbit)";
const PACKET_RATE_FORM: &str = "a packet rate above zero such as \"1000pps\"";
const PERCENT_FORM: &str = "a percentage from 0% to 100% such as \"1%\" or \"0.5%\"";
const QUEUE_FORM: &str = "a queue bound in bytes such as \"64kB\" or \"1MB\" (units: B, kB, KiB, MB, MiB), or a time such as \"500ms\"";

/// A decimal number split from its unit: value = `mantissa / 10^scale`.
struct Decimal<'a> {
    mantissa: u128,
    scale: u32,
    unit: &'a str,
}

impl Decimal<'_> {
    /// `value * unit_size`, rounded to the nearest whole number.
    fn times(&self, unit_size: u128) -> Option<u128> {
        let divisor = 10u128.checked_pow(self.scale)?;
        let product = self.mantissa.checked_mul(unit_size)?;
        Some((product + divisor / 2) / divisor)
    }
}

/// Splits "1.5ms" into 15, 1 and "ms". Accepts digits with at most one dot
/// and a unit after optional spaces.
fn split_decimal(text: &str) -> Option<Decimal<'_>> {
    let text = text.trim();
    let number_len = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(number_len);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    Some(Decimal {
        mantissa: digits.parse().ok()?,
        scale: u32::try_from(fraction.len()).ok()?,
        unit: unit.trim_start(),
    })
}

fn found(form: &str, text: &str) -> String {
    format!("expected {form}, found {text:?}")
}

/// Parses "250ms", "10s", "1.5s", "100us", "2min".
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let nanos_per_unit: Option<u128> = split_decimal(text).and_then(|d| {
        let unit = match d.unit {
            "us" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "min" => 60_000_000_000,
            _ => return None,
        };
        d.times(unit)
    });
    nanos_per_unit
        .and_then(|nanos| u64::try_from(nanos).ok())
        .map(Duration::from_nanos)
        .ok_or_else(|| found(DURATION_FORM, text))
}

/// Parses a bit rate such as "20mbit", "500kbit", "1.5gbit" into bits per second.
pub fn parse_bit_rate(text: &str) -> Result<u64, String> {
    let bps = split_decimal(text).and_then(|d| {
        let unit = match d.unit.to_ascii_lowercase().as_str() {
            "bit" | "bps" => 1,
            "kbit" | "kbps" => 1_000,
            "mbit" | "mbps" => 1_000_000,
            "gbit" | "gbps" => 1_000_000_000,
            _ => return None,
        };
        d.times(unit)
    });
    bps.and_then(|bps| u64::try_from(bps).ok())
        .filter(|&bps| bps > 0)
        .ok_or_else(|| found(BIT_RATE_FORM, text))
}

/// Parses a packet rate such as "1000pps".
pub fn parse_packet_rate(text: &str) -> Result<u64, String> {
    split_decimal(text)
        .filter(|d| d.unit == "pps")
        .and_then(|d| d.times(1))
        .and_then(|pps| u64::try_from(pps).ok())
        .filter(|&pps| pps > 0)
        .ok_or_else(|| found(PACKET_RATE_FORM, text))
}

/// Parses "1%" into the fraction 0.01.
pub fn parse_percent(text: &str) -> Result<f64, String> {
    text.trim()
        .strip_suffix('%')
        .filter(|number| split_decimal(number).is_some_and(|d| d.unit.is_empty()))
        .and_then(|number| number.trim().parse::<f64>().ok())
        .filter(|percent| (0.0..=100.0).contains(percent))
        .map(|percent| percent / 100.0)
        .ok_or_else(|| found(PERCENT_FORM, text))
}

/// Parses a queue bound: bytes ("64kB", "1MB", "1500B") or time ("500ms").
pub fn parse_queue(text: &str) -> Result<QueueLimit, String> {
    if let Ok(delay) = parse_duration(text) {
        return Ok(QueueLimit::Delay(delay));
    }
    let bytes = split_decimal(text).and_then(|d| {
        let unit = match d.unit {
            "B" => 1,
            "kB" | "KB" => 1_000,
            "KiB" => 1_024,
            "MB" => 1_000_000,
            "MiB" => 1_048_576,
            _ => return None,
        };
        d.times(unit)
    });
    bytes
        .and_then(|bytes| u64::try_from(bytes).ok())
        .map(QueueLimit::Bytes)
        .ok_or_else(|| found(QUEUE_FORM, text))
}

/// Deserializes a string through `parse`, turning its message into a serde error.
fn from_text<'de, D, T>(
    deserializer: D,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    let text = String::deserialize(deserializer)?;
    parse(&text).map_err(D::Error::custom)
}

macro_rules! text_quantity {
    ($(#[$doc:meta])* $name:ident($inner:ty) = $parse:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub struct $name(pub $inner);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                from_text(deserializer, $parse).map($name)
            }
        }
    };
}

text_quantity!(
    /// A duration written as text, see [`parse_duration`].
    DurationText(Duration) = parse_duration
);
text_quantity!(
    /// A bit rate written as text, see [`parse_bit_rate`].
    BitRate(u64) = parse_bit_rate
);
text_quantity!(
    /// A packet rate written as text, see [`parse_packet_rate`].
    PacketRate(u64) = parse_packet_rate
);
text_quantity!(
    /// A percentage written as text, held as a fraction, see [`parse_percent`].
    Percent(f64) = parse_percent
);
text_quantity!(
    /// A queue bound written as text, see [`parse_queue`].
    QueueText(QueueLimit) = parse_queue
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_each_unit() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("100us"), Ok(Duration::from_micros(100)));
        assert_eq!(parse_duration("2min"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration(".5ms"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_durations_say_what_was_expected() {
        for bad in ["10x", "10", "ms", "-1s", "1.2.3s", "", "1e3ms"] {
            let message = parse_duration(bad).unwrap_err();
            assert_eq!(message, format!("expected {DURATION_FORM}, found {bad:?}"));
        }
    }

    #[test]
    fn bit_rates() {
        assert_eq!(parse_bit_rate("20mbit"), Ok(20_000_000));
        assert_eq!(parse_bit_rate("500kbit"), Ok(500_000));
        assert_eq!(parse_bit_rate("1.5Gbit"), Ok(1_500_000_000));
        assert_eq!(parse_bit_rate("64000bit"), Ok(64_000));
        assert_eq!(parse_bit_rate("10mbps"), Ok(10_000_000));
        for bad in ["0mbit", "0.0001bit", "20", "20mbyte", "fast"] {
            assert!(
                parse_bit_rate(bad)
                    .unwrap_err()
                    .contains("a rate above zero")
            );
        }
    }

    #[test]
    fn packet_rates() {
        assert_eq!(parse_packet_rate("1000pps"), Ok(1000));
        assert!(
            parse_packet_rate("0pps")
                .unwrap_err()
                .contains("above zero")
        );
        assert!(parse_packet_rate("1000").is_err());
    }

    #[test]
    fn percentages_become_fractions() {
        assert_eq!(parse_percent("1%"), Ok(0.01));
        assert_eq!(parse_percent("0.5%"), Ok(0.005));
        assert_eq!(parse_percent("100%"), Ok(1.0));
        for bad in ["1", "101%", "-1%", "x%", "1e1%", "nan%"] {
            assert!(
                parse_percent(bad).unwrap_err().contains("from 0% to 100%"),
                "{bad}"
            );
        }
    }

    #[test]
    fn queues_as_bytes_or_time() {
        assert_eq!(parse_queue("64kB"), Ok(QueueLimit::Bytes(64_000)));
        assert_eq!(parse_queue("64KiB"), Ok(QueueLimit::Bytes(65_536)));
        assert_eq!(parse_queue("1.5MB"), Ok(QueueLimit::Bytes(1_500_000)));
        assert_eq!(parse_queue("1500B"), Ok(QueueLimit::Bytes(1500)));
        assert_eq!(
            parse_queue("2s"),
            Ok(QueueLimit::Delay(Duration::from_secs(2)))
        );
        assert!(
            parse_queue("64k")
                .unwrap_err()
                .contains("a queue bound in bytes")
        );
    }
}
