//! The BER-TLV subset PIV uses: one-byte tags (two for `7F49`/`5Fxx` handled by callers) and
//! lengths in the short form, `81 xx` or `82 xx xx`, always the shortest one, because the
//! `yubikey` crate skips fixed header sizes (see piv-simulation notes, pitfall 7).

/// Appends `tag`, the minimal length of `value`, and `value` to `out`.
pub(crate) fn put(out: &mut Vec<u8>, tag: &[u8], value: &[u8]) {
    out.extend_from_slice(tag);
    put_len(out, value.len());
    out.extend_from_slice(value);
}

/// `tag || len || value` as a new buffer.
pub(crate) fn encode(tag: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 5);
    put(&mut out, tag, value);
    out
}

/// Appends a length in its shortest BER form.
pub(crate) fn put_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
}

/// Splits one TLV with a one-byte tag off `input`: `(tag, value, rest)`.
pub(crate) fn take(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (len, rest) = take_len(rest)?;
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// Reads a BER length: `(length, rest)`.
pub(crate) fn take_len(input: &[u8]) -> Option<(usize, &[u8])> {
    match *input.first()? {
        n @ 0..=0x7f => Some((n as usize, &input[1..])),
        0x81 => Some((*input.get(1)? as usize, input.get(2..)?)),
        0x82 => Some((
            (*input.get(1)? as usize) << 8 | *input.get(2)? as usize,
            input.get(3..)?,
        )),
        _ => None,
    }
}

/// All one-byte-tag TLVs of `input`, or `None` if any is malformed.
pub(crate) fn parse_all(mut input: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut items = Vec::new();
    while !input.is_empty() {
        let (tag, value, rest) = take(input)?;
        items.push((tag, value));
        input = rest;
    }
    Some(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_minimal_and_read_back() {
        for len in [0, 1, 0x7f, 0x80, 0xff, 0x100, 3063] {
            let value = vec![0xab; len];
            let tlv = encode(&[0x53], &value);
            let header = match len {
                0..=0x7f => 2,
                0x80..=0xff => 3,
                _ => 4,
            };
            assert_eq!(tlv.len(), header + len);
            let (tag, v, rest) = take(&tlv).unwrap();
            assert_eq!((tag, v, rest), (0x53, &value[..], &[][..]));
        }
        assert!(take(&[0x53, 0x05, 1, 2]).is_none());
        assert!(take(&[0x53, 0x83, 0, 0, 1]).is_none());
    }
}
