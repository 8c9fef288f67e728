//! Reserved keys: the keys a formatter writes itself, which event and span fields must not
//! take (they are written as `fields.<name>`), and the name bits that rule out most clashes
//! without comparing names.

use std::borrow::Cow;

use once_cell::sync::Lazy;

use crate::fields::{ExtraFields, FieldScheme};

/// Keys the formatter writes itself.
const BASE_KEYS: &[&str] = &["timestamp", "level", "target", "message", "truncated"];
/// Keys the formatter writes on lines inside a traced span (feature `opentelemetry`): the
/// formatter's on those lines only, so that a program without tracing keeps its own fields
/// of these names whatever features the dependency graph turns on.
const TRACE_KEYS: &[&str] = &["trace_id", "span_id", "trace_flags", "xray_trace_id"];
/// The [`name_bit`]s of [`TRACE_KEYS`]: most names are ruled out without a comparison.
const TRACE_BITS: u64 = {
    let mut bits = 0;
    let mut i = 0;
    while i < TRACE_KEYS.len() {
        bits |= name_bit(TRACE_KEYS[i]);
        i += 1;
    }
    bits
};
/// The prefix of renamed keys; reserved itself, so that the renaming is one-to-one.
pub(super) const RENAMED: &str = "fields.";

/// The keys one configuration reserves: the formatter's own, the field scheme's keys and
/// key families, and the keys its options and static fields add.
#[derive(Clone, Debug)]
pub(super) struct ReservedKeys {
    exact: Vec<Cow<'static, str>>,
    /// `exact` by each key's [`name_bit`] (its index): a name is compared with the keys of
    /// its own bit only, one or none as a rule.
    by_bit: Vec<Vec<Cow<'static, str>>>,
    prefixes: Vec<&'static str>,
    /// The [`name_bit`]s of `exact` and the first bytes of `prefixes`: most names are ruled
    /// out without a comparison (every span field is checked when its span is created).
    exact_bits: u64,
    prefix_starts: [u64; 4],
    /// The [`name_bit`]s of the keys that only this configuration's options add: span
    /// stores, built before any formatter reads them, know only what every configuration
    /// may reserve ([`ReservedKeys::any`]).
    own_mask: u64,
}

impl ReservedKeys {
    /// The formatter's keys, and those of `scheme` with `extra`.
    pub(super) fn new(scheme: FieldScheme, extra: ExtraFields) -> Self {
        let mut exact: Vec<Cow<'static, str>> = BASE_KEYS
            .iter()
            .copied()
            .chain(scheme.top_level_keys(extra))
            .map(Cow::Borrowed)
            .collect();
        exact.sort_unstable();
        exact.dedup();
        let mut keys = ReservedKeys {
            exact,
            by_bit: Vec::new(),
            prefixes: std::iter::once(RENAMED)
                .chain(scheme.reserved_prefixes().iter().copied())
                .collect(),
            exact_bits: 0,
            prefix_starts: [0; 4],
            own_mask: 0,
        };
        keys.index();
        keys
    }

    /// Sorts the exact keys by their name bits, and notes the first bytes of the prefixes.
    fn index(&mut self) {
        self.by_bit = vec![Vec::new(); 64];
        self.exact_bits = 0;
        for key in &self.exact {
            let bit = name_bit(key);
            self.by_bit[bit.trailing_zeros() as usize].push(key.clone());
            self.exact_bits |= bit;
        }
        self.prefix_starts = [0; 4];
        for prefix in &self.prefixes {
            if let Some(&first) = prefix.as_bytes().first() {
                self.prefix_starts[usize::from(first >> 6)] |= 1 << (first & 63);
            }
        }
    }

    /// Every key and key family some configuration reserves, trace keys included: what a
    /// span's store notes of its names, before it knows which formatters will read it.
    pub(super) fn any() -> &'static ReservedKeys {
        static ANY: Lazy<ReservedKeys> = Lazy::new(|| {
            let mut any = ReservedKeys::new(FieldScheme::Nested, ExtraFields::ALL);
            for scheme in FieldScheme::ALL {
                any.exact.extend(
                    scheme
                        .top_level_keys(ExtraFields::ALL)
                        .into_iter()
                        .chain(TRACE_KEYS.iter().copied())
                        .map(Cow::Borrowed),
                );
                any.prefixes.extend(scheme.reserved_prefixes());
            }
            any.exact.sort_unstable();
            any.exact.dedup();
            any.prefixes.sort_unstable();
            any.prefixes.dedup();
            any.index();
            any
        });
        &ANY
    }

    /// Reserves a key that this configuration's options write.
    pub(super) fn add(&mut self, key: Cow<'static, str>) {
        if !self.exact.contains(&key) {
            self.own_mask |= name_bit(&key);
            self.exact.push(key);
            self.index();
        }
    }

    /// Whether a field named `name`, whose [`name_bit`] is `bit`, is renamed; `traced` when
    /// the line carries trace ids.
    pub(super) fn contains(&self, name: &str, bit: u64, traced: bool) -> bool {
        let may_start = name
            .as_bytes()
            .first()
            .is_some_and(|&b| self.prefix_starts[usize::from(b >> 6)] & (1 << (b & 63)) != 0);
        (may_start && self.prefixes.iter().any(|prefix| name.starts_with(prefix)))
            || (self.exact_bits & bit != 0
                && self.by_bit[bit.trailing_zeros() as usize]
                    .iter()
                    .any(|key| key == name))
            || (traced && TRACE_BITS & bit != 0 && TRACE_KEYS.contains(&name))
    }

    /// The [`name_bit`]s of the keys only this configuration reserves.
    pub(super) fn own_mask(&self) -> u64 {
        self.own_mask
    }
}

