//! proxy-wasm's serialized header map ("pairs"), both ways.
//!
//! One `proxy_get_header_map_pairs` call returns a whole header map, so the filter reads the
//! request (and the response) with one host call however many headers it needs: every host call
//! that returns data also calls back into the VM to allocate, which is most of what a filter pays
//! per request. Layout: `count: u32 LE`, then `count × (name_len: u32 LE, value_len: u32 LE)`,
//! then each name and each value followed by a NUL byte.

/// The value of header `name` (lower case, as Envoy keeps them) in a serialized map; the first
/// one when repeated. `None` when absent or when `map` is malformed.
pub fn get<'a>(map: &'a [u8], name: &str) -> Option<&'a [u8]> {
    iter(map)?
        .find(|(n, _)| *n == name.as_bytes())
        .map(|(_, v)| v)
}

/// Values looked up by [`Found::lookup`]: slot `i` holds the first value of `names[i]`. Up to
/// [`INLINE`] slots live on the stack, so a request's lookups allocate nothing.
pub enum Found<'a> {
    Inline([Option<&'a [u8]>; INLINE], usize),
    Heap(Vec<Option<&'a [u8]>>),
}

pub const INLINE: usize = 8;

impl<'a> Found<'a> {
    /// Looks up `names` (lower case) in one pass over a serialized map: one scan however many
    /// headers are wanted. A malformed map finds nothing past the damage.
    pub fn lookup(map: &'a [u8], names: &[String]) -> Self {
        Self::lookup_in(map, names, &[])
    }

    /// [`Found::lookup`], with `table` = [`table`]`(names)`: past [`INLINE`] names each header
    /// of the map is then hashed, not compared with every name (configurations with many label
    /// headers pay per header of the map, not per name).
    pub fn lookup_in(map: &'a [u8], names: &[String], table: &[u32]) -> Self {
        if names.len() <= INLINE {
            let mut found = Found::Inline([None; INLINE], names.len());
            find_all(map, names, found.slots_mut());
            return found;
        }
        let mut slots = vec![None; names.len()];
        if table.len() >= names.len() * 2 {
            find_hashed(map, names, table, &mut slots);
        } else {
            find_all(map, names, &mut slots);
        }
        Found::Heap(slots)
    }

    /// The value of `names[i]`.
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        self.slots().get(i).copied().flatten()
    }

    /// The values of `names[from..]`.
    pub fn from(&self, from: usize) -> &[Option<&'a [u8]>] {
        self.slots().get(from..).unwrap_or_default()
    }

    fn slots(&self) -> &[Option<&'a [u8]>] {
        match self {
            Found::Inline(slots, n) => slots.get(..*n).unwrap_or_default(),
            Found::Heap(slots) => slots,
        }
    }

    fn slots_mut(&mut self) -> &mut [Option<&'a [u8]>] {
        match self {
            Found::Inline(slots, n) => slots.get_mut(..*n).unwrap_or_default(),
            Found::Heap(slots) => slots,
        }
    }
}

/// Fills `found[i]` with the first value of `names[i]`; stops once every name is found.
fn find_all<'a>(map: &'a [u8], names: &[String], found: &mut [Option<&'a [u8]>]) {
    let Some(pairs) = iter(map) else {
        return;
    };
    let mut missing = names.len().min(found.len());
    for (name, value) in pairs {
        for (want, slot) in names.iter().zip(found.iter_mut()) {
            if slot.is_none() && want.as_bytes() == name {
                *slot = Some(value);
                missing -= 1;
            }
        }
        if missing == 0 {
            return;
        }
    }
}

/// A hash table of `names` for [`Found::lookup_in`]: open addressing, each slot the index of a
/// name plus one (0: empty), twice as many slots as names, a power of two.
pub fn table(names: &[String]) -> Vec<u32> {
    let mut slots = vec![0u32; (names.len() * 2).next_power_of_two()];
    let mask = slots.len() - 1;
    for (i, name) in names.iter().enumerate() {
        let mut at = hash(name.as_bytes()) & mask;
        while slots.get(at).is_some_and(|&s| s != 0) {
            at = (at + 1) & mask;
        }
        if let Some(slot) = slots.get_mut(at) {
            *slot = u32::try_from(i + 1).unwrap_or(0);
        }
    }
    slots
}

/// FNV-1a: a few instructions per byte of a header name.
fn hash(name: &[u8]) -> usize {
    let h = name.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    usize::try_from(h).unwrap_or(0)
}

/// [`find_all`] through `table`: per header of the map a hash and, mostly, one comparison.
fn find_hashed<'a>(map: &'a [u8], names: &[String], table: &[u32], found: &mut [Option<&'a [u8]>]) {
    let Some(pairs) = iter(map) else {
        return;
    };
    let mask = table.len().wrapping_sub(1);
    let mut missing = names.len().min(found.len());
    for (name, value) in pairs {
        let mut at = hash(name) & mask;
        // Up to the next empty slot: every slot of this name (names may repeat).
        while let Some(&slot) = table.get(at).filter(|&&s| s != 0) {
            let i = usize::try_from(slot - 1).unwrap_or(usize::MAX);
            if names.get(i).is_some_and(|n| n.as_bytes() == name) {
                if let Some(free) = found.get_mut(i).filter(|f| f.is_none()) {
                    *free = Some(value);
                    missing -= 1;
                }
            }
            at = (at + 1) & mask;
        }
        if missing == 0 {
            return;
        }
    }
}

/// The (name, value) pairs of a serialized map; `None` when its header is malformed. A map that
/// is cut short ends the iteration early instead of failing.
pub fn iter(map: &[u8]) -> Option<impl Iterator<Item = (&[u8], &[u8])>> {
    let (count, rest) = read_u32(map)?;
    let sizes_len = count.checked_mul(8)?;
    let (sizes, mut data) = rest.split_at_checked(sizes_len)?;
    let mut sizes = sizes.chunks_exact(8);
    Some(std::iter::from_fn(move || {
        let entry = sizes.next()?;
        let (name_len, entry) = read_u32(entry)?;
        let (value_len, _) = read_u32(entry)?;
        let (name, rest) = data.split_at_checked(name_len)?;
        let rest = rest.strip_prefix(b"\0")?;
        let (value, rest) = rest.split_at_checked(value_len)?;
        data = rest.strip_prefix(b"\0")?;
        Some((name, value))
    }))
}

/// Serializes `pairs` for the host (e.g. a sampler request's headers).
pub fn serialize(pairs: &[(&str, &str)]) -> Vec<u8> {
    let data_len: usize = pairs.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
    let mut out = Vec::with_capacity(4 + pairs.len() * 8 + data_len);
    out.extend_from_slice(&u32_le(pairs.len()));
    for (name, value) in pairs {
        out.extend_from_slice(&u32_le(name.len()));
        out.extend_from_slice(&u32_le(value.len()));
    }
    for (name, value) in pairs {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value.as_bytes());
        out.push(0);
    }
    out
}

/// A decimal header value such as `:status` or `content-length`; `None` unless it is all digits
/// and fits.
pub fn decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

#[inline(always)]
fn read_u32(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let (head, rest) = bytes.split_first_chunk::<4>()?;
    Some((usize::try_from(u32::from_le_bytes(*head)).ok()?, rest))
}

fn u32_le(n: usize) -> [u8; 4] {
    u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes()
}

#[cfg(test)]
#[path = "../tests/unit/pairs.rs"]
mod tests;
