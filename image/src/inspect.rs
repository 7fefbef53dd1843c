//! Looking inside a built disk image without mounting it: the partition table
//! (through gateway-gpt), which filesystem each partition holds (read from its
//! superblock or boot sector), and files and directories of an ext4 partition
//! (through ext4-view, reading only that partition's byte range). Used by the
//! `inspect` subcommand and by tests that check what a boot changed.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use gateway_gpt::{Guid, Partition};
use thiserror::Error;

use crate::layout;

/// Why a disk image could not be inspected.
#[derive(Debug, Error)]
pub enum InspectError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Gpt {
        path: PathBuf,
        source: gateway_gpt::GptError,
    },
    #[error("{path} has no partition {number}")]
    NoPartition { path: PathBuf, number: u32 },
    #[error("partition {number} of {path} does not hold an ext4 filesystem")]
    NotExt4 { path: PathBuf, number: u32 },
    #[error("{path}, partition {number}, {inner}: {source}")]
    Ext4 {
        path: PathBuf,
        number: u32,
        inner: String,
        source: ext4_view::Ext4Error,
    },
}

/// What a partition holds, judged from its first sectors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filesystem {
    Ext4(Ext4Info),
    /// FAT12/16/32 (`bits`), with the label from its boot sector.
    Fat {
        bits: u8,
        label: String,
    },
    /// The first sectors are all zeros (root B before the first update).
    Empty,
    /// Something else.
    Unknown,
}

/// The ext4 superblock fields the tests and the table care about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ext4Info {
    pub label: String,
    pub block_size: u64,
    pub blocks_count: u64,
}

/// One row of the partition table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    pub number: u32,
    pub name: String,
    /// Byte offset from the start of the disk.
    pub start: u64,
    /// Length in bytes.
    pub size: u64,
    pub type_guid: Guid,
    /// A readable name for the type, or "unknown".
    pub type_name: &'static str,
    pub partuuid: Guid,
    pub filesystem: Filesystem,
}

/// One entry of an ext4 directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntryInfo {
    pub name: String,
    /// `st_mode`-style: file type bits and permissions.
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// The target of a symbolic link.
    pub link: Option<String>,
}

// ext4 superblock fields, from the superblock's start (1024 bytes into the
// filesystem); see the kernel's Documentation/filesystems/ext4/super.rst.
const EXT4_SUPERBLOCK: u64 = 1024;
const S_BLOCKS_COUNT_LO: usize = 0x04;
const S_LOG_BLOCK_SIZE: usize = 0x18;
const S_MAGIC: usize = 0x38;
const S_FEATURE_INCOMPAT: usize = 0x60;
const S_VOLUME_NAME: usize = 0x78;
const S_BLOCKS_COUNT_HI: usize = 0x150;
const EXT4_MAGIC: u16 = 0xEF53;
const INCOMPAT_64BIT: u32 = 0x80;

/// The partition table of `disk`, with what each partition holds.
pub fn partitions(disk: &Path) -> Result<Vec<PartitionInfo>, InspectError> {
    let file = open(disk)?;
    let gpt = read_gpt(&file, disk)?;
    gpt.partitions
        .iter()
        .map(|p| {
            Ok(PartitionInfo {
                number: p.number,
                name: p.name.clone(),
                start: p.byte_offset(),
                size: p.byte_len(),
                type_guid: p.type_guid,
                type_name: layout::type_name(&p.type_guid),
                partuuid: p.unique_guid,
                filesystem: probe(&file, disk, p)?,
            })
        })
        .collect()
}

/// The ext4 superblock summary of partition `partition`.
pub fn ext4_info(disk: &Path, partition: u32) -> Result<Ext4Info, InspectError> {
    let file = open(disk)?;
    let part = find(&file, disk, partition)?;
    match probe(&file, disk, &part)? {
        Filesystem::Ext4(info) => Ok(info),
        _ => Err(InspectError::NotExt4 {
            path: disk.to_path_buf(),
            number: partition,
        }),
    }
}

/// The contents of the file at `path` (absolute) in the ext4 filesystem of
/// partition `partition`.
pub fn read_file(disk: &Path, partition: u32, path: &str) -> Result<Vec<u8>, InspectError> {
    let fs = load_ext4(disk, partition)?;
    fs.read(path).map_err(ext4_err(disk, partition, path))
}

