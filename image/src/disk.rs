//! The bootable disk image, built rootless from files: a FAT32 boot partition
//! made with mkfs.vfat and mtools, holding the kernel and syslinux for both
//! BIOS (`syslinux --install` + gptmbr.bin) and UEFI (syslinux.efi as the
//! removable-media loader); the root filesystem built by `rootfs`; an empty
//! root B; a state filesystem; all placed by sfdisk on a sparse file.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use gateway_gpt::Guid;
use thiserror::Error;

use crate::layout::{self, PartitionSpec, MIB, SECTOR};
use crate::size::show_size;
use crate::sparse;
use crate::tool::{self, ToolError};

/// syslinux's MBR boot code for GPT disks (Debian package syslinux).
pub const GPTMBR: &str = "/usr/lib/syslinux/mbr/gptmbr.bin";
/// syslinux's UEFI loader (Debian package syslinux-efi).
pub const SYSLINUX_EFI: &str = "/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi";
/// The core module syslinux.efi loads from beside itself (syslinux-common).
pub const LDLINUX_E64: &str = "/usr/lib/syslinux/modules/efi64/ldlinux.e64";
/// The part of sector 0 that holds boot code; the rest is the partition
/// table and signature, which sfdisk wrote.
const MBR_CODE_LEN: usize = 440;

