//! qcow2 headers (QEMU's docs/interop/qcow2.txt): enough to check that
//! qemu-img wrote a standalone, unencrypted, cleanly closed image of the
//! expected virtual size, with its tables inside the file.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use thiserror::Error;

/// "QFI\xfb".
pub const MAGIC: u32 = 0x5146_49fb;
/// Incompatible feature bit 0: the image was not closed cleanly.
const DIRTY: u64 = 1;
/// Incompatible feature bit 1: the image is corrupt.
const CORRUPT: u64 = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qcow2Info {
    pub version: u32,
    pub cluster_bits: u32,
    /// Virtual size in bytes.
    pub size: u64,
    pub file_size: u64,
}

#[derive(Debug, Error)]
pub enum Qcow2Error {
    #[error("qcow2 header: {0}")]
    Header(String),
    #[error("qcow2: {0}")]
    Io(#[from] io::Error),
}

/// Checks the header of the qcow2 image at `path`.
pub fn check(path: &Path) -> Result<Qcow2Info, Qcow2Error> {
    let mut f = File::open(path)?;
    let file_size = f.metadata()?.len();
    let mut b = [0u8; 104];
    f.read_exact(&mut b)
        .map_err(|_| Qcow2Error::Header(format!("file is {file_size} bytes: too short")))?;
    parse(&b, file_size)
}

/// Checks a qcow2 header (the first 104 bytes) of a `file_size`-byte file.
pub fn parse(b: &[u8; 104], file_size: u64) -> Result<Qcow2Info, Qcow2Error> {
    let u32_at = |o: usize| u32::from_be_bytes(b[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_be_bytes(b[o..o + 8].try_into().unwrap());
    let bad = |m: String| Err(Qcow2Error::Header(m));
    if u32_at(0) != MAGIC {
        return bad("magic is not \"QFI\\xfb\": not a qcow2 image".into());
    }
    let version = u32_at(4);
    if !(2..=3).contains(&version) {
        return bad(format!("version {version} (expected 2 or 3)"));
    }
    if u64_at(8) != 0 {
        return bad("has a backing file: the image is not standalone".into());
    }
    let cluster_bits = u32_at(20);
    if !(9..=21).contains(&cluster_bits) {
        return bad(format!("cluster bits {cluster_bits} outside 9-21"));
    }
    let size = u64_at(24);
    if size == 0 || size % (1 << 20) != 0 {
        return bad(format!("virtual size {size} is not a whole number of MiB"));
    }
    if u32_at(32) != 0 {
        return bad("encrypted".into());
    }
    let l1_entries = u32_at(36) as u64;
    let l1_offset = u64_at(40);
    let cluster = 1u64 << cluster_bits;
    // An L2 table maps a cluster's worth of 8-byte entries.
    let per_l1 = cluster * (cluster / 8);
    if l1_entries < size.div_ceil(per_l1) {
        return bad(format!(
            "{l1_entries} L1 entries do not cover the {size}-byte disk"
        ));
    }
    if l1_offset % cluster != 0 || l1_offset + l1_entries * 8 > file_size {
        return bad(format!("L1 table at {l1_offset} lies outside the file"));
    }
    let refcount = u64_at(48);
    if refcount % cluster != 0 || refcount + cluster * u32_at(56) as u64 > file_size {
        return bad(format!(
            "refcount table at {refcount} lies outside the file"
        ));
    }
    if version == 3 {
        let incompatible = u64_at(72);
        if incompatible & DIRTY != 0 {
            return bad("the dirty bit is set: the image was not closed".into());
        }
        if incompatible & CORRUPT != 0 {
            return bad("the corrupt bit is set".into());
        }
    }
    Ok(Qcow2Info {
        version,
        cluster_bits,
        size,
        file_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> [u8; 104] {
        let mut b = [0u8; 104];
        b[0..4].copy_from_slice(&MAGIC.to_be_bytes());
        b[4..8].copy_from_slice(&3u32.to_be_bytes());
        b[20..24].copy_from_slice(&16u32.to_be_bytes());
        b[24..32].copy_from_slice(&(40u64 << 30).to_be_bytes());
        b[36..40].copy_from_slice(&80u32.to_be_bytes());
        b[40..48].copy_from_slice(&(3u64 << 16).to_be_bytes());
        b[48..56].copy_from_slice(&(1u64 << 16).to_be_bytes());
        b[56..60].copy_from_slice(&1u32.to_be_bytes());
        b
    }

    #[test]
    fn a_good_header() {
        let i = parse(&header(), 1 << 20).unwrap();
        assert_eq!((i.version, i.cluster_bits, i.size), (3, 16, 40 << 30));
    }

    #[test]
    fn faults_are_named() {
        let mut b = header();
        b[79] = 1;
        assert!(parse(&b, 1 << 20)
            .unwrap_err()
            .to_string()
            .contains("dirty"));
        let mut b = header();
        b[15] = 1;
        assert!(parse(&b, 1 << 20)
            .unwrap_err()
            .to_string()
            .contains("backing"));
        let mut b = header();
        b[39] = 79;
        assert!(parse(&b, 1 << 20).unwrap_err().to_string().contains("L1"));
        assert!(parse(&header(), 1 << 16)
            .unwrap_err()
            .to_string()
            .contains("outside"));
    }
}