/// The entries of the directory at `path` in the ext4 filesystem of
/// partition `partition`, sorted by name, without `.` and `..`.
pub fn list_dir(
    disk: &Path,
    partition: u32,
    path: &str,
) -> Result<Vec<DirEntryInfo>, InspectError> {
    let fs = load_ext4(disk, partition)?;
    let mut out = Vec::new();
    for entry in fs.read_dir(path).map_err(ext4_err(disk, partition, path))? {
        let entry = entry.map_err(ext4_err(disk, partition, path))?;
        let name = entry.file_name().display().to_string();
        if name == "." || name == ".." {
            continue;
        }
        let full = entry.path();
        let full_text = full.display().to_string();
        let meta = fs
            .symlink_metadata(&full)
            .map_err(ext4_err(disk, partition, &full_text))?;
        let link = if meta.is_symlink() {
            let target = fs
                .read_link(&full)
                .map_err(ext4_err(disk, partition, &full_text))?;
            Some(target.display().to_string())
        } else {
            None
        };
        out.push(DirEntryInfo {
            name,
            mode: type_bits(meta.file_type()) | meta.mode(),
            uid: meta.uid(),
            gid: meta.gid(),
            size: meta.len(),
            link,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The `st_mode` file-type bits, which ext4-view keeps apart from the
/// permission bits.
fn type_bits(kind: ext4_view::FileType) -> u16 {
    use ext4_view::FileType as T;
    match kind {
        T::BlockDevice => 0o060000,
        T::CharacterDevice => 0o020000,
        T::Directory => 0o040000,
        T::Fifo => 0o010000,
        T::Regular => 0o100000,
        T::Socket => 0o140000,
        T::Symlink => 0o120000,
    }
}

/// `ls -l`-style permissions for a mode.
pub fn mode_string(mode: u16) -> String {
    let kind = match mode & 0o170000 {
        0o040000 => 'd',
        0o120000 => 'l',
        0o020000 => 'c',
        0o060000 => 'b',
        0o010000 => 'p',
        0o140000 => 's',
        _ => '-',
    };
    let mut s = String::from(kind);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    if mode & 0o1000 != 0 {
        s.pop();
        s.push(if mode & 1 != 0 { 't' } else { 'T' });
    }
    s
}

fn open(disk: &Path) -> Result<File, InspectError> {
    File::open(disk).map_err(|source| InspectError::Read {
        path: disk.to_path_buf(),
        source,
    })
}

fn read_gpt(file: &File, disk: &Path) -> Result<gateway_gpt::Gpt, InspectError> {
    let mut head = vec![0; gateway_gpt::head_len()];
    let mut reader = file;
    reader
        .read_exact(&mut head)
        .map_err(|source| InspectError::Read {
            path: disk.to_path_buf(),
            source,
        })?;
    gateway_gpt::parse(&head).map_err(|source| InspectError::Gpt {
        path: disk.to_path_buf(),
        source,
    })
}

fn find(file: &File, disk: &Path, number: u32) -> Result<Partition, InspectError> {
    read_gpt(file, disk)?
        .partitions
        .into_iter()
        .find(|p| p.number == number)
        .ok_or_else(|| InspectError::NoPartition {
            path: disk.to_path_buf(),
            number,
        })
}

/// Reads up to `len` bytes at `offset` of the partition; short when the
/// partition is smaller.
fn read_at(
    file: &File,
    disk: &Path,
    part: &Partition,
    offset: u64,
    len: usize,
) -> Result<Vec<u8>, InspectError> {
    let avail = part.byte_len().saturating_sub(offset).min(len as u64) as usize;
    let mut buf = vec![0; avail];
    file.read_exact_at(&mut buf, part.byte_offset() + offset)
        .map_err(|source| InspectError::Read {
            path: disk.to_path_buf(),
            source,
        })?;
    Ok(buf)
}

/// Which filesystem the first sectors of a partition show.
fn probe(file: &File, disk: &Path, part: &Partition) -> Result<Filesystem, InspectError> {
    let head = read_at(file, disk, part, 0, 2048)?;
    if let Some(info) = ext4_superblock(&head) {
        return Ok(Filesystem::Ext4(info));
    }
    if let Some(fat) = fat_boot_sector(&head) {
        return Ok(fat);
    }
    if head.iter().all(|&b| b == 0) {
        return Ok(Filesystem::Empty);
    }
    Ok(Filesystem::Unknown)
}

/// Reads the ext4 superblock fields from the first 2 KiB of a partition.
fn ext4_superblock(head: &[u8]) -> Option<Ext4Info> {
    let sb = head.get(EXT4_SUPERBLOCK as usize..EXT4_SUPERBLOCK as usize + 1024)?;
    let u16_at = |at: usize| u16::from_le_bytes([sb[at], sb[at + 1]]);
    let u32_at = |at: usize| u32::from_le_bytes([sb[at], sb[at + 1], sb[at + 2], sb[at + 3]]);
    if u16_at(S_MAGIC) != EXT4_MAGIC {
        return None;
    }
    let log = u32_at(S_LOG_BLOCK_SIZE);
    // Valid ext4 block sizes are 1 KiB to 64 KiB.
    if log > 6 {
        return None;
    }
    let mut blocks_count = u64::from(u32_at(S_BLOCKS_COUNT_LO));
    if u32_at(S_FEATURE_INCOMPAT) & INCOMPAT_64BIT != 0 {
        blocks_count |= u64::from(u32_at(S_BLOCKS_COUNT_HI)) << 32;
    }
    Some(Ext4Info {
        label: c_string(&sb[S_VOLUME_NAME..S_VOLUME_NAME + 16]),
        block_size: 1024 << log,
        blocks_count,
    })
}

/// Recognises a FAT boot sector by its signature and file-system type field.
fn fat_boot_sector(head: &[u8]) -> Option<Filesystem> {
    let bs = head.get(..512)?;
    if bs[510..512] != [0x55, 0xAA] {
        return None;
    }
    // FAT32 keeps the type string and label further in than FAT12/16.
    if &bs[82..90] == b"FAT32   " {
        return Some(Filesystem::Fat {
            bits: 32,
            label: c_string(&bs[71..82]).trim_end().to_string(),
        });
    }
    for (name, bits) in [(b"FAT12   ", 12), (b"FAT16   ", 16)] {
        if &bs[54..62] == name {
            return Some(Filesystem::Fat {
                bits,
                label: c_string(&bs[43..54]).trim_end().to_string(),
            });
        }
    }
    None
}

fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn ext4_err<'a>(
    disk: &'a Path,
    number: u32,
    inner: &'a str,
) -> impl Fn(ext4_view::Ext4Error) -> InspectError + 'a {
    move |source| InspectError::Ext4 {
        path: disk.to_path_buf(),
        number,
        inner: inner.to_string(),
        source,
    }
}

/// Loads the ext4 filesystem of a partition through a reader confined to
/// the partition's byte range.
fn load_ext4(disk: &Path, number: u32) -> Result<ext4_view::Ext4, InspectError> {
    let file = open(disk)?;
    let part = find(&file, disk, number)?;
    // Say "not ext4" plainly rather than with ext4-view's superblock error.
    if !matches!(probe(&file, disk, &part)?, Filesystem::Ext4(_)) {
        return Err(InspectError::NotExt4 {
            path: disk.to_path_buf(),
            number,
        });
    }
    let reader = PartitionReader {
        file,
        start: part.byte_offset(),
        len: part.byte_len(),
    };
    ext4_view::Ext4::load(Box::new(reader)).map_err(ext4_err(disk, number, "loading ext4"))
}

/// ext4-view's reader over one partition of the disk file: offsets are
/// relative to the partition, and reads past its end fail instead of
/// wandering into the next partition.
struct PartitionReader {
    file: File,
    start: u64,
    len: u64,
}

#[derive(Debug, Error)]
#[error("read of {len} bytes at {offset} is beyond the partition's end ({size} bytes)")]
struct OutOfPartition {
    offset: u64,
    len: usize,
    size: u64,
}

impl ext4_view::Ext4Read for PartitionReader {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        let end = start_byte.checked_add(dst.len() as u64);
        if end.is_none_or(|end| end > self.len) {
            return Err(Box::new(OutOfPartition {
                offset: start_byte,
                len: dst.len(),
                size: self.len,
            }));
        }
        self.file.read_exact_at(dst, self.start + start_byte)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(mode_string(0o040755), "drwxr-xr-x");
        assert_eq!(mode_string(0o100644), "-rw-r--r--");
        assert_eq!(mode_string(0o120777), "lrwxrwxrwx");
        assert_eq!(mode_string(0o041777), "drwxrwxrwt");
        assert_eq!(mode_string(0o040700), "drwx------");
    }

    #[test]
    fn short_or_foreign_heads_are_not_filesystems() {
        assert_eq!(ext4_superblock(&[0; 100]), None);
        assert_eq!(ext4_superblock(&[0; 2048]), None);
        assert_eq!(fat_boot_sector(&[0; 10]), None);
        let mut sb = vec![0u8; 2048];
        sb[1024 + S_MAGIC..1024 + S_MAGIC + 2].copy_from_slice(&EXT4_MAGIC.to_le_bytes());
        sb[1024 + S_LOG_BLOCK_SIZE] = 2;
        sb[1024 + S_BLOCKS_COUNT_LO] = 10;
        sb[1024 + S_VOLUME_NAME..1024 + S_VOLUME_NAME + 5].copy_from_slice(b"STATE");
        assert_eq!(
            ext4_superblock(&sb),
            Some(Ext4Info {
                label: "STATE".into(),
                block_size: 4096,
                blocks_count: 10
            })
        );
        sb[1024 + S_LOG_BLOCK_SIZE] = 40;
        assert_eq!(ext4_superblock(&sb), None, "absurd block size");
    }
}
