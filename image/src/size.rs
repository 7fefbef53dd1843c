//! Disk sizes as an administrator writes them: `40GiB`, `512MiB`, `2G`, or a
//! plain number of bytes. Units are binary (as in qemu-img and truncate);
//! decimal `GB`/`MB` are refused rather than silently read as binary.

use thiserror::Error;

/// Why a size could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SizeError {
    #[error("{text:?} is not a size: write a number with an optional unit KiB, MiB, GiB or TiB (K, M, G, T are the same), e.g. 40GiB")]
    Malformed { text: String },
    #[error("{text:?} uses a decimal unit; write KiB, MiB, GiB or TiB (powers of 1024)")]
    Decimal { text: String },
    #[error("{text:?} is too large")]
    Overflow { text: String },
}

/// Parses a size in bytes.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let t = text.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = t.split_at(digits);
    let malformed = || SizeError::Malformed {
        text: text.to_string(),
    };
    let number: u64 = number.parse().map_err(|_| malformed())?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        "t" | "tib" => 40,
        "kb" | "mb" | "gb" | "tb" => {
            return Err(SizeError::Decimal {
                text: text.to_string(),
            })
        }
        _ => return Err(malformed()),
    };
    number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| SizeError::Overflow {
            text: text.to_string(),
        })
}

/// A size for messages: whole MiB or GiB when exact, bytes otherwise.
pub fn show_size(bytes: u64) -> String {
    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;
    if bytes >= GIB && bytes.is_multiple_of(GIB) {
        format!("{} GiB", bytes / GIB)
    } else if bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_size("40GiB"), Ok(40 << 30));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("512 mib"), Ok(512 << 20));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("1TiB"), Ok(1 << 40));
    }

    #[test]
    fn refusals() {
        assert!(matches!(parse_size("40GB"), Err(SizeError::Decimal { .. })));
        for bad in ["", "GiB", "-1G", "1.5G", "12XB", "0x10"] {
            assert!(
                matches!(parse_size(bad), Err(SizeError::Malformed { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_size("99999999999TiB"),
            Err(SizeError::Overflow { .. })
        ));
    }

    #[test]
    fn shown() {
        assert_eq!(show_size(40 << 30), "40 GiB");
        assert_eq!(show_size(642 << 20), "642 MiB");
        assert_eq!(show_size(1000), "1000 bytes");
    }
}
