//! Which disks the VM has, in a stable order: the order of their place on
//! the hardware (controller, then target), never their kernel names, which
//! VMware's and Hyper-V's controllers hand out in probe order.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use super::blockdev::Sysfs;

/// A whole disk that could be the patch disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Kernel name (sdb, vdb, nvme0n1).
    pub name: String,
    /// Its sysfs device path, from `/sys/devices` on: where it sits.
    pub location: String,
    pub sectors: u64,
}

impl Candidate {
    pub fn dev_path(&self) -> PathBuf {
        Path::new("/dev").join(&self.name)
    }

    pub fn size_bytes(&self) -> u64 {
        self.sectors * 512
    }
}

/// Kernel names of block devices that are never disks of the VM's own:
/// CD-ROMs (the OVF environment comes on one), floppies, RAM and loop
/// devices, device-mapper and md.
fn is_disk_name(name: &str) -> bool {
    const NOT_DISKS: [&str; 7] = ["sr", "fd", "loop", "ram", "zram", "dm-", "md"];
    !NOT_DISKS.iter().any(|p| name.starts_with(p))
}

/// Compares two hardware paths piece by piece, numbers as numbers: SCSI
/// target 0:0:10:0 comes after 0:0:2:0. PCI addresses are fixed-width hex,
/// which compares right as text.
pub fn hardware_order(a: &str, b: &str) -> Ordering {
    let pieces = |s: &str| -> Vec<String> { s.split(['/', ':', '.']).map(str::to_owned).collect() };
    let (pa, pb) = (pieces(a), pieces(b));
    for (x, y) in pa.iter().zip(&pb) {
        let o = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(m), Ok(n)) if !x.is_empty() && !y.is_empty() => m.cmp(&n),
            _ => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    pa.len().cmp(&pb.len())
}

impl Sysfs {
    /// Every whole disk but `boot`, in hardware order.
    pub fn other_disks(&self, boot: &str) -> Vec<Candidate> {
        let dir = self.root().join("block");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut found: Vec<Candidate> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                if name == boot || !is_disk_name(&name) {
                    return None;
                }
                let real = std::fs::canonicalize(e.path()).ok()?;
                let location = real
                    .strip_prefix(self.root().join("devices"))
                    .ok()?
                    .to_string_lossy()
                    .into_owned();
                if location.starts_with("virtual/") {
                    return None;
                }
                let sectors = std::fs::read_to_string(real.join("size"))
                    .ok()?
                    .trim()
                    .parse()
                    .ok()?;
                Some(Candidate {
                    name,
                    location,
                    sectors,
                })
            })
            .collect();
        found.sort_by(|a, b| hardware_order(&a.location, &b.location));
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn disk(root: &Path, devpath: &str, sectors: u64) {
        let real = root.join("devices").join(devpath);
        fs::create_dir_all(&real).unwrap();
        fs::write(real.join("size"), format!("{sectors}\n")).unwrap();
        let name = Path::new(devpath).file_name().unwrap();
        fs::create_dir_all(root.join("block")).unwrap();
        std::os::unix::fs::symlink(&real, root.join("block").join(name)).unwrap();
    }

    #[test]
    fn disks_come_in_hardware_order_whatever_their_names() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let scsi = "pci0000:00/0000:00:10.0/host2";
        // Probed out of order: sdb sits at target 10, sdc at target 2.
        disk(r, &format!("{scsi}/target2:0:0/2:0:0:0/block/sda"), 80);
        disk(r, &format!("{scsi}/target2:0:10/2:0:10:0/block/sdb"), 20);
        disk(r, &format!("{scsi}/target2:0:2/2:0:2:0/block/sdc"), 30);
        disk(r, "pci0000:00/0000:00:0a.0/virtio3/block/vda", 40);
        disk(r, "pci0000:00/0000:00:09.0/nvme/nvme0/nvme0n1", 50);
        disk(
            r,
            "pci0000:00/0000:00:01.1/ata2/host1/target1:0:0/1:0:0:0/block/sr0",
            1,
        );
        disk(r, "virtual/block/loop0", 1);
        disk(r, "virtual/block/zram0", 1);
        // The old IDE driver's names (hd*), on the PIIX controller, before
        // the other PCI devices.
        disk(r, "pci0000:00/0000:00:01.1/ide0/0.1/block/hdb", 60);
        // Xen's paravirtual disks (xvd*) sit outside the PCI tree, by
        // their virtual block device number.
        disk(r, "vbd-51744/block/xvdc", 70);
        disk(r, "vbd-51728/block/xvdb", 70);
        let names: Vec<String> = Sysfs::at(r)
            .other_disks("sda")
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(
            names,
            ["hdb", "nvme0n1", "vda", "sdc", "sdb", "xvdb", "xvdc"]
        );
        // A Xen guest booted from xvda: the others, whatever the order in
        // which sysfs lists them.
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for (n, name) in [
            (51760, "xvdd"),
            (51712, "xvda"),
            (51744, "xvdc"),
            (51728, "xvdb"),
        ] {
            disk(r, &format!("vbd-{n}/block/{name}"), 80);
        }
        let names: Vec<String> = Sysfs::at(r)
            .other_disks("xvda")
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["xvdb", "xvdc", "xvdd"]);
    }

    #[test]
    fn numbers_compare_as_numbers_and_hex_as_text() {
        assert_eq!(hardware_order("t0:0:2:0", "t0:0:10:0"), Ordering::Less);
        assert_eq!(
            hardware_order("0000:00:09.0", "0000:00:0a.0"),
            Ordering::Less
        );
        assert_eq!(hardware_order("a/b", "a/b/c"), Ordering::Less);
    }
}