/// One of 64 bits for a field name: equal names have equal bits, so names whose bits differ
/// cannot be equal, and a set of names as the union of their bits rules out most shared names
/// without a comparison. Eight bytes a multiply (a span's names are hashed each time it is
/// made, and a multiply a byte is a chain of latencies), then mixed: names that differ only
/// in their last byte (`f01`, `f02`) are the commonest look-alikes.
pub(crate) const fn name_bit(name: &str) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut rest = name.as_bytes();
    let mut hash = (rest.len() as u64).wrapping_mul(K);
    while let Some((word, tail)) = rest.split_first_chunk::<8>() {
        hash = (hash.rotate_left(5) ^ u64::from_le_bytes(*word)).wrapping_mul(K);
        rest = tail;
    }
    let mut last = 0;
    let mut i = 0;
    while i < rest.len() {
        last |= (rest[i] as u64) << (8 * i);
        i += 1;
    }
    hash = (hash.rotate_left(5) ^ last).wrapping_mul(K);
    let mixed = (hash ^ (hash >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    1 << (mixed >> 58)
}

/// Whether two names (or other short strings: routes, methods) are equal: up to 16 bytes as
/// two words, without a call to `memcmp` (a request's fields are matched by name several
/// times when it ends).
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    // A callsite's name, met again: the same address.
    if std::ptr::eq(a, b) {
        return true;
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    match (a.first_chunk::<8>(), b.first_chunk::<8>()) {
        // Two words, overlapping under 16 bytes.
        (Some(a_first), Some(b_first)) if a.len() <= 16 => {
            a_first == b_first && a.last_chunk::<8>() == b.last_chunk::<8>()
        }
        (Some(_), Some(_)) => a == b,
        _ => a.iter().zip(b).all(|(x, y)| x == y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alike_names_spread_over_the_bits() {
        // 20 names into 64 bits: about 17 bits expected; all in one bit (as when the last
        // byte is not mixed in) sends every name to the slow path.
        let bits = |names: &[String]| {
            names
                .iter()
                .fold(0u64, |mask, name| mask | name_bit(name))
                .count_ones()
        };
        let numbered: Vec<String> = (1..=20).map(|i| format!("f{i:02}")).collect();
        let letters: Vec<String> = ('a'..='t').map(String::from).collect();
        let ids: Vec<String> = ["order", "offer", "owner", "other", "outer"]
            .iter()
            .flat_map(|stem| [format!("{stem}_id"), format!("{stem}_ids")])
            .collect();
        assert!(bits(&numbered) >= 12, "{}", bits(&numbered));
        assert!(bits(&letters) >= 12, "{}", bits(&letters));
        assert!(bits(&ids) >= 6, "{}", bits(&ids));
        // Long names that differ only past their first eight bytes, near their end.
        let long: Vec<String> = (1..=20)
            .map(|i| format!("http.request.header.x_{i:02}"))
            .collect();
        assert!(bits(&long) >= 12, "{}", bits(&long));
    }

    #[test]
    fn names_are_the_same_byte_for_byte() {
        let names = [
            "",
            "a",
            "b",
            "ab",
            "abcdefg",
            "abcdefh",
            "abcdefgh",
            "abcdefgi",
            "abcdefghi",
            "bbcdefghi",
            "abcdefghijklmnop",
            "abcdefghijklmnoq",
            "bbcdefghijklmnop",
            "abcdefghijklmnopq",
            "abcdefghijklmnopr",
            "http.route",
            "http.rout",
        ];
        for a in names {
            for b in names {
                assert_eq!(same_name(a, b), a == b, "{a:?} {b:?}");
                // Equal contents at other addresses.
                let copy = String::from(b);
                assert_eq!(same_name(a, copy.as_str()), a == b, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn one_configuration_and_every_configuration() {
        let mut nested = ReservedKeys::new(FieldScheme::Nested, ExtraFields::NONE);
        for name in ["level", "message", "ecs", "ecs.cluster", "fields.x"] {
            assert!(nested.contains(name, name_bit(name), false), "{name}");
        }
        for name in ["ecs_cluster", "container.name", "trace_id", "service", "é"] {
            assert!(!nested.contains(name, name_bit(name), false), "{name}");
        }
        assert!(
            nested.contains("trace_id", name_bit("trace_id"), true),
            "on traced lines"
        );
        nested.add(Cow::Borrowed("service"));
        assert!(nested.contains("service", name_bit("service"), false));
        assert_eq!(nested.own_mask(), name_bit("service"));
        let any = ReservedKeys::any();
        for name in [
            "ecs.cluster",
            "ecs_cluster",
            "container.name",
            "cloud.region",
            "trace_id",
        ] {
            assert!(any.contains(name, name_bit(name), false), "{name}");
        }
        assert!(!any.contains("order_id", name_bit("order_id"), false));
    }
}
