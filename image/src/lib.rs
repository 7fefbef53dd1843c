//! The appliance image builder: this crate owns the disk layout (partition
//! sizes, fixed GUIDs, the kernel command line), the root filesystem's
//! contents, the bootable raw disk image, the hypervisor images made from it
//! (OVA/OVF with a stream-optimized VMDK, VMDK, VHD, qcow2) and their
//! checks (`verify`), and looking inside built images.
//! It builds everything rootless from files with Debian's tools (mkfs.ext4
//! -d, mkfs.vfat and mtools, syslinux's mtools installer, sfdisk on a file):
//! no loop devices, no mounts. It does not own the on-disk GPT format (the
//! gateway-gpt crate does) nor anything that runs inside the appliance.

pub mod cli;
pub mod disk;
pub mod elf;
pub mod images;
pub mod inspect;
pub mod layout;
pub mod manifest;
pub mod ova;
pub mod ovf;
pub mod qcow2;
pub mod rootfs;
pub mod size;
mod sparse;
mod tool;
pub mod verify;
pub mod vhd;
pub mod vmdk;

use std::path::{Path, PathBuf};

pub use disk::{build_disk, DiskError, DiskSpec};
pub use images::{build_images, ImagesError, ImagesSpec};
pub use inspect::{
    ext4_info, list_dir, partitions, read_file, DirEntryInfo, Ext4Info, Filesystem, InspectError,
    PartitionInfo,
};
pub use layout::{kernel_cmdline, ROOT_A_PARTUUID};
pub use rootfs::{build_rootfs, RootfsError, RootfsReport, RootfsSpec};
pub use tool::ToolError;
pub use verify::{verify, VerifyError};

/// A progress line on stderr: builds take seconds to minutes, and a line per
/// step shows which tool is running when one hangs or fails.
fn progress(line: &str) {
    eprintln!("gateway-image: {line}");
}

/// `<out>.tmp`: where an output is built before it is renamed into place.
fn tmp_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    out.with_file_name(name)
}

/// Removes a half-written output when a build step fails.
struct RemoveOnDrop(PathBuf);

impl RemoveOnDrop {
    /// The output is complete: keep it.
    fn disarm(self) {
        std::mem::forget(self);
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
