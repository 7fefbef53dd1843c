//! VHD files, after Microsoft's "Virtual Hard Disk Image Format
//! Specification" (October 2006): the 512-byte footer (cookie `conectix`,
//! big-endian fields, one's-complement checksum, CHS geometry), and for a
//! dynamic disk the 1024-byte dynamic header (`cxsparse`) and the block
//! allocation table. qemu-img writes the file (`-O vpc -o
//! subformat=dynamic,force_size=on`, so the current size is exactly the raw
//! image's size and not rounded down to a geometry); with `force_size` it
//! stores the maximum geometry 65535/16/255 as its marker for "use the
//! current size", where the spec computes the geometry from the size.
//! [`set_spec_geometry`] rewrites both copies of the footer with the spec's
//! geometry: Hyper-V reads the current size either way, and qemu still does
//! (it trusts the current size of files whose creator is `qem2`).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use thiserror::Error;

pub const FOOTER_COOKIE: &[u8; 8] = b"conectix";
pub const DYNAMIC_COOKIE: &[u8; 8] = b"cxsparse";
/// Features: bit 1 "reserved" must always be set.
pub const FEATURES_RESERVED: u32 = 2;
pub const FORMAT_VERSION: u32 = 0x0001_0000;
pub const DISK_FIXED: u32 = 2;
pub const DISK_DYNAMIC: u32 = 3;
pub const DISK_DIFFERENCING: u32 = 4;
const MIB: u64 = 1 << 20;

/// The hard disk footer (spec: "Hard Disk Footer Format").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    pub features: u32,
    pub format_version: u32,
    pub data_offset: u64,
    pub timestamp: u32,
    pub creator_app: [u8; 4],
    pub creator_version: u32,
    pub creator_os: [u8; 4],
    pub original_size: u64,
    pub current_size: u64,
    pub geometry: Chs,
    pub disk_type: u32,
    pub checksum: u32,
    pub unique_id: [u8; 16],
    pub saved_state: u8,
}

/// Cylinders, heads, sectors per track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chs {
    pub cylinders: u16,
    pub heads: u8,
    pub sectors: u8,
}

/// The geometry for a disk of `total_sectors`, by the algorithm of the
/// spec's appendix ("CHS Calculation"); disks larger than 65535 x 16 x 255
/// sectors (about 127 GiB) get that maximum.
pub fn chs_for(total_sectors: u64) -> Chs {
    let total = total_sectors.min(65535 * 16 * 255);
    let (sectors, heads, cyl_times_heads);
    if total >= 65535 * 16 * 63 {
        sectors = 255;
        heads = 16;
        cyl_times_heads = total / sectors;
    } else {
        let mut spt = 17;
        let mut cth = total / spt;
        let mut h = cth.div_ceil(1024).max(4);
        if cth >= h * 1024 || h > 16 {
            spt = 31;
            h = 16;
            cth = total / spt;
        }
        if cth >= h * 1024 {
            spt = 63;
            h = 16;
            cth = total / spt;
        }
        sectors = spt;
        heads = h;
        cyl_times_heads = cth;
    }
    Chs {
        cylinders: (cyl_times_heads / heads) as u16,
        heads: heads as u8,
        sectors: sectors as u8,
    }
}

/// The one's complement of the sum of all bytes of `b`, the checksum field
/// (`skip`, 4 bytes) read as zero (spec: "Checksum").
pub fn checksum(b: &[u8], skip: usize) -> u32 {
    let sum = b
        .iter()
        .enumerate()
        .filter(|(i, _)| !(skip..skip + 4).contains(i))
        .fold(0u32, |s, (_, &x)| s.wrapping_add(x as u32));
    !sum
}

