//! Facts worked out once per callsite, by its metadata's address, and kept per thread.

use std::cell::RefCell;
use std::thread::LocalKey;

/// The most addresses an [`AddressMap`] keeps: its table has at most twice as many slots.
const MAX_ADDRESSES: usize = 256;

/// The addresses most recently seen, up to [`MAX_ADDRESSES`], in an open-addressing table.
/// It allocates only when it grows, so a thread past its first use of each callsite
/// allocates nothing for it; a thread that meets more addresses than that starts the table
/// afresh, in the memory it has, so that a thread costs at most a few tens of KiB however
/// many callsites a service has (a blocking pool has hundreds of threads).
pub(super) struct AddressMap<V> {
    /// `(address, value)`; address 0 marks an empty slot. A power of two long, at most half
    /// full.
    slots: Vec<(usize, V)>,
    len: usize,
}

impl<V: Copy + Default> AddressMap<V> {
    pub(super) const fn new() -> Self {
        AddressMap {
            slots: Vec::new(),
            len: 0,
        }
    }

    /// The value for `address`, made by `make` the first time.
    pub(super) fn get_or_insert_with(&mut self, address: usize, make: impl FnOnce() -> V) -> V {
        match self.slots.get(self.find(address)) {
            Some(&(key, value)) if key == address => value,
            _ => self.insert(address, make()),
        }
    }

    /// Puts a new address in the table, grown first if it would be more than half full
    /// (lookups never grow it), or emptied first if it holds all it may.
    fn insert(&mut self, address: usize, value: V) -> V {
        if self.len == MAX_ADDRESSES {
            self.slots.fill((0, V::default()));
            self.len = 0;
        }
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let at = self.find(address);
        self.slots[at] = (address, value);
        self.len += 1;
        value
    }

    /// Where `address` is, or the empty slot where it would go (0 when there are no slots).
    fn find(&self, address: usize) -> usize {
        let Some(mask) = self.slots.len().checked_sub(1) else {
            return 0;
        };
        let mut at = (spread(address) >> 32) as usize & mask;
        // Never full: some slot is empty.
        while self.slots[at].0 != 0 && self.slots[at].0 != address {
            at = (at + 1) & mask;
        }
        at
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(64);
        let old = std::mem::replace(&mut self.slots, vec![(0, V::default()); size]);
        for (key, value) in old.into_iter().filter(|&(key, _)| key != 0) {
            let at = self.find(key);
            self.slots[at] = (key, value);
        }
    }
}

/// An address spread over the high bits (statics are aligned, and often next to each
/// other): the table takes the bits from the 32nd up.
fn spread(address: usize) -> u64 {
    (address as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The value for `address` (not 0) in this thread's `map`, made by `make` the first time;
/// made each time, uncached, in the rare case the map is in use already.
pub(super) fn per_thread<V: Copy + Default>(
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
    fn each_address_keeps_its_value_through_growth() {
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
        // Made once each, whatever the growth in between.
        assert_eq!(made, MAX_ADDRESSES);
        // At most half full, and lookups of known addresses never grow it.
        assert!(map.len * 2 <= map.slots.len());
        let size = map.slots.len();
        for address in addresses {
            map.get_or_insert_with(address, || unreachable!());
        }
        assert_eq!(map.slots.len(), size);
    }

    #[test]
    fn more_addresses_than_it_keeps_never_grow_it_further() {
        let mut map = AddressMap::new();
        for round in 0..2 {
            for address in (8..8 * 10_000).step_by(8) {
                assert_eq!(map.get_or_insert_with(address, || address + 1), address + 1);
            }
            assert!(map.len <= MAX_ADDRESSES, "round {round}");
            assert!(map.slots.len() <= 2 * MAX_ADDRESSES, "round {round}");
        }
    }
}
