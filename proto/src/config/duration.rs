//! Human-readable durations: `200ms`, `3s`, `1m`, `1h30m`, `1.5s`.
//!
//! The grammar follows Go's `time.ParseDuration` (without signs): one or more
//! `<number><unit>` terms, where the number may have a decimal fraction and the
//! unit is one of `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h` or `d`. A bare `0`
//! is accepted as zero. [`format_duration`] writes the shortest such form, so
//! that `parse_duration(&format_duration(d)) == Ok(d)`.

use std::time::Duration;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// The units `parse_duration` accepts, longest suffix first within each
/// shared prefix so that `ms` is not read as `m` followed by garbage.
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", NANOS_PER_SEC),
    ("m", 60 * NANOS_PER_SEC),
    ("h", 3_600 * NANOS_PER_SEC),
    ("d", 86_400 * NANOS_PER_SEC),
];

/// Parses a duration such as `200ms`, `3s`, `1m`, `1h30m` or `1.5s`.
///
/// Terms add up (`1h30m` is 90 minutes); fractions below one nanosecond are
/// dropped.
///
/// # Errors
///
/// Returns a message naming the bad input and the expected form when the text
/// is empty, has a number without a unit (other than `0`), has an unknown
/// unit, a negative sign, or is too large for [`Duration`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = |why: &str| {
        format!("invalid duration {text:?}: {why}; write it like 200ms, 3s, 1m, 1h30m or 1.5s")
    };
    if text.is_empty() {
        return Err(invalid("it is empty"));
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let (nanos, after) = parse_term(rest).map_err(|why| invalid(&why))?;
        total = total
            .checked_add(nanos)
            .ok_or_else(|| invalid("it is too large"))?;
        rest = after;
    }
    let secs = u64::try_from(total / NANOS_PER_SEC).map_err(|_| invalid("it is too large"))?;
    let nanos = u32::try_from(total % NANOS_PER_SEC).map_err(|_| invalid("it is too large"))?;
    Ok(Duration::new(secs, nanos))
}

/// Parses one `<number><unit>` term at the start of `text`; returns its length
/// in nanoseconds and the rest of the text.
fn parse_term(text: &str) -> Result<(u128, &str), String> {
    let int_len = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (int_part, rest) = text.split_at(int_len);
    let (frac_part, rest) = match rest.strip_prefix('.') {
        Some(after_dot) => {
            let frac_len = after_dot
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after_dot.len());
            after_dot.split_at(frac_len)
        }
        None => ("", rest),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        let why = match rest.chars().next() {
            Some('-') => "durations cannot be negative".to_owned(),
            _ => format!("expected a number at {rest:?}"),
        };
        return Err(why);
    }
    let number = &text[..text.len() - rest.len()];
    let unit_len = rest
        .find(|c: char| c.is_ascii_digit() || c == '.')
        .unwrap_or(rest.len());
    let (unit, rest) = rest.split_at(unit_len);
    let Some(&(_, unit_nanos)) = UNITS.iter().find(|(name, _)| *name == unit) else {
        let why = if unit.is_empty() {
            format!("{number} has no unit")
        } else {
            format!("unknown unit {unit:?} (use ns, us, ms, s, m, h or d)")
        };
        return Err(why);
    };
    let too_large = || "it is too large".to_owned();
    let whole: u128 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().map_err(|_| too_large())?
    };
    let mut nanos = whole.checked_mul(unit_nanos).ok_or_else(too_large)?;
    // Digits past the 18th are below a nanosecond even for days, and
    // ignoring them keeps the arithmetic below in range. `frac_part` is ASCII
    // digits, so any byte index is a char boundary.
    let frac_digits = &frac_part[..frac_part.len().min(18)];
    if !frac_digits.is_empty() {
        let scale = 10u128.pow(u32::try_from(frac_digits.len()).map_err(|_| too_large())?);
        let frac: u128 = frac_digits.parse().map_err(|_| too_large())?;
        nanos = nanos
            .checked_add(frac.checked_mul(unit_nanos).ok_or_else(too_large)? / scale)
            .ok_or_else(too_large)?;
    }
    Ok((nanos, rest))
}