impl Footer {
    pub fn parse(b: &[u8; 512]) -> Result<Footer, VhdError> {
        if &b[0..8] != FOOTER_COOKIE {
            return Err(VhdError::Footer(format!(
                "cookie is {:?}, not \"conectix\": not a VHD",
                String::from_utf8_lossy(&b[0..8])
            )));
        }
        let u32_at = |o: usize| u32::from_be_bytes(b[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_be_bytes(b[o..o + 8].try_into().unwrap());
        Ok(Footer {
            features: u32_at(8),
            format_version: u32_at(12),
            data_offset: u64_at(16),
            timestamp: u32_at(24),
            creator_app: b[28..32].try_into().unwrap(),
            creator_version: u32_at(32),
            creator_os: b[36..40].try_into().unwrap(),
            original_size: u64_at(40),
            current_size: u64_at(48),
            geometry: Chs {
                cylinders: u16::from_be_bytes([b[56], b[57]]),
                heads: b[58],
                sectors: b[59],
            },
            disk_type: u32_at(60),
            checksum: u32_at(64),
            unique_id: b[68..84].try_into().unwrap(),
            saved_state: b[84],
        })
    }

    pub fn to_bytes(&self) -> [u8; 512] {
        let mut b = [0u8; 512];
        b[0..8].copy_from_slice(FOOTER_COOKIE);
        b[8..12].copy_from_slice(&self.features.to_be_bytes());
        b[12..16].copy_from_slice(&self.format_version.to_be_bytes());
        b[16..24].copy_from_slice(&self.data_offset.to_be_bytes());
        b[24..28].copy_from_slice(&self.timestamp.to_be_bytes());
        b[28..32].copy_from_slice(&self.creator_app);
        b[32..36].copy_from_slice(&self.creator_version.to_be_bytes());
        b[36..40].copy_from_slice(&self.creator_os);
        b[40..48].copy_from_slice(&self.original_size.to_be_bytes());
        b[48..56].copy_from_slice(&self.current_size.to_be_bytes());
        b[56..58].copy_from_slice(&self.geometry.cylinders.to_be_bytes());
        b[58] = self.geometry.heads;
        b[59] = self.geometry.sectors;
        b[60..64].copy_from_slice(&self.disk_type.to_be_bytes());
        b[64..68].copy_from_slice(&self.checksum.to_be_bytes());
        b[68..84].copy_from_slice(&self.unique_id);
        b[84] = self.saved_state;
        b
    }

    /// Checks the footer on its own: checksum, version, type, size and
    /// geometry.
    pub fn validate(&self, bytes: &[u8; 512]) -> Result<(), VhdError> {
        let bad = |m: String| Err(VhdError::Footer(m));
        let sum = checksum(bytes, 64);
        if sum != self.checksum {
            return bad(format!(
                "checksum is {:#010x}, the bytes sum to {sum:#010x}: the footer is corrupt",
                self.checksum
            ));
        }
        if self.features & FEATURES_RESERVED == 0 {
            return bad(format!(
                "features {:#x} lack the reserved bit 1",
                self.features
            ));
        }
        if self.format_version != FORMAT_VERSION {
            return bad(format!(
                "file format version {:#010x} (expected 0x00010000)",
                self.format_version
            ));
        }
        if !matches!(self.disk_type, DISK_FIXED | DISK_DYNAMIC) {
            return bad(format!(
                "disk type {} (expected 2 fixed or 3 dynamic)",
                self.disk_type
            ));
        }
        if self.current_size == 0 || !self.current_size.is_multiple_of(MIB) {
            return bad(format!(
                "current size {} is not a whole number of MiB (Hyper-V and Azure need 1 MiB alignment)",
                self.current_size
            ));
        }
        let want = chs_for(self.current_size / 512);
        if self.geometry != want {
            return bad(format!(
                "geometry {:?} is not the spec's {want:?} for {} sectors",
                self.geometry,
                self.current_size / 512
            ));
        }
        if self.saved_state != 0 {
            return bad("saved state is set".into());
        }
        Ok(())
    }
}

/// Rewrites the footer (at the end and, for a dynamic disk, its copy at the
/// start) with the geometry the spec computes from the current size, and the
/// checksum that goes with it.
pub fn set_spec_geometry(path: &Path) -> Result<(), VhdError> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let len = f.metadata()?.len();
    if len < 512 {
        return Err(VhdError::Footer(format!("file is {len} bytes")));
    }
    let mut raw = [0u8; 512];
    f.read_exact_at(&mut raw, len - 512)?;
    let mut footer = Footer::parse(&raw)?;
    footer.geometry = chs_for(footer.current_size / 512);
    footer.checksum = 0;
    footer.checksum = checksum(&footer.to_bytes(), 64);
    let bytes = footer.to_bytes();
    f.write_all_at(&bytes, len - 512)?;
    if footer.disk_type != DISK_FIXED {
        f.write_all_at(&bytes, 0)?;
    }
    f.sync_all()?;
    Ok(())
}

/// What [`check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VhdInfo {
    pub footer: Footer,
    /// Allocated blocks of a dynamic disk (0 for a fixed one).
    pub blocks: u64,
    pub block_size: u64,
    pub file_size: u64,
}

