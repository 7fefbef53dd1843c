//! OVF packages: the OVA (one ustar archive: the `.ovf` descriptor first,
//! then the disk, then the `.mf` manifest, as DSP0243 allows the manifest
//! at the end, which lets a producer stream the disk before its digest is
//! known) and the same files side by side in a directory. [`check_ova`] and
//! [`check_ovf_dir`] check what vSphere checks on import, and more: member
//! order, every referenced file present with its declared size, every
//! manifest digest, and each disk's VMDK structure and capacity against the
//! descriptor.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::manifest::{self, ManifestError};
use crate::ovf::{self, OvfError, OvfInfo};
use crate::vmdk::{self, VmdkError, VmdkInfo};

/// Archive member timestamps: fixed (2025-01-01T00:00:00Z), so two builds
/// of the same files give the same OVA.
const MTIME: u64 = 1_735_689_600;

#[derive(Debug, Error)]
pub enum PackageError {
    #[error("OVA archive: {0}")]
    Archive(String),
    #[error("OVA member order: {0}")]
    Order(String),
    #[error("OVF package: {0}")]
    Reference(String),
    #[error("manifest: {0}")]
    Manifest(String),
    #[error("manifest: {0}")]
    ManifestFormat(#[from] ManifestError),
    #[error("manifest digest of {name} does not match: manifest {expected}, file {actual} (the file is corrupt or was changed)")]
    Digest {
        name: String,
        expected: String,
        actual: String,
    },
    #[error("disk {name}: {source}")]
    Disk { name: String, source: VmdkError },
    #[error("disk {name}: {message}")]
    DiskMismatch { name: String, message: String },
    #[error(transparent)]
    Ovf(#[from] OvfError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// One file of a package, as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub size: u64,
    pub sha256: String,
    /// Where its bytes start in the archive (0 for a file of a directory).
    pub offset: u64,
}

/// What a package check found.
#[derive(Debug, Clone)]
pub struct PackageInfo {
    pub ovf: OvfInfo,
    pub members: Vec<Member>,
    pub disks: Vec<(String, VmdkInfo)>,
}

/// Writes an OVA at `out`: a ustar archive of `files` (name in the archive,
/// path on disk), in the order given.
pub fn write_ova(out: &Path, files: &[(&str, &Path)]) -> io::Result<()> {
    let mut b = tar::Builder::new(io::BufWriter::new(File::create(out)?));
    for (name, path) in files {
        let f = File::open(path)?;
        let mut h = tar::Header::new_ustar();
        h.set_size(f.metadata()?.len());
        h.set_mode(0o644);
        h.set_mtime(MTIME);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, io::BufReader::new(f))?;
    }
    b.into_inner()?
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()
}

/// A byte range of a file, read and sought as a file of its own.
struct Window {
    f: File,
    start: u64,
    len: u64,
    pos: u64,
}

impl Read for Window {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.f.seek(SeekFrom::Start(self.start + self.pos))?;
        let k = self.f.read(&mut buf[..n])?;
        self.pos += k as u64;
        Ok(k)
    }
}

impl Seek for Window {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let p = match to {
            SeekFrom::Start(p) => p as i128,
            SeekFrom::End(d) => self.len as i128 + d as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
        };
        if p < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before start",
            ));
        }
        self.pos = p as u64;
        Ok(self.pos)
    }
}

/// Checks an OVA file.
pub fn check_ova(path: &Path) -> Result<PackageInfo, PackageError> {
    let io_err = |source| PackageError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let mut archive = tar::Archive::new(file);
    let mut members = Vec::new();
    let mut ovf_text = None;
    let mut mf_text = None;
    for entry in archive
        .entries()
        .map_err(|e| PackageError::Archive(e.to_string()))?
    {
        let mut entry = entry.map_err(|e| PackageError::Archive(e.to_string()))?;
        let name = entry
            .path()
            .map_err(|e| PackageError::Archive(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(PackageError::Archive(format!(
                "member {name:?} is not a regular file"
            )));
        }
        if entry.header().as_ustar().is_none() {
            return Err(PackageError::Archive(format!(
                "member {name:?} is not in ustar format (DSP0243 requires ustar)"
            )));
        }
        if name.contains('/') {
            return Err(PackageError::Archive(format!(
                "member {name:?} is in a folder; OVF package files are at the top level"
            )));
        }
        let offset = entry.raw_file_position();
        let size = entry.size();
        let (sha256, text) = if name.ends_with(".ovf") || name.ends_with(".mf") {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(io_err)?;
            let (d, _) = manifest::sha256_hex(bytes.as_slice()).map_err(io_err)?;
            (d, Some(String::from_utf8_lossy(&bytes).into_owned()))
        } else {
            (manifest::sha256_hex(&mut entry).map_err(io_err)?.0, None)
        };
        if members.is_empty() {
            ovf_text = text.clone().filter(|_| name.ends_with(".ovf"));
        } else if name.ends_with(".mf") {
            mf_text = text;
        }
        members.push(Member {
            name,
            size,
            sha256,
            offset,
        });
    }
    let Some(ovf_text) = ovf_text else {
        return Err(PackageError::Order(format!(
            "the first member is {:?}, not the .ovf descriptor",
            members
                .first()
                .map(|m| m.name.as_str())
                .unwrap_or("(none: empty archive)")
        )));
    };
    let ovf = ovf::check(&ovf_text)?;
    check_order(&members, &ovf)?;
    let mf_text =
        mf_text.ok_or_else(|| PackageError::Manifest("the package has no .mf manifest".into()))?;
    check_manifest(&mf_text, &members)?;
    let open = |m: &Member| -> Result<Window, PackageError> {
        Ok(Window {
            f: File::open(path).map_err(io_err)?,
            start: m.offset,
            len: m.size,
            pos: 0,
        })
    };
    let disks = check_disks(&ovf, &members, open)?;
    Ok(PackageInfo {
        ovf,
        members,
        disks,
    })
}

/// Checks an OVF package in a directory: `path` is the `.ovf`; its files
/// and its manifest (`<stem>.mf`) are beside it.
pub fn check_ovf_dir(path: &Path) -> Result<PackageInfo, PackageError> {
    let io_err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| PackageError::Io { path: p, source }
    };
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let ovf = ovf::check(&text)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let member = |name: &str| -> Result<Member, PackageError> {
        let p = dir.join(name);
        let f = File::open(&p).map_err(io_err(&p))?;
        let size = f.metadata().map_err(io_err(&p))?.len();
        let (sha256, _) = manifest::sha256_hex(io::BufReader::new(f)).map_err(io_err(&p))?;
        Ok(Member {
            name: name.into(),
            size,
            sha256,
            offset: 0,
        })
    };
    let ovf_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut members = vec![member(&ovf_name)?];
    for f in &ovf.files {
        members.push(member(&f.href).map_err(|e| {
            PackageError::Reference(format!("{} (listed in References) is missing: {e}", f.href))
        })?);
    }
    let mf = path.with_extension("mf");
    let mf_text = std::fs::read_to_string(&mf).map_err(io_err(&mf))?;
    check_references(&members, &ovf)?;
    check_manifest(&mf_text, &members)?;
    let disks = check_disks(&ovf, &members, |m| {
        let p = dir.join(&m.name);
        Ok(Window {
            f: File::open(&p).map_err(io_err(&p))?,
            start: 0,
            len: m.size,
            pos: 0,
        })
    })?;
    Ok(PackageInfo {
        ovf,
        members,
        disks,
    })
}

