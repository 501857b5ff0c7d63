//! The few msgpack pieces the engine's frames need, written and skipped by hand.
//!
//! Writing: the DISPATCH frame is built straight from the ledger's entries (no Python
//! object per message). Reading: a batch of payloads arrives as one msgpack array
//! (encoded by msgspec in one call), and `split_array` finds each element's bytes so
//! every message keeps its own payload without being encoded on its own. Pure Rust.

/// Why `split_array` refused its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgpackError {
    /// The input does not start with an array header.
    NotAnArray,
    /// The input ends inside a value.
    Truncated,
    /// A byte that starts no msgpack value (0xc1).
    InvalidByte(u8),
    /// Bytes follow the array.
    TrailingBytes,
    /// Arrays and maps nested deeper than `MAX_DEPTH`.
    TooDeep,
}

/// Nesting a payload may have: msgspec refuses to encode deeper structures anyway.
pub const MAX_DEPTH: usize = 1024;

/// Append a non-negative integer in its shortest form.
#[inline]
pub fn write_uint(out: &mut Vec<u8>, value: u64) {
    if value < 0x80 {
        out.push(value as u8);
    } else if value <= u8::MAX as u64 {
        out.extend_from_slice(&[0xcc, value as u8]);
    } else if value <= u16::MAX as u64 {
        out.push(0xcd);
        out.extend_from_slice(&(value as u16).to_be_bytes());
    } else if value <= u32::MAX as u64 {
        out.push(0xce);
        out.extend_from_slice(&(value as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&value.to_be_bytes());
    }
}

/// Append a float64.
#[inline]
pub fn write_f64(out: &mut Vec<u8>, value: f64) {
    out.push(0xcb);
    out.extend_from_slice(&value.to_be_bytes());
}

/// Append nil.
#[inline]
pub fn write_nil(out: &mut Vec<u8>) {
    out.push(0xc0);
}

/// Append `true`.
#[inline]
pub fn write_true(out: &mut Vec<u8>) {
    out.push(0xc3);
}

/// Append a UTF-8 string.
pub fn write_str(out: &mut Vec<u8>, value: &str) {
    let len = value.len();
    if len < 32 {
        out.push(0xa0 | len as u8);
    } else if len <= u8::MAX as usize {
        out.extend_from_slice(&[0xd9, len as u8]);
    } else if len <= u16::MAX as usize {
        out.push(0xda);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(value.as_bytes());
}

/// Append the header of an array of `len` items.
#[inline]
pub fn write_array_header(out: &mut Vec<u8>, len: usize) {
    if len < 16 {
        out.push(0x90 | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(0xdc);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdd);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

/// The `(start, end)` byte range of each element of the msgpack array that is `input`.
pub fn split_array(input: &[u8]) -> Result<Vec<(usize, usize)>, MsgpackError> {
    let first = *input.first().ok_or(MsgpackError::Truncated)?;
    let (count, mut pos) = match first {
        0x90..=0x9f => ((first & 0x0f) as usize, 1),
        0xdc => (be(input, 1, 2)? as usize, 3),
        0xdd => (be(input, 1, 4)? as usize, 5),
        _ => return Err(MsgpackError::NotAnArray),
    };
    // Each element takes at least one byte: a count beyond the input is a lie, not a size.
    let mut ranges = Vec::with_capacity(count.min(input.len()));
    for _ in 0..count {
        let end = skip(input, pos)?;
        ranges.push((pos, end));
        pos = end;
    }
    if pos != input.len() {
        return Err(MsgpackError::TrailingBytes);
    }
    Ok(ranges)
}

/// The big-endian unsigned integer of `width` bytes at `at`.
#[inline]
fn be(input: &[u8], at: usize, width: usize) -> Result<u64, MsgpackError> {
    let bytes = input.get(at..at + width).ok_or(MsgpackError::Truncated)?;
    Ok(bytes.iter().fold(0u64, |acc, &b| (acc << 8) | b as u64))
}

/// The end of the value that starts at `pos` (iterative, so hostile nesting cannot
/// overflow the stack).
fn skip(input: &[u8], pos: usize) -> Result<usize, MsgpackError> {
    let mut pos = pos;
    // Values still to skip, per open array or map.
    let mut pending: Vec<u64> = vec![1];
    while let Some(left) = pending.last_mut() {
        if *left == 0 {
            pending.pop();
            continue;
        }
        *left -= 1;
        let marker = *input.get(pos).ok_or(MsgpackError::Truncated)?;
        // (header bytes after the marker, payload bytes, nested values)
        let (header, body, nested): (usize, u64, u64) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0, 0),
            0x80..=0x8f => (0, 0, 2 * (marker & 0x0f) as u64),
            0x90..=0x9f => (0, 0, (marker & 0x0f) as u64),
            0xa0..=0xbf => (0, (marker & 0x1f) as u64, 0),
            0xc1 => return Err(MsgpackError::InvalidByte(marker)),
            0xc4 | 0xd9 => (1, be(input, pos + 1, 1)?, 0),
            0xc5 | 0xda => (2, be(input, pos + 1, 2)?, 0),
            0xc6 | 0xdb => (4, be(input, pos + 1, 4)?, 0),
            0xc7 => (2, be(input, pos + 1, 1)?, 0),
            0xc8 => (3, be(input, pos + 1, 2)?, 0),
            0xc9 => (5, be(input, pos + 1, 4)?, 0),
            0xca => (0, 4, 0),
            0xcb => (0, 8, 0),
            0xcc | 0xd0 => (0, 1, 0),
            0xcd | 0xd1 => (0, 2, 0),
            0xce | 0xd2 => (0, 4, 0),
            0xcf | 0xd3 => (0, 8, 0),
            0xd4 => (0, 2, 0),
            0xd5 => (0, 3, 0),
            0xd6 => (0, 5, 0),
            0xd7 => (0, 9, 0),
            0xd8 => (0, 17, 0),
            0xdc => (2, 0, be(input, pos + 1, 2)?),
            0xdd => (4, 0, be(input, pos + 1, 4)?),
            0xde => (2, 0, 2 * be(input, pos + 1, 2)?),
            0xdf => (4, 0, 2 * be(input, pos + 1, 4)?),
        };
        let end = (pos as u64 + 1 + header as u64)
            .checked_add(body)
            .ok_or(MsgpackError::Truncated)?;
        if end > input.len() as u64 {
            return Err(MsgpackError::Truncated);
        }
        pos = end as usize;
        if nested > 0 {
            if pending.len() > MAX_DEPTH {
                return Err(MsgpackError::TooDeep);
            }
            pending.push(nested);
        }
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn array_of(items: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        write_array_header(&mut out, items.len());
        for item in items {
            out.extend_from_slice(item);
        }
        out
    }

    #[test]
    fn each_element_of_every_kind_is_found_whole() {
        let mut big_str = Vec::new();
        write_str(&mut big_str, &"x".repeat(300));
        let items: Vec<&[u8]> = vec![
            &[0xc0],                         // nil
            &[0x05],                         // fixint
            &[0xff],                         // negative fixint
            &[0xcd, 0x01, 0x00],             // uint16
            &[0xcb, 0, 0, 0, 0, 0, 0, 0, 0], // float64
            &[0xa2, b'h', b'i'],             // fixstr
            &big_str,                        // str16
            &[0xc4, 0x02, 1, 2],             // bin8
            &[0x92, 0x01, 0x91, 0xc3],       // nested array
            &[0x81, 0xa1, b'k', 0x80],       // map with an empty map
            &[0xd6, 0xff, 0, 0, 0, 1],       // fixext4 (timestamp)
            &[0xc7, 0x01, 0x05, 0xaa],       // ext8
        ];
        let input = array_of(&items);
        let ranges = split_array(&input).unwrap();
        assert_eq!(ranges.len(), items.len());
        for ((start, end), item) in ranges.iter().zip(&items) {
            assert_eq!(&input[*start..*end], *item);
        }
    }

    #[test]
    fn long_arrays_use_the_wider_headers() {
        for n in [15usize, 16, 65_535, 65_536] {
            let mut input = Vec::new();
            write_array_header(&mut input, n);
            input.extend(std::iter::repeat(0xc0).take(n));
            assert_eq!(split_array(&input).unwrap().len(), n);
        }
    }

    #[test]
    fn malformed_input_is_refused_not_misread() {
        assert_eq!(split_array(&[]), Err(MsgpackError::Truncated));
        assert_eq!(split_array(&[0xc0]), Err(MsgpackError::NotAnArray));
        assert_eq!(split_array(&[0x92, 0xc0]), Err(MsgpackError::Truncated));
        assert_eq!(
            split_array(&[0x91, 0xc1]),
            Err(MsgpackError::InvalidByte(0xc1))
        );
        assert_eq!(
            split_array(&[0x91, 0xc0, 0xc0]),
            Err(MsgpackError::TrailingBytes)
        );
        assert_eq!(
            split_array(&[0x91, 0xdb, 0xff, 0xff, 0xff, 0xff]),
            Err(MsgpackError::Truncated)
        );
        assert_eq!(
            split_array(&[0xdd, 0xff, 0xff, 0xff, 0xff]),
            Err(MsgpackError::Truncated)
        );
        let deep: Vec<u8> = std::iter::once(0x91)
            .chain(std::iter::repeat(0x91).take(5000))
            .collect();
        assert_eq!(split_array(&deep), Err(MsgpackError::TooDeep));
    }

    #[test]
    fn integers_and_strings_are_written_in_their_shortest_form() {
        let cases: [(u64, &[u8]); 5] = [
            (0x7f, &[0x7f]),
            (0x80, &[0xcc, 0x80]),
            (0x1_00, &[0xcd, 0x01, 0x00]),
            (0x1_0000, &[0xce, 0, 1, 0, 0]),
            (1 << 32, &[0xcf, 0, 0, 0, 1, 0, 0, 0, 0]),
        ];
        for (value, expected) in cases {
            let mut out = Vec::new();
            write_uint(&mut out, value);
            assert_eq!(out, expected);
        }
        let mut out = Vec::new();
        write_str(&mut out, "abc");
        assert_eq!(out, [0xa3, b'a', b'b', b'c']);
        let mut out = Vec::new();
        write_str(&mut out, &"y".repeat(40));
        assert_eq!(&out[..2], &[0xd9, 40]);
    }
}
