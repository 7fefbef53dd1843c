//! What a disk holds, from its first mebibyte: nothing (never written), our
//! patch filesystem, or something else that must not be formatted without
//! the administrator's say-so.

use super::ext4::{Superblock, SUPERBLOCK_OFFSET};

/// How much of the disk is read to tell.
pub const PROBE_LEN: usize = 1 << 20;

/// The label of the patch disk's filesystem.
pub const PATCH_LABEL: &str = "PATCH";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// All zeros: a new virtual disk.
    Blank,
    /// The appliance's own patch filesystem.
    Patch(Superblock),
    /// Anything else, named as well as we can ("an ext4 filesystem labelled
    /// data", "a GPT partition table", "data of an unknown kind").
    Foreign(String),
}

fn has(probe: &[u8], offset: usize, magic: &[u8]) -> bool {
    probe.get(offset..offset + magic.len()) == Some(magic)
}

pub fn classify(probe: &[u8]) -> Content {
    if probe.iter().all(|&b| b == 0) {
        return Content::Blank;
    }
    let sb_at = SUPERBLOCK_OFFSET as usize;
    if let Some(sb) = probe.get(sb_at..).and_then(Superblock::parse) {
        if sb.label == PATCH_LABEL {
            return Content::Patch(sb);
        }
        return Content::Foreign(if sb.label.is_empty() {
            "an ext2/3/4 filesystem".to_owned()
        } else {
            format!("an ext2/3/4 filesystem labelled {:?}", sb.label)
        });
    }
    // Magic numbers and where they sit (util-linux's libblkid has the
    // same table); checked before the MBR signature, which a filesystem's
    // boot sector also carries.
    let known: [(usize, &[u8], &str); 8] = [
        (512, b"EFI PART", "a GPT partition table"),
        (0, b"XFSB", "an XFS filesystem"),
        (0x10040, b"_BHRfS_M", "a Btrfs filesystem"),
        (3, b"NTFS    ", "an NTFS filesystem"),
        (0x52, b"FAT32   ", "a FAT32 filesystem"),
        (0x36, b"FAT1", "a FAT filesystem"),
        (4086, b"SWAPSPACE2", "a Linux swap area"),
        (512, b"LABELONE", "an LVM physical volume"),
    ];
    for (offset, magic, what) in known {
        if has(probe, offset, magic) {
            return Content::Foreign(what.to_owned());
        }
    }
    if has(probe, 510, &[0x55, 0xaa]) {
        return Content::Foreign("an MBR partition table".to_owned());
    }
    Content::Foreign("data of an unknown kind".to_owned())
}

/// Reads the probe from a device.
pub fn read(device: &std::path::Path) -> std::io::Result<Content> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(device)?;
    let mut buf = vec![0u8; PROBE_LEN];
    let mut got = 0;
    // A disk smaller than the probe is read to its end.
    while got < buf.len() {
        match f.read_at(&mut buf[got..], got as u64)? {
            0 => break,
            n => got += n,
        }
    }
    buf.truncate(got);
    Ok(classify(&buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext4(label: &str) -> Vec<u8> {
        let mut d = vec![0u8; PROBE_LEN];
        let sb = &mut d[1024..2048];
        sb[0x38] = 0x53;
        sb[0x39] = 0xef;
        sb[0x04..0x08].copy_from_slice(&1000u32.to_le_bytes());
        sb[0x18] = 2; // 4 KiB blocks
        sb[0x78..0x78 + label.len()].copy_from_slice(label.as_bytes());
        d
    }

    #[test]
    fn tells_blank_ours_and_foreign_apart() {
        assert_eq!(classify(&vec![0; PROBE_LEN]), Content::Blank);
        match classify(&ext4("PATCH")) {
            Content::Patch(sb) => assert_eq!(sb.size_bytes(), 4096 * 1000),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            classify(&ext4("data")),
            Content::Foreign("an ext2/3/4 filesystem labelled \"data\"".into())
        );
        let mut xfs = vec![0; PROBE_LEN];
        xfs[..4].copy_from_slice(b"XFSB");
        assert_eq!(classify(&xfs), Content::Foreign("an XFS filesystem".into()));
        let mut gpt = vec![0; PROBE_LEN];
        gpt[510] = 0x55;
        gpt[511] = 0xaa;
        gpt[512..520].copy_from_slice(b"EFI PART");
        assert_eq!(
            classify(&gpt),
            Content::Foreign("a GPT partition table".into())
        );
        gpt[512..520].fill(0);
        assert_eq!(
            classify(&gpt),
            Content::Foreign("an MBR partition table".into())
        );
        let mut junk = vec![0; 4096];
        junk[100] = 1;
        assert_eq!(
            classify(&junk),
            Content::Foreign("data of an unknown kind".into())
        );
        // A short read (a tiny disk) is still classified, never a panic.
        assert_eq!(
            classify(&[0x55; 3]),
            Content::Foreign("data of an unknown kind".into())
        );
    }
}