/// Formats a duration in the form [`parse_duration`] reads back exactly:
/// `0s`, `200ms`, `1.5s`, `1h30m`, `1h0m5s`.
///
/// Durations of a second or more are written as hours, minutes and seconds
/// (seconds with a decimal fraction when needed); shorter ones in the largest
/// of `ms`, `us` or `ns` that keeps them exact enough to round-trip.
pub fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    let nanos = duration.subsec_nanos();
    if secs == 0 {
        return format_subsecond(nanos);
    }
    let (hours, minutes, seconds) = (secs / 3_600, (secs / 60) % 60, secs % 60);
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 && (minutes > 0 || seconds > 0 || nanos > 0) || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    if seconds > 0 || nanos > 0 {
        out.push_str(&format!("{seconds}{}s", fraction(nanos, 9)));
    }
    out
}

/// Formats less than one second (`nanos` < 10⁹).
fn format_subsecond(nanos: u32) -> String {
    match nanos {
        0 => "0s".to_owned(),
        n if n >= 1_000_000 => format!("{}{}ms", n / 1_000_000, fraction(n % 1_000_000, 6)),
        n if n >= 1_000 => format!("{}{}us", n / 1_000, fraction(n % 1_000, 3)),
        n => format!("{n}ns"),
    }
}

/// `.5`, `.25`, … for a remainder of `digits` decimal places; empty for zero.
fn fraction(remainder: u32, digits: usize) -> String {
    if remainder == 0 {
        return String::new();
    }
    let padded = format!("{remainder:0digits$}");
    format!(".{}", padded.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn single_terms_parse_in_every_unit() {
        assert_eq!(parse_duration("200ms"), Ok(ms(200)));
        assert_eq!(parse_duration("3s"), Ok(ms(3_000)));
        assert_eq!(parse_duration("1m"), Ok(ms(60_000)));
        assert_eq!(parse_duration("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("7us"), Ok(Duration::from_micros(7)));
        assert_eq!(parse_duration("7µs"), Ok(Duration::from_micros(7)));
        assert_eq!(parse_duration("9ns"), Ok(Duration::from_nanos(9)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn terms_add_up_and_fractions_are_exact() {
        assert_eq!(parse_duration("1h30m"), Ok(ms(5_400_000)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1_500)));
        assert_eq!(parse_duration(".5s"), Ok(ms(500)));
        assert_eq!(parse_duration("0.1s"), Ok(ms(100)));
        assert_eq!(parse_duration("1m0.001s"), Ok(ms(60_001)));
        assert_eq!(
            parse_duration("1.0000000019s"),
            Ok(Duration::new(1, 1)),
            "digits past nanoseconds are dropped"
        );
    }

    #[test]
    fn malformed_durations_are_rejected_with_the_input_named() {
        for bad in [
            "", "5", "1.5", "s", "3x", "-1s", "1h-5m", "1 s", "1..5s", "3sec",
        ] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(err.contains(&format!("{bad:?}")), "{err}");
            assert!(
                err.contains("1h30m"),
                "the message shows the expected form: {err}"
            );
        }
        assert!(parse_duration("5").unwrap_err().contains("no unit"));
        assert!(
            parse_duration("99999999999999999999999h")
                .unwrap_err()
                .contains("too large")
        );
        assert!(
            parse_duration("600000000000000000h")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn format_writes_the_shortest_readable_form() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(ms(200)), "200ms");
        assert_eq!(format_duration(ms(1_500)), "1.5s");
        assert_eq!(format_duration(ms(3_000)), "3s");
        assert_eq!(format_duration(ms(60_000)), "1m");
        assert_eq!(format_duration(ms(3_600_000)), "1h");
        assert_eq!(format_duration(ms(5_400_000)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(3_605)), "1h0m5s");
        assert_eq!(format_duration(Duration::from_micros(1_500)), "1.5ms");
        assert_eq!(format_duration(Duration::from_nanos(1_001)), "1.001us");
        assert_eq!(format_duration(Duration::from_nanos(7)), "7ns");
    }

    #[test]
    fn parse_and_format_round_trip() {
        let samples = [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_nanos(999_999_999),
            ms(200),
            ms(1_500),
            Duration::new(3_661, 1),
            Duration::new(86_400 * 400, 123_456_789),
            Duration::new(u64::MAX, 999_999_999),
        ];
        for d in samples {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{d:?}");
        }
        for text in ["200ms", "3s", "1m", "1h", "1h30m", "1.5s", "1h0m0.25s"] {
            let parsed = parse_duration(text).expect(text);
            assert_eq!(format_duration(parsed), text);
        }
    }
}
