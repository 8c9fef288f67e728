//! RFC 3339 timestamps without a date-time dependency.

use std::cell::Cell;
use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A fraction in [0, 1): jitter and sampling without a dependency. A per-thread xorshift64*
/// generator, seeded once per thread from the process's random key hashed with the clock
/// (a few ns a call, where hashing the clock each time cost a clock read and a SipHash).
/// Not for anything that must be unpredictable.
pub(crate) fn random_fraction() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// 64 random bits, from the generator of [`random_fraction`].
pub(crate) fn random_u64() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = const { Cell::new(0) };
    }
    let next = |state: &Cell<u64>| {
        let mut x = state.get();
        if x == 0 {
            x = seed() | 1;
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    // A thread being torn down has no state left: a fresh seed will do.
    STATE.try_with(next).unwrap_or_else(|_| seed())
}

/// A random 64-bit seed: the process's random key hashed with the clock.
fn seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::time::Instant::now())
}

thread_local! {
    /// A reading of the monotonic clock left by a [`SharedReading`] for one [`shared_or_now`].
    static SHARED: Cell<Option<Instant>> = const { Cell::new(None) };
    /// Whether the [`SharedReading`] on this thread is that of a request's last line.
    #[cfg(feature = "axum")]
    static ENDING: Cell<bool> = const { Cell::new(false) };
}

/// A reading of the monotonic clock, left on this thread for the next [`shared_or_now`]
/// until it is dropped (a panic included): a request's layer times the request with it, and
/// the span it opens or closes meanwhile is timed by request metrics with the same reading
/// (a read costs as much as a request's span store takes to render a field).
#[cfg(feature = "axum")]
pub(crate) struct SharedReading(Instant);

#[cfg(feature = "axum")]
impl SharedReading {
    /// The clock now, shared.
    pub(crate) fn now() -> Self {
        let now = Instant::now();
        // A thread being torn down: each reads its own.
        let _ = SHARED.try_with(|shared| shared.set(Some(now)));
        SharedReading(now)
    }

    /// The clock now, shared, as a request's last line is written: request metrics count
    /// the request at that line ([`request_ends_here`]) rather than when its span closes,
    /// which a task spawned with `.in_current_span()` puts off until it ends.
    pub(crate) fn at_the_end() -> Self {
        let reading = Self::now();
        let _ = ENDING.try_with(|ending| ending.set(true));
        reading
    }

    pub(crate) fn at(&self) -> Instant {
        self.0
    }
}

/// Whether a request's last line is being written on this thread (see
/// [`SharedReading::at_the_end`]): the line itself, or a line logged meanwhile.
#[cfg(feature = "axum")]
pub(crate) fn request_ends_here() -> bool {
    ENDING.try_with(Cell::get).unwrap_or(false)
}

#[cfg(feature = "axum")]
impl Drop for SharedReading {
    /// Forgets the reading, if no one took it: a later read is later.
    fn drop(&mut self) {
        let _ = SHARED.try_with(|shared| shared.set(None));
        let _ = ENDING.try_with(|ending| ending.set(false));
    }
}

/// The reading a [`SharedReading`] left on this thread, taken, or the clock now.
pub(crate) fn shared_or_now() -> Instant {
    SHARED
        .try_with(Cell::take)
        .ok()
        .flatten()
        .unwrap_or_else(Instant::now)
}

/// A duration in milliseconds, rounded to the microsecond: a request's `duration_ms` and its
/// latency in request metrics. Rounded in integers (a division by a constant is a multiply),
/// then divided once: the double nearest to a whole number of thousandths, which
/// [`write_f64`](crate::json::write_f64) writes without its general path.
pub(crate) fn millis_to_the_microsecond(duration: Duration) -> f64 {
    let micros = duration
        .as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(u64::from((duration.subsec_nanos() + 500) / 1000));
    micros as f64 / 1e3
}

