//! Facts worked out once per callsite, by its metadata's address, and kept per thread.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::thread::LocalKey;

/// The most addresses an [`AddressMap`] keeps.
const MAX_ADDRESSES: usize = 256;

/// The addresses most recently seen, up to [`MAX_ADDRESSES`]. It allocates only when it
/// grows, so a thread past its first use of each callsite allocates nothing for it; a thread
/// that meets more addresses than that starts afresh, in the memory it has, so that a thread
/// costs at most a few KiB however many callsites a service has (a blocking pool has
/// hundreds of threads). A std `HashMap` hashing the address by one multiplication: an
/// open-addressing table of our own was no faster (`BENCHMARKS.md`).
pub(super) struct AddressMap<V> {
    map: HashMap<usize, V, BuildHasherDefault<AddressHasher>>,
}

impl<V: Copy> AddressMap<V> {
    pub(super) const fn new() -> Self {
        AddressMap {
            map: HashMap::with_hasher(BuildHasherDefault::new()),
        }
    }

    /// The value for `address`, made by `make` the first time.
    pub(super) fn get_or_insert_with(&mut self, address: usize, make: impl FnOnce() -> V) -> V {
        if let Some(&value) = self.map.get(&address) {
            return value;
        }
        if self.map.len() == MAX_ADDRESSES {
            self.map.clear();
        }
        let value = make();
        self.map.insert(address, value);
        value
    }
}

/// Hashes an address: spread over the high bits, which the table takes (statics are
/// aligned, and often next to each other).
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only addresses are hashed (`write_usize`); any other key still gets a hash.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_usize(&mut self, address: usize) {
        self.0 = (address as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// The value for `address` (not 0) in this thread's `map`, made by `make` the first time;
/// made each time, uncached, in the rare case the map is in use already.
pub(super) fn per_thread<V: Copy>(
    map: &'static LocalKey<RefCell<AddressMap<V>>>,
    address: usize,
    make: impl FnOnce() -> V,
) -> V {
    // A thread-local destructor that logs: the map is gone, the value is made uncached.
    if map.try_with(|_| ()).is_err() {
        return make();
    }
    map.with(|map| match map.try_borrow_mut() {
        Ok(mut map) => map.get_or_insert_with(address, make),
        Err(_) => make(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_keeps_its_value() {
        let mut map = AddressMap::new();
        let mut made = 0;
        let addresses = (8..8 * (MAX_ADDRESSES + 1)).step_by(8);
        for round in 0..3 {
            for address in addresses.clone() {
                let value = map.get_or_insert_with(address, || {
                    made += 1;
                    address * 3
                });
                assert_eq!(value, address * 3, "round {round}");
            }
        }
        // Made once each.
        assert_eq!(made, MAX_ADDRESSES);
    }

    #[test]
    fn more_addresses_than_it_keeps_never_grow_it_further() {
        let mut map = AddressMap::new();
        let mut capacity = None;
        for round in 0..2 {
            for address in (8..8 * 10_000).step_by(8) {
                assert_eq!(map.get_or_insert_with(address, || address + 1), address + 1);
            }
            assert!(map.map.len() <= MAX_ADDRESSES, "round {round}");
            // The memory of the first round serves the second.
            assert_eq!(
                *capacity.get_or_insert(map.map.capacity()),
                map.map.capacity()
            );
        }
    }
}