/// Why the disk could not be built.
#[derive(Debug, Error)]
pub enum DiskError {
    #[error("disk size (--size) {size} bytes is not a whole number of MiB")]
    SizeNotAligned { size: u64 },
    #[error("disk size (--size) {} is too small: the layout needs at least {}", show_size(*size), show_size(*min))]
    SizeTooSmall { size: u64, min: u64 },
    #[error("kernel {path}: {source}")]
    Kernel {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("root filesystem {path}: {source}")]
    Root {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("root filesystem {path} is {} but the root partition holds {}", show_size(*size), show_size(*max))]
    RootTooLarge { path: PathBuf, size: u64, max: u64 },
    #[error("bootloader file {path} is missing (install Debian's syslinux, syslinux-common and syslinux-efi): {source}")]
    Bootloader {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create a temporary directory: {source}")]
    TempDir { source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read back {path}: {source}")]
    ReadBack {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the partition table written to {path} is not valid: {source}")]
    Gpt {
        path: PathBuf,
        source: gateway_gpt::GptError,
    },
    #[error("the partition table written to {path} does not match the layout: {what}")]
    Layout { path: PathBuf, what: String },
    #[error(transparent)]
    Tool(#[from] ToolError),
}

/// What to build.
#[derive(Clone, Debug)]
pub struct DiskSpec {
    /// The kernel (bzImage) copied to the boot partition.
    pub kernel: PathBuf,
    /// The root filesystem image from `rootfs`.
    pub root: PathBuf,
    /// The raw disk image to write.
    pub out: PathBuf,
    /// Virtual size in bytes: a multiple of 1 MiB, at least
    /// [`layout::min_disk_size`].
    pub size: u64,
    /// Where to write the kernel command line (no trailing newline), for
    /// tools that boot the kernel directly.
    pub cmdline_out: Option<PathBuf>,
}

/// The bootloader configuration, shared by the BIOS and UEFI paths. No
/// prompt, and none opened by a key held at start (NOESCAPE 1): nobody at
/// the VM's console changes the kernel command line, where
/// `gateway.selftest=serial` would open a root command channel; were a
/// prompt open, ALLOWOPTIONS 0 still boots the label with its own line only
/// (docs/security.md).
pub fn syslinux_cfg() -> String {
    format!(
        "DEFAULT gateway\nPROMPT 0\nTIMEOUT 0\nNOESCAPE 1\nALLOWOPTIONS 0\nLABEL gateway\n  LINUX /bzImage\n  APPEND {}\n",
        layout::kernel_cmdline()
    )
}

/// Builds the disk image described by `spec`. It is written to `<out>.tmp`
/// and renamed over `out` once complete and verified, so a failed build
/// leaves nothing at `out` (and removes the temporary file).
pub fn build_disk(spec: &DiskSpec) -> Result<(), DiskError> {
    check_size(spec.size)?;
    let kernel = open_input(&spec.kernel).map_err(|source| DiskError::Kernel {
        path: spec.kernel.clone(),
        source,
    })?;
    let root = open_input(&spec.root).map_err(|source| DiskError::Root {
        path: spec.root.clone(),
        source,
    })?;
    let root_len = root.metadata().map_or(0, |m| m.len());
    if root_len > layout::ROOT_SIZE {
        return Err(DiskError::RootTooLarge {
            path: spec.root.clone(),
            size: root_len,
            max: layout::ROOT_SIZE,
        });
    }
    drop(kernel);
    for path in [GPTMBR, SYSLINUX_EFI, LDLINUX_E64] {
        fs::metadata(path).map_err(|source| DiskError::Bootloader {
            path: path.into(),
            source,
        })?;
    }

    let work = tempfile::Builder::new()
        .prefix("gateway-disk.")
        .tempdir()
        .map_err(|source| DiskError::TempDir { source })?;
    let tmp = crate::tmp_path(&spec.out);
    let guard = crate::RemoveOnDrop(tmp.clone());
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DiskError::Write { path, source }
    };

    crate::progress(&format!(
        "creating {} ({} sparse)",
        spec.out.display(),
        show_size(spec.size)
    ));
    let disk = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(write_err(&tmp))?;
    disk.set_len(spec.size).map_err(write_err(&tmp))?;

    crate::progress("building the boot partition (FAT32, syslinux BIOS + UEFI)");
    let boot = build_boot(work.path(), &spec.kernel)?;
    crate::progress("building the state filesystem (ext4, label STATE)");
    let state = build_state(work.path(), spec.size)?;

    crate::progress("writing the partition table (GPT)");
    tool::run(
        tool::command("sfdisk")
            .args(["--quiet", "--no-reread", "--no-tell-kernel"])
            .arg(&tmp),
        Some(sfdisk_script(spec.size).as_bytes()),
    )?;
    let mbr = fs::read(GPTMBR).map_err(|source| DiskError::Bootloader {
        path: GPTMBR.into(),
        source,
    })?;
    // gptmbr.bin is exactly the boot-code area; never let it reach the
    // partition records after it.
    let code = &mbr[..mbr.len().min(MBR_CODE_LEN)];
    disk.write_all_at(code, 0).map_err(write_err(&tmp))?;

    for (part, image) in [
        (&layout::BOOT, boot.as_path()),
        (&layout::ROOT_A, spec.root.as_path()),
        (&layout::STATE, state.as_path()),
    ] {
        crate::progress(&format!(
            "copying {} into partition {} ({}) at {} MiB",
            image.file_name().map_or_else(
                || image.display().to_string(),
                |n| n.to_string_lossy().into_owned()
            ),
            part.number,
            part.name,
            part.start / MIB
        ));
        let src = File::open(image).map_err(|source| DiskError::ReadBack {
            path: image.to_path_buf(),
            source,
        })?;
        sparse::copy_sparse(&src, &disk, part.start).map_err(write_err(&tmp))?;
    }
    disk.sync_all().map_err(write_err(&tmp))?;

    crate::progress("verifying the partition table");
    verify(&disk, &tmp, spec.size)?;
    drop(disk);

    if let Some(path) = &spec.cmdline_out {
        fs::write(path, layout::kernel_cmdline()).map_err(write_err(path))?;
    }
    fs::rename(&tmp, &spec.out).map_err(write_err(&spec.out))?;
    guard.disarm();
    let meta = fs::metadata(&spec.out).map_err(|source| DiskError::ReadBack {
        path: spec.out.clone(),
        source,
    })?;
    crate::progress(&format!(
        "wrote {}: apparent size {}, allocated {} KiB",
        spec.out.display(),
        show_size(meta.len()),
        (meta.blocks() * 512).div_ceil(1024)
    ));
    Ok(())
}

fn check_size(size: u64) -> Result<(), DiskError> {
    if !size.is_multiple_of(MIB) {
        return Err(DiskError::SizeNotAligned { size });
    }
    let min = layout::min_disk_size();
    if size < min {
        return Err(DiskError::SizeTooSmall { size, min });
    }
    Ok(())
}

/// Opens an input file, refusing directories (which open fine but are not
/// images).
fn open_input(path: &Path) -> std::io::Result<File> {
    let file = File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(file)
}

/// The sfdisk script for a disk of `size` bytes: every partition with an
/// explicit start and size so the layout does not depend on sfdisk's
/// defaults.
pub fn sfdisk_script(size: u64) -> String {
    let mut s = format!(
        "label: gpt\nlabel-id: {}\nfirst-lba: {}\n",
        layout::DISK_GUID,
        MIB / SECTOR
    );
    for p in layout::PARTITIONS {
        s.push_str(&format!(
            "start={}, size={}, type={}, uuid={}, name=\"{}\"",
            p.start / SECTOR,
            layout::partition_size(&p, size) / SECTOR,
            p.type_guid,
            p.uuid,
            p.name
        ));
        if p.attributes & layout::ATTR_LEGACY_BIOS_BOOTABLE != 0 {
            s.push_str(", attrs=\"LegacyBIOSBootable\"");
        }
        s.push('\n');
    }
    s
}

/// The FAT32 boot partition image, in `work`.
fn build_boot(work: &Path, kernel: &Path) -> Result<PathBuf, DiskError> {
    let img = work.join("boot.img");
    let size = layout::partition_size(&layout::BOOT, 0);
    File::create(&img)
        .and_then(|f| f.set_len(size))
        .map_err(|source| DiskError::Write {
            path: img.clone(),
            source,
        })?;
    let hidden = (layout::BOOT.start / SECTOR).to_string();
    // -h: the partition's start sector, which syslinux's boot record adds to
    // its own sector numbers to find ldlinux.sys on the disk.
    tool::run(
        tool::command("mkfs.vfat")
            .args([
                "-F",
                "32",
                "-n",
                layout::BOOT_LABEL,
                "-h",
                &hidden,
                "-S",
                "512",
            ])
            .args(["-i", layout::BOOT_VOLUME_ID])
            .arg(&img),
        None,
    )?;
    let cfg = work.join("syslinux.cfg");
    fs::write(&cfg, syslinux_cfg()).map_err(|source| DiskError::Write {
        path: cfg.clone(),
        source,
    })?;
    tool::run(
        tool::command("mmd")
            .arg("-i")
            .arg(&img)
            .args(["::/EFI", "::/EFI/BOOT"]),
        None,
    )?;
    let copies: [(&Path, &str); 5] = [
        (kernel, "::/bzImage"),
        (&cfg, "::/syslinux.cfg"),
        (Path::new(SYSLINUX_EFI), "::/EFI/BOOT/BOOTX64.EFI"),
        (Path::new(LDLINUX_E64), "::/EFI/BOOT/ldlinux.e64"),
        (&cfg, "::/EFI/BOOT/syslinux.cfg"),
    ];
    for (from, to) in copies {
        tool::run(
            tool::command("mcopy").arg("-i").arg(&img).arg(from).arg(to),
            None,
        )?;
    }
    // The mtools-based installer: writes ldlinux.sys/ldlinux.c32 and the
    // boot record into the image file, no mount needed.
    tool::run(tool::command("syslinux").arg("--install").arg(&img), None)?;
    Ok(img)
}

/// The state filesystem image, in `work`, sparse and the partition's size.
fn build_state(work: &Path, disk_size: u64) -> Result<PathBuf, DiskError> {
    let img = work.join("state.img");
    File::create(&img)
        .and_then(|f| f.set_len(layout::state_size(disk_size)))
        .map_err(|source| DiskError::Write {
            path: img.clone(),
            source,
        })?;
    // Few inodes (one per MiB): the state partition holds configuration
    // and logs, and small inode tables keep first-boot lazy init and
    // later growth cheap. A 16 MiB journal is plenty for that load.
    tool::run(
        tool::command("mkfs.ext4")
            .args(["-q", "-F", "-L", layout::STATE_LABEL, "-b", "4096"])
            .args(["-i", "1048576", "-J", "size=16"])
            .args(["-U", layout::STATE_FS_UUID, "-E", "root_owner=0:0"])
            .arg(&img),
        None,
    )?;
    Ok(img)
}

/// Reads the table back with our own parser and checks it against the
/// layout, so the image PID 1 will parse is the one we meant.
fn verify(disk: &File, path: &Path, size: u64) -> Result<(), DiskError> {
    let mut head = vec![0; gateway_gpt::head_len()];
    let mut reader = disk;
    std::io::Seek::seek(&mut reader, std::io::SeekFrom::Start(0))
        .and_then(|_| reader.read_exact(&mut head))
        .map_err(|source| DiskError::ReadBack {
            path: path.to_path_buf(),
            source,
        })?;
    let gpt = gateway_gpt::parse(&head).map_err(|source| DiskError::Gpt {
        path: path.to_path_buf(),
        source,
    })?;
    let mismatch = |what: String| DiskError::Layout {
        path: path.to_path_buf(),
        what,
    };
    if gpt.disk_guid != guid(layout::DISK_GUID) {
        return Err(mismatch(format!("disk GUID {}", gpt.disk_guid)));
    }
    if gpt.alternate_lba != size / SECTOR - 1 {
        return Err(mismatch(format!(
            "backup header at LBA {}",
            gpt.alternate_lba
        )));
    }
    if gpt.partitions.len() != layout::PARTITIONS.len() {
        return Err(mismatch(format!("{} partitions", gpt.partitions.len())));
    }
    for (got, want) in gpt.partitions.iter().zip(layout::PARTITIONS.iter()) {
        if !matches_spec(got, want, size) {
            return Err(mismatch(format!(
                "partition {} is {:?}, expected {:?}",
                got.number, got, want
            )));
        }
    }
    Ok(())
}

fn matches_spec(got: &gateway_gpt::Partition, want: &PartitionSpec, size: u64) -> bool {
    got.number == want.number
        && got.name == want.name
        && got.type_guid == guid(want.type_guid)
        && got.unique_guid == guid(want.uuid)
        && got.byte_offset() == want.start
        && got.byte_len() == layout::partition_size(want, size)
        && got.attributes == want.attributes
}

/// A layout constant as a GUID; the layout's unit tests check they all
/// parse, so the nil fallback is never reached.
fn guid(text: &str) -> Guid {
    Guid::parse_text(text).unwrap_or(Guid::NIL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_checks() {
        assert!(matches!(
            check_size(layout::min_disk_size() - MIB),
            Err(DiskError::SizeTooSmall { .. })
        ));
        assert!(matches!(
            check_size(layout::GIB + 1),
            Err(DiskError::SizeNotAligned { .. })
        ));
        assert!(check_size(layout::min_disk_size()).is_ok());
        let msg = DiskError::SizeTooSmall {
            size: 100 * MIB,
            min: layout::min_disk_size(),
        }
        .to_string();
        assert!(msg.contains("--size") && msg.contains("642 MiB"), "{msg}");
    }

    #[test]
    fn syslinux_cfg_boots_the_cmdline() {
        let cfg = syslinux_cfg();
        assert!(cfg.starts_with(
            "DEFAULT gateway\nPROMPT 0\nTIMEOUT 0\nNOESCAPE 1\nALLOWOPTIONS 0\nLABEL gateway\n"
        ));
        assert!(cfg.contains(&format!("  APPEND {}\n", layout::kernel_cmdline())));
    }

    #[test]
    fn sfdisk_script_marks_boot_bootable() {
        let s = sfdisk_script(2 * layout::GIB);
        assert!(s.contains("start=2048, size=131072, type=c12a7328"));
        assert!(s.contains("name=\"boot\", attrs=\"LegacyBIOSBootable\""));
        assert_eq!(s.matches("LegacyBIOSBootable").count(), 1);
    }
}