/// A UTC civil date and time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Civil {
    pub(crate) year: i64,
    pub(crate) month: u32,
    pub(crate) day: u32,
    pub(crate) hour: u32,
    pub(crate) minute: u32,
    pub(crate) second: u32,
    pub(crate) nanos: u32,
}

impl Civil {
    /// Howard Hinnant's `civil_from_days`, for any instant after 1970 (earlier clamps to 1970).
    pub(crate) fn from_system_time(t: SystemTime) -> Self {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let secs = since.as_secs() as i64;
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem % 3600 / 60,
            second: rem % 60,
            nanos: since.subsec_nanos(),
        }
    }
}

/// `2026-11-29T03:49:31.123456789Z`, as the agent writes `read` and `preread`.
#[cfg_attr(not(feature = "emulator"), allow(dead_code))]
pub(crate) fn rfc3339_nanos(t: SystemTime) -> String {
    let c = Civil::from_system_time(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.nanos
    )
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Nanoseconds since the Unix epoch of an RFC 3339 timestamp (`2020-10-02T00:51:13.410254284Z`,
/// any fraction length, `Z` or a `±HH:MM` offset); negative before 1970 (the Go zero time
/// `0001-01-01T00:00:00Z` included). `None` when it is not one.
pub(crate) fn parse_rfc3339(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)? as u32, digits(8..10)? as u32);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut at = 19;
    let mut nanos: i128 = 0;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            if at - start < 9 {
                nanos = nanos * 10 + i128::from(b[at] - b'0');
            }
            at += 1;
        }
        if at == start {
            return None;
        }
        for _ in (at - start)..9 {
            nanos *= 10;
        }
    }
    let offset_secs: i64 = match b.get(at..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hm = [h1, h2, m1, m2];
            if !hm.iter().all(|d| d.is_ascii_digit()) {
                return None;
            }
            let v = |d: &u8| i64::from(d - b'0');
            let secs = (v(h1) * 10 + v(h2)) * 3600 + (v(m1) * 10 + v(m2)) * 60;
            if *sign == b'+' { secs } else { -secs }
        }
        _ => return None,
    };
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_secs;
    Some(i128::from(secs) * 1_000_000_000 + nanos)
}

