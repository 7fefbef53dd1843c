//! The few ext4 superblock fields init needs: is it ext4, its label, its size.

/// Offset of the superblock from the start of the partition.
pub const SUPERBLOCK_OFFSET: u64 = 1024;
/// Bytes to read at [`SUPERBLOCK_OFFSET`] for [`Superblock::parse`].
pub const SUPERBLOCK_LEN: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    pub label: String,
    pub block_size: u64,
    pub blocks: u64,
}

impl Superblock {
    /// Parses the superblock bytes; None when the magic is not ext2/3/4's.
    pub fn parse(sb: &[u8]) -> Option<Self> {
        let u32_at = |o: usize| Some(u32::from_le_bytes(sb.get(o..o + 4)?.try_into().ok()?));
        if sb.get(0x38..0x3a)? != [0x53, 0xef] {
            return None;
        }
        let log_block_size = u32_at(0x18)?;
        if log_block_size > 6 {
            return None;
        }
        let blocks_lo = u64::from(u32_at(0x04)?);
        let incompat = u32_at(0x60)?;
        // INCOMPAT_64BIT: the high half of the block count is meaningful.
        let blocks_hi = if incompat & 0x80 != 0 {
            u64::from(u32_at(0x150)?)
        } else {
            0
        };
        let label_bytes = sb.get(0x78..0x88)?;
        let end = label_bytes
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(label_bytes.len());
        Some(Superblock {
            label: String::from_utf8_lossy(&label_bytes[..end]).into_owned(),
            block_size: 1024 << log_block_size,
            blocks: blocks_lo | (blocks_hi << 32),
        })
    }

    /// The filesystem's size; a block count no disk can hold (a damaged or
    /// hostile superblock) saturates rather than wraps.
    pub fn size_bytes(&self) -> u64 {
        self.blocks.saturating_mul(self.block_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb(label: &str, log_bs: u32, blocks: u64, is64: bool) -> Vec<u8> {
        let mut b = vec![0u8; SUPERBLOCK_LEN];
        b[0x04..0x08].copy_from_slice(&(blocks as u32).to_le_bytes());
        b[0x18..0x1c].copy_from_slice(&log_bs.to_le_bytes());
        b[0x38] = 0x53;
        b[0x39] = 0xef;
        if is64 {
            b[0x60..0x64].copy_from_slice(&0x80u32.to_le_bytes());
            b[0x150..0x154].copy_from_slice(&((blocks >> 32) as u32).to_le_bytes());
        }
        b[0x78..0x78 + label.len()].copy_from_slice(label.as_bytes());
        b
    }

    #[test]
    fn reads_label_and_size() {
        let s = Superblock::parse(&sb("STATE", 2, 1 << 20, true)).unwrap();
        assert_eq!(s.label, "STATE");
        assert_eq!(s.block_size, 4096);
        assert_eq!(s.size_bytes(), 4 << 30);
    }

    #[test]
    fn high_block_count_only_with_64bit_feature() {
        let big = (1u64 << 32) + 5;
        assert_eq!(
            Superblock::parse(&sb("x", 2, big, true)).unwrap().blocks,
            big
        );
        assert_eq!(
            Superblock::parse(&sb("x", 2, big, false)).unwrap().blocks,
            5
        );
    }

    #[test]
    fn a_block_count_past_u64_bytes_saturates() {
        // Found by the ext4 fuzz target: 64 KiB blocks, 2^64 - 1 of them.
        let s = Superblock::parse(&sb("x", 6, u64::MAX, true)).unwrap();
        assert_eq!(s.block_size, 65536);
        assert_eq!(s.size_bytes(), u64::MAX);
    }

    #[test]
    fn rejects_other_data() {
        assert_eq!(Superblock::parse(&[0u8; SUPERBLOCK_LEN]), None);
        assert_eq!(Superblock::parse(&[0u8; 10]), None);
        let mut bad = sb("x", 9, 1, false);
        bad[0x18] = 40;
        assert_eq!(Superblock::parse(&bad), None);
    }
}
