//! GPT-2's byte-level alphabet: every byte maps to one printable character, so that BPE
//! vocabularies can be stored as text (a space is `Ġ`, a newline `Ċ`).

/// The character standing for `byte`.
fn char_of(byte: u8) -> char {
    let b = u32::from(byte);
    let printable = matches!(byte, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable {
        return char::from(byte);
    }
    // The other 68 bytes take the characters from U+0100 on, in byte order.
    let rank = (0..b).filter(|&x| !matches!(x as u8, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)).count() as u32;
    char::from_u32(0x100 + rank).unwrap_or('\u{FFFD}')
}

/// The byte a character stands for, if it is one of the alphabet's.
fn byte_of(c: char) -> Option<u8> {
    let code = u32::from(c);
    match code {
        0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF => u8::try_from(code).ok(),
        0x100..=0x143 => {
            let rank = code - 0x100;
            (0u8..=255).filter(|&x| !matches!(x, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)).nth(rank as usize)
        }
        _ => None,
    }
}

/// Maps raw bytes to their alphabet characters.
pub(super) fn encode(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char_of(b)).collect()
}

/// Maps a vocabulary token back to the bytes it stands for. Characters outside the alphabet are
/// kept as their own UTF-8 bytes (lenient: some vocabularies store a few tokens raw).
pub(super) fn decode(token: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(token.len());
    for c in token.chars() {
        match byte_of(c) {
            Some(b) => out.push(b),
            None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabet_round_trips_every_byte() {
        for b in 0..=255u8 {
            assert_eq!(byte_of(char_of(b)), Some(b), "byte {b}");
        }
        assert_eq!(char_of(b' '), 'Ġ');
        assert_eq!(char_of(b'\n'), 'Ċ');
        assert_eq!(decode("Ġworld"), b" world");
    }
}