/// `2026-11-29T03:49:31.123456Z`, or with `fraction_digits` 3, `2026-11-29T03:49:31.123Z`. The
/// date and time to the second are worked out once per second per thread; each event writes
/// only the fraction.
pub(crate) fn write_rfc3339(
    w: &mut impl fmt::Write,
    now: SystemTime,
    fraction_digits: usize,
) -> fmt::Result {
    thread_local! {
        static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
    }
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let mut buf = *b"0000-00-00T00:00:00.000000Z";
    let put = |buf: &mut [u8], at: usize, digits: usize, mut value: u64| {
        for i in (at..at + digits).rev() {
            buf[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    let (cached_secs, prefix) = SECOND.with(Cell::get);
    if cached_secs == secs {
        buf[..19].copy_from_slice(&prefix);
    } else {
        let c = Civil::from_system_time(now);
        put(&mut buf, 0, 4, c.year.clamp(0, 9999) as u64);
        put(&mut buf, 5, 2, c.month.into());
        put(&mut buf, 8, 2, c.day.into());
        put(&mut buf, 11, 2, c.hour.into());
        put(&mut buf, 14, 2, c.minute.into());
        put(&mut buf, 17, 2, c.second.into());
        let mut prefix = [0; 19];
        prefix.copy_from_slice(&buf[..19]);
        SECOND.with(|cell| cell.set((secs, prefix)));
    }
    let digits = fraction_digits.clamp(1, 6);
    put(
        &mut buf,
        20,
        digits,
        u64::from(since_epoch.subsec_micros()) / 10u64.pow(6 - digits as u32),
    );
    buf[20 + digits] = b'Z';
    // Only ASCII digits and separators were written.
    w.write_str(std::str::from_utf8(&buf[..21 + digits]).map_err(|_| fmt::Error)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_rounded_to_the_microsecond() {
        let millis = millis_to_the_microsecond;
        assert_eq!(millis(Duration::from_nanos(1_234_567)), 1.235);
        assert_eq!(millis(Duration::from_nanos(1_234_500)), 1.235);
        assert_eq!(millis(Duration::from_nanos(1_234_499)), 1.234);
        assert_eq!(millis(Duration::from_nanos(499)), 0.0);
        assert_eq!(millis(Duration::from_nanos(999_999_999)), 1000.0);
        assert_eq!(millis(Duration::from_secs(86_400)), 86_400_000.0);
        assert_eq!(millis(Duration::MAX), u64::MAX as f64 / 1e3);
    }

    #[test]
    fn parses_rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2020-10-02T00:51:13.410254284Z"),
            Some(1_601_599_873_410_254_284)
        );
        assert_eq!(
            parse_rfc3339("2020-10-02T00:51:13.4Z"),
            Some(1_601_599_873_400_000_000)
        );
        assert_eq!(
            parse_rfc3339("2020-10-02T02:51:13+02:00"),
            Some(1_601_599_873_000_000_000)
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00.0000000001Z"),
            Some(1_709_164_800_000_000_000)
        );
        assert!(parse_rfc3339("0001-01-01T00:00:00Z").unwrap() < 0);
        for bad in [
            "",
            "2020-10-02",
            "2020-13-02T00:00:00Z",
            "2020-10-02T00:00:00",
            "2020-10-02T00:00:00.Z",
            "x020-10-02T00:00:00Z",
            "2020-10-02T00:00:00+0200",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        // Round trip with the formatter.
        let t = UNIX_EPOCH + Duration::new(1_767_225_599, 123_456_789);
        assert_eq!(
            parse_rfc3339(&rfc3339_nanos(t)),
            Some(1_767_225_599_123_456_789)
        );
    }

    #[test]
    fn known_instants() {
        let at = |secs, nanos| UNIX_EPOCH + Duration::new(secs, nanos);
        assert_eq!(rfc3339_nanos(at(0, 0)), "1970-01-01T00:00:00.000000000Z");
        // 2020-10-02T00:51:13.410254284Z, from the EC2 stats example.
        assert_eq!(
            rfc3339_nanos(at(1_601_599_873, 410_254_284)),
            "2020-10-02T00:51:13.410254284Z"
        );
        // A leap day and the last second of a year.
        assert_eq!(
            rfc3339_nanos(at(1_709_164_800, 0)),
            "2024-02-29T00:00:00.000000000Z"
        );
        assert_eq!(
            rfc3339_nanos(at(1_767_225_599, 1)),
            "2025-12-31T23:59:59.000000001Z"
        );
    }

    #[test]
    fn timestamps() {
        let at = |secs, nanos| {
            let mut out = String::new();
            write_rfc3339(&mut out, UNIX_EPOCH + Duration::new(secs, nanos), 6).unwrap();
            out
        };
        assert_eq!(
            at(1_601_599_873, 410_254_284),
            "2020-10-02T00:51:13.410254Z"
        );
        // The same second again (cached), then the next one.
        assert_eq!(
            at(1_601_599_873, 999_999_999),
            "2020-10-02T00:51:13.999999Z"
        );
        assert_eq!(at(1_601_599_874, 5_000), "2020-10-02T00:51:14.000005Z");
        assert_eq!(at(1_709_164_799, 0), "2024-02-28T23:59:59.000000Z");
        let mut millis = String::new();
        write_rfc3339(
            &mut millis,
            UNIX_EPOCH + Duration::new(1_601_599_873, 410_954_284),
            3,
        )
        .unwrap();
        assert_eq!(millis, "2020-10-02T00:51:13.410Z");
    }
}
