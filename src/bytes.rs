//! Byte searches and copies for the short strings of a row.
//!
//! Most strings of a row are short (names, hashes, numbers as text), too
//! short for `memchr` to pay its set-up, and a search of several kinds of
//! byte at once (a quote, a backslash, a control character) is not one
//! `memchr` has. The searches look at a 64-bit word at a time, as `memchr`
//! does without vector instructions, and finish the tail a byte at a time.
//! The copies ([`put`]) append short runs in blocks of a fixed size, which
//! in the component spares a call out to the host (`memory.copy`).

const ONES: u64 = u64::from_le_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);

/// The high bit of each byte of `word` below `n` (`n` at most 0x80), and
/// perhaps of bytes above the lowest such byte (a borrow), never below it.
#[inline(always)]
pub fn below(word: u64, n: u8) -> u64 {
    word.wrapping_sub(ONES * u64::from(n)) & !word & HIGHS
}

/// The high bit of each byte of `word` equal to `byte`, and perhaps of
/// bytes above the lowest such byte, never below it.
#[inline(always)]
pub fn equal(word: u64, byte: u8) -> u64 {
    below(word ^ (ONES * u64::from(byte)), 1)
}

/// Where the first byte of `bytes` is that `is` picks. `in_word` picks the
/// same bytes in a little-endian word: the high bit of each byte it picks,
/// perhaps of bytes above the lowest one, never of one below (as [`below`]
/// and [`equal`] give, and their `|`).
#[inline(always)]
pub fn find(bytes: &[u8], in_word: impl Fn(u64) -> u64, is: impl Fn(u8) -> bool) -> Option<usize> {
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let found = in_word(u64::from_le_bytes(chunk.try_into().unwrap_or_default()));
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks.remainder().iter().position(|&b| is(b)).map(|i| at + i)
}

/// Where the first byte of `bytes` that a JSON string cannot simply hold
/// is: a `"`, a `\\` or a control character (below U+0020, which JSON
/// requires escaped).
#[inline]
pub fn string_special(bytes: &[u8]) -> Option<usize> {
    find(
        bytes,
        |w| equal(w, b'"') | equal(w, b'\\') | below(w, 0x20),
        |b| b == b'"' || b == b'\\' || b < 0x20,
    )
}

/// Where the first quote or backslash of `bytes` is: the end of a JSON
/// string's text, or its next escape.
#[inline]
pub fn quote_or_backslash(bytes: &[u8]) -> Option<usize> {
    find(bytes, |w| equal(w, b'"') | equal(w, b'\\'), |b| b == b'"' || b == b'\\')
}

/// Where the first backslash of `bytes` is.
#[inline]
pub fn backslash(bytes: &[u8]) -> Option<usize> {
    find(bytes, |w| equal(w, b'\\'), |b| b == b'\\')
}

/// Appends `bytes` to `out`, as `extend_from_slice` does. In the component a
/// copy of a length not known at compile time is WebAssembly's `memory.copy`,
/// which wasmtime runs as a call out to the host: for the short keys and
/// values an event is written from, the call costs more than the copy. Up to
/// [`SHORT`] bytes are copied here into a block of a fixed size (`fill`),
/// which is appended whole and cut back to `bytes`' length. Native builds
/// append as `extend_from_slice` does.
#[inline(always)]
pub fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    put_between(out, b"", bytes, b"");
}

/// The longest run [`put`] copies without `memory.copy`.
pub const SHORT: usize = 32;

/// Appends `before`, `bytes` and `after` (two bytes at most each), as
/// [`put`] does: one block, where each of them would be appended on its own
/// (a key between its quotes and colon, say).
#[inline(always)]
pub fn put_between(out: &mut Vec<u8>, before: &[u8], bytes: &[u8], after: &[u8]) {
    let n = bytes.len();
    // Natively a short copy is a few instructions inline: nothing to save.
    if !cfg!(target_arch = "wasm32") || n > SHORT || before.len() > 2 || after.len() > 2 {
        out.extend_from_slice(before);
        out.extend_from_slice(bytes);
        out.extend_from_slice(after);
        return;
    }
    put_block(out, before, bytes, after);
}

/// [`put_between`] in one block, for `bytes` of at most [`SHORT`] bytes
/// between two of at most two.
#[inline(always)]
fn put_block(out: &mut Vec<u8>, before: &[u8], bytes: &[u8], after: &[u8]) {
    let n = bytes.len();
    let mut block = [0u8; SHORT + 4];
    let mut at = 0;
    for &b in before {
        block[at] = b;
        at += 1;
    }
    fill(&mut block, at, bytes);
    at += n;
    for &b in after {
        block[at] = b;
        at += 1;
    }
    let len = out.len();
    out.extend_from_slice(&block);
    out.truncate(len + at);
}

