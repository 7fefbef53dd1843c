//! GUIDs as GPT stores them: 16 bytes in on-disk order, shown in the UEFI
//! "mixed-endian" text form, where the first three fields are little-endian on
//! disk and the last two are stored as written. Getting this wrong swaps bytes
//! in `root=PARTUUID=...` and the kernel never finds its root.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A GUID in on-disk byte order.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Guid(pub [u8; 16]);

/// Why a string is not a GUID.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum GuidError {
    #[error("{text:?} is not a GUID: expected 8-4-4-4-12 hexadecimal digits, like c12a7328-f81f-11d2-ba4b-00a0c93ec93b")]
    Malformed { text: String },
}

/// Positions of the hex digit pairs in the text form, in on-disk byte order:
/// the first three fields are reversed (little-endian on disk).
const TEXT_OFFSETS: [usize; 16] = [6, 4, 2, 0, 11, 9, 16, 14, 19, 21, 24, 26, 28, 30, 32, 34];

impl Guid {
    /// The all-zero GUID, which marks an unused partition entry.
    pub const NIL: Guid = Guid([0; 16]);

    /// Builds a GUID from its text fields (the numbers as written in the text
    /// form), storing the first three little-endian as GPT does.
    pub const fn from_fields(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Guid {
        let a = d1.to_le_bytes();
        let b = d2.to_le_bytes();
        let c = d3.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4],
            d4[5], d4[6], d4[7],
        ])
    }

    /// Parses the text form (case-insensitive) in a `const` context, so a GUID
    /// constant can be written once as text and used both as bytes and as a
    /// string. `None` when the text is not 8-4-4-4-12 hex digits.
    pub const fn parse_text(text: &str) -> Option<Guid> {
        let s = text.as_bytes();
        if s.len() != 36 || s[8] != b'-' || s[13] != b'-' || s[18] != b'-' || s[23] != b'-' {
            return None;
        }
        let mut out = [0u8; 16];
        let mut i = 0;
        while i < 16 {
            let at = TEXT_OFFSETS[i];
            let (Some(hi), Some(lo)) = (hex_digit(s[at]), hex_digit(s[at + 1])) else {
                return None;
            };
            out[i] = (hi << 4) | lo;
            i += 1;
        }
        Some(Guid(out))
    }

    /// True for the all-zero GUID.
    pub fn is_nil(&self) -> bool {
        self.0 == [0; 16]
    }
}

const fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-\
             {:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            b[3],
            b[2],
            b[1],
            b[0],
            b[5],
            b[4],
            b[7],
            b[6],
            b[8],
            b[9],
            b[10],
            b[11],
            b[12],
            b[13],
            b[14],
            b[15]
        )
    }
}

impl FromStr for Guid {
    type Err = GuidError;

    fn from_str(text: &str) -> Result<Guid, GuidError> {
        Guid::parse_text(text).ok_or_else(|| GuidError::Malformed {
            text: text.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The EFI system partition type as the UEFI specification lists it, and
    /// its bytes as they sit on disk.
    const ESP_TEXT: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
    const ESP_BYTES: [u8; 16] = [
        0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9,
        0x3b,
    ];

    #[test]
    fn text_and_bytes_agree() {
        let g: Guid = ESP_TEXT.parse().expect("valid GUID");
        assert_eq!(g.0, ESP_BYTES);
        assert_eq!(g.to_string(), ESP_TEXT);
        let upper: Guid = ESP_TEXT
            .to_uppercase()
            .parse()
            .expect("upper case is accepted");
        assert_eq!(upper, g);
        assert_eq!(
            Guid::from_fields(
                0xc12a7328,
                0xf81f,
                0x11d2,
                [0xba, 0x4b, 0, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b]
            ),
            g
        );
    }

    #[test]
    fn malformed_text_is_refused() {
        for bad in [
            "",
            "c12a7328f81f11d2ba4b00a0c93ec93b",
            "c12a7328-f81f-11d2-ba4b-00a0c93ec93",
            "c12a7328-f81f-11d2-ba4b-00a0c93ec93bb",
            "g12a7328-f81f-11d2-ba4b-00a0c93ec93b",
            "c12a7328+f81f-11d2-ba4b-00a0c93ec93b",
            "c12a7328-f81f-11d2-ba4b-00a0c93ec9é",
        ] {
            assert!(bad.parse::<Guid>().is_err(), "{bad:?} accepted");
        }
    }
}