/// Descriptor first (the caller checked), then the referenced files in
/// References order, with the manifest right after the descriptor or last.
fn check_order(members: &[Member], ovf: &OvfInfo) -> Result<(), PackageError> {
    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    let mfs: Vec<usize> = (0..names.len())
        .filter(|&i| names[i].ends_with(".mf"))
        .collect();
    match mfs.as_slice() {
        [] => {}
        [i] if *i == 1 || *i == names.len() - 1 => {}
        [i] => {
            return Err(PackageError::Order(format!(
                "the manifest {} is member {} of {}: it must follow the descriptor or be last",
                names[*i],
                i + 1,
                names.len()
            )))
        }
        _ => return Err(PackageError::Order("more than one manifest".into())),
    }
    let rest: Vec<&str> = names[1..]
        .iter()
        .copied()
        .filter(|n| !n.ends_with(".mf") && !n.ends_with(".cert"))
        .collect();
    let want: Vec<&str> = ovf.files.iter().map(|f| f.href.as_str()).collect();
    if rest != want {
        return Err(PackageError::Order(format!(
            "files {rest:?} are not the References {want:?} in their order"
        )));
    }
    check_references(members, ovf)
}

/// Every referenced file is present with its declared size.
fn check_references(members: &[Member], ovf: &OvfInfo) -> Result<(), PackageError> {
    for f in &ovf.files {
        let Some(m) = members.iter().find(|m| m.name == f.href) else {
            return Err(PackageError::Reference(format!(
                "{} (listed in References) is missing",
                f.href
            )));
        };
        if let Some(size) = f.size {
            if size != m.size {
                return Err(PackageError::Reference(format!(
                    "{} is {} bytes, the descriptor says {size}",
                    f.href, m.size
                )));
            }
        }
    }
    Ok(())
}

/// The manifest lists every other member, and each digest matches.
fn check_manifest(text: &str, members: &[Member]) -> Result<(), PackageError> {
    let entries = manifest::parse(text)?;
    for m in members.iter().filter(|m| !m.name.ends_with(".mf")) {
        let Some(e) = entries.iter().find(|e| e.name == m.name) else {
            return Err(PackageError::Manifest(format!("{} is not listed", m.name)));
        };
        if e.sha256 != m.sha256 {
            return Err(PackageError::Digest {
                name: m.name.clone(),
                expected: e.sha256.clone(),
                actual: m.sha256.clone(),
            });
        }
    }
    for e in &entries {
        if !members.iter().any(|m| m.name == e.name) {
            return Err(PackageError::Manifest(format!(
                "lists {}, which the package does not contain",
                e.name
            )));
        }
    }
    Ok(())
}

fn check_disks(
    ovf: &OvfInfo,
    members: &[Member],
    open: impl Fn(&Member) -> Result<Window, PackageError>,
) -> Result<Vec<(String, VmdkInfo)>, PackageError> {
    let mut out = Vec::new();
    for d in &ovf.disks {
        let file = ovf.files.iter().find(|f| f.id == d.file_ref).unwrap();
        let m = members.iter().find(|m| m.name == file.href).unwrap();
        let mut w = open(m)?;
        let info = vmdk::check_reader(&mut w, m.size).map_err(|source| PackageError::Disk {
            name: m.name.clone(),
            source,
        })?;
        let mismatch = |message: String| PackageError::DiskMismatch {
            name: m.name.clone(),
            message,
        };
        if info.capacity != d.capacity {
            return Err(mismatch(format!(
                "VMDK capacity {} bytes, the descriptor's Disk {} says {}",
                info.capacity, d.id, d.capacity
            )));
        }
        if d.format == ovf::STREAM_OPTIMIZED && info.descriptor.create_type != "streamOptimized" {
            return Err(mismatch(format!(
                "createType {:?}, but the descriptor declares streamOptimized (vSphere refuses it)",
                info.descriptor.create_type
            )));
        }
        out.push((m.name.clone(), info));
    }
    Ok(out)
}