/// Copies `bytes` (at most [`SHORT`]) into `block` at `at`, as two
/// overlapping pieces of a fixed size (16, 8 or 4 bytes), or byte by byte
/// for one to three: no copy of a length known only at run time.
#[inline(always)]
fn fill(block: &mut [u8; SHORT + 4], at: usize, bytes: &[u8]) {
    let n = bytes.len();
    if n >= 16 {
        block[at..at + 16].copy_from_slice(&bytes[..16]);
        block[at + n - 16..at + n].copy_from_slice(&bytes[n - 16..]);
    } else if n >= 8 {
        block[at..at + 8].copy_from_slice(&bytes[..8]);
        block[at + n - 8..at + n].copy_from_slice(&bytes[n - 8..]);
    } else if n >= 4 {
        block[at..at + 4].copy_from_slice(&bytes[..4]);
        block[at + n - 4..at + n].copy_from_slice(&bytes[n - 4..]);
    } else if n > 0 {
        // One to three bytes: the first, the middle and the last.
        block[at] = bytes[0];
        block[at + n / 2] = bytes[n / 2];
        block[at + n - 1] = bytes[n - 1];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte value at every place of strings that span a word's end,
    /// among bytes that are not wanted, and behind a wanted one (which a
    /// borrow must not hide).
    #[test]
    fn the_word_search_finds_what_a_byte_search_finds() {
        let naive = |bytes: &[u8], is: fn(u8) -> bool| bytes.iter().position(|&b| is(b));
        let special: fn(u8) -> bool = |b| b == b'"' || b == b'\\' || b < 0x20;
        let slash: fn(u8) -> bool = |b| b == b'\\';
        let quote_or_slash: fn(u8) -> bool = |b| b == b'"' || b == b'\\';
        for len in 0..20 {
            for at in 0..len {
                for byte in 0..=255u8 {
                    for filler in [b'a', 0x21, 0xff, b'"' + 1, b'\\' + 1, b'\\' - 1] {
                        let mut bytes = vec![filler; len];
                        bytes[at] = byte;
                        assert_eq!(string_special(&bytes), naive(&bytes, special), "{bytes:?}");
                        assert_eq!(backslash(&bytes), naive(&bytes, slash), "{bytes:?}");
                        assert_eq!(quote_or_backslash(&bytes), naive(&bytes, quote_or_slash), "{bytes:?}");
                        if at + 1 < len {
                            // A wanted byte after this one: the first is still found.
                            bytes[at + 1] = b'\\';
                            assert_eq!(string_special(&bytes), naive(&bytes, special), "{bytes:?}");
                            assert_eq!(backslash(&bytes), naive(&bytes, slash), "{bytes:?}");
                            assert_eq!(quote_or_backslash(&bytes), naive(&bytes, quote_or_slash), "{bytes:?}");
                        }
                    }
                }
            }
        }
        assert_eq!(string_special(&[b'x'; 40]), None);
        assert_eq!(backslash(b"\"quoted\" and\ncontrolled"), None);
    }

    #[test]
    fn the_first_byte_a_string_cannot_hold_is_found_wherever_it_is() {
        // Bytes that differ from the special ones by one bit, the space
        // just above the control characters, and 0x7f and 0xff.
        let plain = |i: usize| [b'#', b'!', b'^', b' ', 0xff, b']', 0x7f, b'0', b'|'][i % 9];
        for len in 0..40 {
            for at in 0..len {
                for special in [b'"', b'\\', 0x00, 0x0a, 0x1f] {
                    let mut bytes: Vec<u8> = (0..len).map(plain).collect();
                    bytes[at] = special;
                    if at + 1 < len {
                        bytes[at + 1] = b'"';
                    }
                    assert_eq!(string_special(&bytes), Some(at), "{bytes:?}");
                }
            }
            let none: Vec<u8> = (0..len).map(plain).collect();
            assert_eq!(string_special(&none), None);
        }
    }

    /// Every length, short and long, after what `out` holds already: the
    /// bytes appended are the bytes given, and nothing more, whether the
    /// build copies them as a block (the component) or not.
    #[test]
    fn put_appends_what_extend_appends() {
        let bytes: Vec<u8> = (1..=70).collect();
        for held in [0, 1, 7, 31] {
            for len in 0..=bytes.len() {
                let mut expected = vec![0xAA; held];
                expected.extend_from_slice(&bytes[..len]);
                let mut out = vec![0xAA; held];
                put(&mut out, &bytes[..len]);
                assert_eq!(out, expected, "{len} bytes after {held}");
                if len <= SHORT {
                    let mut out = vec![0xAA; held];
                    put_block(&mut out, b"", &bytes[..len], b"");
                    assert_eq!(out, expected, "{len} bytes in a block after {held}");
                }
            }
        }
    }

    /// As [`put_appends_what_extend_appends`], with what comes before and
    /// after: none, one or two bytes each, and more than a block holds.
    #[test]
    fn put_between_appends_the_three_in_turn() {
        let bytes: Vec<u8> = (1..=40).collect();
        for (before, after) in [
            (&b""[..], &b""[..]),
            (&b",\""[..], &b"\":"[..]),
            (&b"{"[..], &b"}"[..]),
            (&b"abc"[..], &b""[..]),
        ] {
            for len in 0..=bytes.len() {
                let mut expected = vec![0xAA; 3];
                expected.extend_from_slice(before);
                expected.extend_from_slice(&bytes[..len]);
                expected.extend_from_slice(after);
                let mut out = vec![0xAA; 3];
                put_between(&mut out, before, &bytes[..len], after);
                assert_eq!(out, expected, "{len} bytes between {before:?} and {after:?}");
                // The block the component uses, tested natively too.
                if len <= SHORT && before.len() <= 2 {
                    let mut out = vec![0xAA; 3];
                    put_block(&mut out, before, &bytes[..len], after);
                    assert_eq!(out, expected, "{len} bytes in a block between {before:?} and {after:?}");
                }
            }
        }
    }
}
