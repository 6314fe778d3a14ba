//! Byte-string comparison for the component: a `memcmp` that compares eight
//! bytes at a time, in place of wasi-libc's, which compares one at a time.
//!
//! Every `BTreeMap<String, _>` lookup of the mapping engine (row columns,
//! event attributes) compares keys with `memcmp`. Column names share long
//! prefixes (`InitiatingProcessParent…`, `ProcessVersionInfo…`), so in the
//! component wasi-libc's byte loop was the largest single cost of mapping a
//! row: 23 % of the time in a profile of the DeviceProcessEvents benchmark
//! (docs/performance.md). Natively, glibc's vectorised `memcmp` is used.

use std::cmp::Ordering;

/// Compares the first `min(a.len(), b.len())` bytes of `a` and `b` as
/// unsigned bytes, the way `memcmp` does: negative, zero or positive.
///
/// It must not compare slices with `==` or `cmp`: in the component those
/// call `memcmp`, which is this function.
pub fn compare(a: &[u8], b: &[u8]) -> i32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut words_a = a.chunks_exact(8);
    let mut words_b = b.chunks_exact(8);
    for (x, y) in words_a.by_ref().zip(words_b.by_ref()) {
        // Big-endian: the first differing byte decides, as in memcmp.
        match word(x).cmp(&word(y)) {
            Ordering::Equal => {}
            Ordering::Less => return -1,
            Ordering::Greater => return 1,
        }
    }
    for (x, y) in words_a.remainder().iter().zip(words_b.remainder()) {
        if x != y {
            return i32::from(*x) - i32::from(*y);
        }
    }
    0
}

fn word(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(bytes);
    u64::from_be_bytes(w)
}

/// The C `memcmp` of the component, which the linker takes instead of
/// wasi-libc's. Rust's slice and string comparisons call it.
///
/// # Safety
/// `a` and `b` must each point to `n` readable bytes, as for C's `memcmp`.
#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    if n == 0 {
        return 0;
    }
    // SAFETY: memcmp's contract, stated above; `n` is not 0.
    let (a, b) = unsafe { (std::slice::from_raw_parts(a, n), std::slice::from_raw_parts(b, n)) };
    compare(a, b)
}

/// `bcmp`, which compilers emit where only equality matters.
///
/// # Safety
/// As for [`memcmp`].
#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the same contract.
    unsafe { memcmp(a, b, n) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn expected(a: &[u8], b: &[u8]) -> Ordering {
        let n = a.len().min(b.len());
        a[..n].cmp(&b[..n])
    }

    #[test]
    fn orders_like_unsigned_bytes() {
        assert_eq!(compare(b"", b""), 0);
        assert_eq!(compare(b"InitiatingProcessParentId", b"InitiatingProcessParentId"), 0);
        assert!(compare(b"InitiatingProcessParentFileName", b"InitiatingProcessParentId") < 0);
        assert!(compare(b"abcdefgh\xff", b"abcdefgh\x01") > 0, "bytes are unsigned");
        assert!(compare(b"\x80bcdefghij", b"\x7fbcdefghij") > 0, "in a whole word too");
        assert_eq!(compare(b"abc", b"abcdef"), 0, "only the shorter length is compared");
    }

    proptest! {
        #[test]
        fn agrees_with_the_standard_library(
            prefix in proptest::collection::vec(any::<u8>(), 0..40),
            a in proptest::collection::vec(any::<u8>(), 0..20),
            b in proptest::collection::vec(any::<u8>(), 0..20),
        ) {
            let a = [prefix.as_slice(), &a].concat();
            let b = [prefix.as_slice(), &b].concat();
            prop_assert_eq!(compare(&a, &b).cmp(&0), expected(&a, &b));
        }
    }
}