#[derive(Debug, Error)]
pub enum VhdError {
    #[error("VHD footer: {0}")]
    Footer(String),
    #[error("VHD dynamic header: {0}")]
    DynamicHeader(String),
    #[error("VHD block allocation table: {0}")]
    Bat(String),
    #[error("VHD: {0}")]
    Io(#[from] io::Error),
}

/// Checks a VHD file: the footer at the end (and, for a dynamic disk, its
/// copy at the start, the dynamic header and every BAT entry).
pub fn check(path: &Path) -> Result<VhdInfo, VhdError> {
    let mut f = File::open(path)?;
    let file_size = f.metadata()?.len();
    if file_size < 512 || file_size % 512 != 0 {
        return Err(VhdError::Footer(format!(
            "file size {file_size} is not a whole number of 512-byte sectors"
        )));
    }
    let mut raw = [0u8; 512];
    f.seek(SeekFrom::Start(file_size - 512))?;
    f.read_exact(&mut raw)?;
    let footer = Footer::parse(&raw)?;
    footer.validate(&raw)?;
    if footer.disk_type == DISK_FIXED {
        if file_size != footer.current_size + 512 {
            return Err(VhdError::Footer(format!(
                "fixed disk of {} bytes in a {file_size}-byte file",
                footer.current_size
            )));
        }
        return Ok(VhdInfo {
            footer,
            blocks: 0,
            block_size: 0,
            file_size,
        });
    }
    let mut copy = [0u8; 512];
    f.seek(SeekFrom::Start(0))?;
    f.read_exact(&mut copy)?;
    if copy != raw {
        return Err(VhdError::Footer(
            "the copy of the footer at the start differs from the footer at the end".into(),
        ));
    }
    if footer.data_offset != 512 {
        return Err(VhdError::DynamicHeader(format!(
            "footer's data offset is {} (qemu-img and Hyper-V put the header at 512)",
            footer.data_offset
        )));
    }
    let mut dh = [0u8; 1024];
    f.seek(SeekFrom::Start(512))?;
    f.read_exact(&mut dh)?;
    let bad = |m: String| Err(VhdError::DynamicHeader(m));
    if &dh[0..8] != DYNAMIC_COOKIE {
        return bad("cookie is not \"cxsparse\"".into());
    }
    let u32_at = |o: usize| u32::from_be_bytes(dh[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_be_bytes(dh[o..o + 8].try_into().unwrap());
    if u32_at(36) != checksum(&dh, 36) {
        return bad(format!(
            "checksum is {:#010x}, the bytes sum to {:#010x}",
            u32_at(36),
            checksum(&dh, 36)
        ));
    }
    if u64_at(8) != u64::MAX {
        return bad("data offset is not 0xFFFFFFFFFFFFFFFF".into());
    }
    if u32_at(24) != FORMAT_VERSION {
        return bad(format!("header version {:#010x}", u32_at(24)));
    }
    let table_offset = u64_at(16);
    let entries = u32_at(28) as u64;
    let block_size = u32_at(32) as u64;
    if !block_size.is_power_of_two() || block_size < 512 {
        return bad(format!("block size {block_size} is not a power of 2"));
    }
    if entries * block_size < footer.current_size {
        return bad(format!(
            "{entries} blocks of {block_size} bytes do not cover the {}-byte disk",
            footer.current_size
        ));
    }
    if table_offset % 512 != 0 || table_offset + entries * 4 > file_size - 512 {
        return Err(VhdError::Bat(format!(
            "{entries} entries at byte {table_offset} lie outside the file"
        )));
    }
    let mut bat = vec![0u8; (entries * 4) as usize];
    f.seek(SeekFrom::Start(table_offset))?;
    f.read_exact(&mut bat)?;
    // Each block: its sector bitmap (one bit per sector, padded to a
    // sector), then the data.
    let bitmap = (block_size / 512).div_ceil(8).div_ceil(512) * 512;
    let mut blocks = 0;
    for (i, e) in bat.chunks_exact(4).enumerate() {
        let sector = u32::from_be_bytes(e.try_into().unwrap());
        if sector == u32::MAX {
            continue;
        }
        let start = sector as u64 * 512;
        if start < table_offset + entries * 4 || start + bitmap + block_size > file_size - 512 {
            return Err(VhdError::Bat(format!(
                "block {i} at sector {sector} lies outside the data area"
            )));
        }
        blocks += 1;
    }
    Ok(VhdInfo {
        footer,
        blocks,
        block_size,
        file_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chs_follows_the_spec_algorithm() {
        // 40 GiB: beyond 65535*16*63 sectors, so 255 sectors and 16 heads.
        assert_eq!(
            chs_for(40 << 21),
            Chs {
                cylinders: 20560,
                heads: 16,
                sectors: 255
            }
        );
        // 127 GiB and more: the maximum.
        assert_eq!(
            chs_for(2 << 40 >> 9),
            Chs {
                cylinders: 65535,
                heads: 16,
                sectors: 255
            }
        );
        // Small disks: 17 sectors, at least 4 heads.
        assert_eq!(
            chs_for(20 << 11), // 20 MiB
            Chs {
                cylinders: 602,
                heads: 4,
                sectors: 17
            }
        );
        // 1 GiB: neither 17 nor 31 spt fits in 1024 cylinders x 16 heads.
        let c = chs_for(1 << 21);
        assert_eq!((c.heads, c.sectors), (16, 63));
        assert_eq!(c.cylinders, 2080);
        // 200 MiB: 17 spt would need more than 16 heads, 31 spt fits.
        let c = chs_for(200 << 11);
        assert_eq!((c.cylinders, c.heads, c.sectors), (825, 16, 31));
    }

    fn footer() -> Footer {
        let size = 40u64 << 30;
        Footer {
            features: FEATURES_RESERVED,
            format_version: FORMAT_VERSION,
            data_offset: 512,
            timestamp: 0,
            creator_app: *b"qem2",
            creator_version: 0x0005_0003,
            creator_os: *b"Wi2k",
            original_size: size,
            current_size: size,
            geometry: chs_for(size / 512),
            disk_type: DISK_DYNAMIC,
            checksum: 0,
            unique_id: [7; 16],
            saved_state: 0,
        }
    }

    fn sealed(mut f: Footer) -> (Footer, [u8; 512]) {
        f.checksum = checksum(&f.to_bytes(), 64);
        let b = f.to_bytes();
        (f, b)
    }

    #[test]
    fn footer_layout_and_checksum() {
        let (f, b) = sealed(footer());
        assert_eq!(&b[0..8], b"conectix");
        assert_eq!(&b[8..12], &[0, 0, 0, 2]);
        assert_eq!(&b[12..16], &[0, 1, 0, 0]);
        assert_eq!(&b[48..56], &(40u64 << 30).to_be_bytes());
        assert_eq!(&b[56..60], &[0x50, 0x50, 16, 255]); // 20560 cylinders
        assert_eq!(&b[60..64], &[0, 0, 0, 3]);
        // The checksum: one's complement of the byte sum without the field.
        let sum: u32 = b.iter().map(|&x| x as u32).sum::<u32>()
            - b[64..68].iter().map(|&x| x as u32).sum::<u32>();
        assert_eq!(f.checksum, !sum);
        assert_eq!(Footer::parse(&b).unwrap(), f);
        f.validate(&b).unwrap();
    }

    #[test]
    fn footer_faults_are_named() {
        let (f, mut b) = sealed(footer());
        b[100] ^= 1;
        let e = f.validate(&b).unwrap_err().to_string();
        assert!(e.contains("checksum"), "{e}");

        let (f, b) = sealed(Footer {
            current_size: (40 << 30) + 512,
            ..footer()
        });
        let e = f.validate(&b).unwrap_err().to_string();
        assert!(e.contains("MiB"), "{e}");

        let (f, b) = sealed(Footer {
            geometry: Chs {
                cylinders: 1,
                heads: 1,
                sectors: 1,
            },
            ..footer()
        });
        let e = f.validate(&b).unwrap_err().to_string();
        assert!(e.contains("geometry"), "{e}");

        let mut b = [0u8; 512];
        b[..8].copy_from_slice(b"notavhd!");
        assert!(Footer::parse(&b).is_err());
    }
}
