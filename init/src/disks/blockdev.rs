//! Block devices as sysfs shows them: which disk holds the root filesystem,
//! its partitions, their sizes. Reads a sysfs tree given as a path, so tests
//! run on a fake tree.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum BlockdevError {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: expected a number, found {found:?}")]
    NotANumber { path: PathBuf, found: String },
    #[error("{path} is not a partition of a disk")]
    NotAPartition { path: PathBuf },
}

/// A partition of a disk, by kernel name (`vda4`, `sda4`, `nvme0n1p4`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDev {
    pub name: String,
    pub number: u32,
    /// In 512-byte sectors, as sysfs counts whatever the logical block size.
    pub start: u64,
    pub sectors: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    pub name: String,
    pub sectors: u64,
    pub partitions: Vec<PartitionDev>,
}

impl Disk {
    pub fn dev_path(&self) -> PathBuf {
        Path::new("/dev").join(&self.name)
    }
}

impl PartitionDev {
    pub fn dev_path(&self) -> PathBuf {
        Path::new("/dev").join(&self.name)
    }
}

pub struct Sysfs {
    root: PathBuf,
}

impl Default for Sysfs {
    fn default() -> Self {
        Sysfs {
            root: PathBuf::from("/sys"),
        }
    }
}

impl Sysfs {
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Sysfs { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The disk holding the block device `major:minor` (a partition of it).
    pub fn disk_of(&self, major: u64, minor: u64) -> Result<Disk, BlockdevError> {
        let link = self.root.join(format!("dev/block/{major}:{minor}"));
        let part_dir = std::fs::canonicalize(&link).map_err(|source| BlockdevError::Read {
            path: link.clone(),
            source,
        })?;
        if !part_dir.join("partition").exists() {
            return Err(BlockdevError::NotAPartition { path: link });
        }
        let disk_dir = part_dir
            .parent()
            .ok_or(BlockdevError::NotAPartition { path: link.clone() })?;
        self.disk_at(disk_dir)
    }

    fn disk_at(&self, dir: &Path) -> Result<Disk, BlockdevError> {
        let name = file_name(dir);
        let sectors = read_u64(&dir.join("size"))?;
        let mut partitions = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|source| BlockdevError::Read {
            path: dir.to_owned(),
            source,
        })?;
        for entry in entries.flatten() {
            let p = entry.path();
            if p.join("partition").exists() {
                partitions.push(PartitionDev {
                    name: file_name(&p),
                    number: read_u64(&p.join("partition"))? as u32,
                    start: read_u64(&p.join("start"))?,
                    sectors: read_u64(&p.join("size"))?,
                });
            }
        }
        partitions.sort_by_key(|p| p.number);
        Ok(Disk {
            name,
            sectors,
            partitions,
        })
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn read_u64(path: &Path) -> Result<u64, BlockdevError> {
    let text = std::fs::read_to_string(path).map_err(|source| BlockdevError::Read {
        path: path.to_owned(),
        source,
    })?;
    text.trim().parse().map_err(|_| BlockdevError::NotANumber {
        path: path.to_owned(),
        found: text.trim().to_owned(),
    })
}

/// major:minor of the device holding the filesystem at `path`.
pub fn device_of(path: &str) -> Result<(u64, u64), BlockdevError> {
    let st = nix::sys::stat::stat(path).map_err(|e| BlockdevError::Read {
        path: PathBuf::from(path),
        source: std::io::Error::from(e),
    })?;
    Ok((
        nix::sys::stat::major(st.st_dev),
        nix::sys::stat::minor(st.st_dev),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write(p: &Path, s: &str) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, s).unwrap();
    }

    #[test]
    fn finds_disk_and_partitions_from_a_partition_device() {
        let t = tempfile::tempdir().unwrap();
        let disk = t
            .path()
            .join("devices/pci0000:00/0000:00:04.0/virtio1/block/vda");
        write(&disk.join("size"), "83886080\n");
        for (n, start, size) in [
            (1, 2048, 131072),
            (2, 133120, 524288),
            (4, 1181696, 82700000),
        ] {
            let p = disk.join(format!("vda{n}"));
            write(&p.join("partition"), &format!("{n}\n"));
            write(&p.join("start"), &format!("{start}\n"));
            write(&p.join("size"), &format!("{size}\n"));
        }
        fs::create_dir_all(disk.join("queue")).unwrap();
        fs::create_dir_all(t.path().join("dev/block")).unwrap();
        std::os::unix::fs::symlink(disk.join("vda2"), t.path().join("dev/block/254:2")).unwrap();
        std::os::unix::fs::symlink(&disk, t.path().join("dev/block/254:0")).unwrap();

        let sys = Sysfs::at(t.path());
        let d = sys.disk_of(254, 2).unwrap();
        assert_eq!(d.name, "vda");
        assert_eq!(d.sectors, 83886080);
        let numbers: Vec<u32> = d.partitions.iter().map(|p| p.number).collect();
        assert_eq!(numbers, [1, 2, 4]);
        assert_eq!(d.partitions[2].start, 1181696);
        assert_eq!(d.partitions[2].dev_path(), Path::new("/dev/vda4"));
        assert!(matches!(
            sys.disk_of(254, 0),
            Err(BlockdevError::NotAPartition { .. })
        ));
        assert!(matches!(sys.disk_of(8, 0), Err(BlockdevError::Read { .. })));
    }
}
