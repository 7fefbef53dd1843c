//! The disk tier's files, on the patch disk: per object `<h>.meta` (its
//! metadata, the SHA-256 of its body and the name of its body file, JSON)
//! and the body `<h>.<unique>.data`, where `<h>` is the SHA-256 of the key.
//! A fill writes `<h>.<n>.tmp`, then fsyncs it, renames it to a data name
//! no other fill used, writes `.meta` atomically (temp, fsync, rename, fsync
//! of the directory): after a power cut an object is there whole or not at
//! all. A replaced object's body is another file, so a response still
//! reading the old one never gets the new one's bytes.
//! At start, anything that does not add up (a `.meta` whose body is missing
//! or of another size, a `.data` no `.meta` names, temp files) is removed;
//! a body whose SHA-256 differs is caught before it is first served.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::object::Meta;

#[derive(Debug, Serialize, Deserialize)]
struct MetaFile {
    meta: Meta,
    sha256: String,
    /// The body's file name, in the same directory.
    data: String,
}

pub struct Disk {
    pub dir: PathBuf,
    /// Bytes the tier may hold.
    pub budget: u64,
    tmp_seq: AtomicU64,
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A loaded object: its metadata, SHA-256 and data file.
pub struct Loaded {
    pub meta: Meta,
    pub sha256: [u8; 32],
    pub data: PathBuf,
}

impl Disk {
    /// Opens (creating) the tier in `dir`: the budget is the file system's
    /// size minus `reserve`, capped at `max` when given.
    pub fn open(dir: &Path, reserve: u64, max: Option<u64>) -> std::io::Result<Disk> {
        std::fs::create_dir_all(dir)?;
        let vfs = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
        let size = (vfs.blocks() as u64).saturating_mul(vfs.fragment_size() as u64);
        let mut budget = size.saturating_sub(reserve);
        if let Some(m) = max {
            budget = budget.min(m);
        }
        Ok(Disk {
            dir: dir.to_owned(),
            budget,
            tmp_seq: AtomicU64::new(0),
        })
    }

    fn base(&self, key: &str) -> PathBuf {
        self.dir.join(hex(&Sha256::digest(key.as_bytes())))
    }

    fn meta_path(&self, key: &str) -> PathBuf {
        self.base(key).with_extension("meta")
    }

    /// A new temp file for a fill of `key`.
    pub fn temp_file(&self, key: &str) -> std::io::Result<(PathBuf, std::fs::File)> {
        let path = self
            .base(key)
            .with_extension(format!("{}.tmp", self.unique()));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok((path, f))
    }

    /// A name part no other file of this tier had: the clock and a counter.
    fn unique(&self) -> String {
        let n = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!("{t:x}{n:x}")
    }

    /// Makes a complete fill durable: fsync, rename to a data name of its
    /// own, then the metadata naming it. Returns the data file's path.
    pub fn commit(
        &self,
        tmp: &Path,
        file: &std::fs::File,
        meta: &Meta,
        sha256: &[u8; 32],
    ) -> std::io::Result<PathBuf> {
        file.sync_all()?;
        let data = self
            .base(&meta.key)
            .with_extension(format!("{}.data", self.unique()));
        std::fs::rename(tmp, &data)?;
        self.write_meta(meta, sha256, &data)?;
        Ok(data)
    }

    /// Writes (replaces) the metadata of a stored object whose body is
    /// `data` (also after a revalidation changed its freshness).
    pub fn write_meta(&self, meta: &Meta, sha256: &[u8; 32], data: &Path) -> std::io::Result<()> {
        let name = data
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| std::io::Error::other("no data file name"))?;
        let text = serde_json::to_vec(&MetaFile {
            meta: meta.clone(),
            sha256: hex(sha256),
            data: name.to_owned(),
        })
        .map_err(std::io::Error::other)?;
        crate::ca::write_atomic(&self.meta_path(&meta.key), &text, 0o600)
    }

    /// Removes an object's body `data`, and its metadata if it names that
    /// body (a newer fill of the key may have replaced it).
    pub fn remove(&self, key: &str, data: &Path) {
        let _ = std::fs::remove_file(data);
        let meta = self.meta_path(key);
        let names_it = std::fs::read(&meta)
            .ok()
            .and_then(|t| serde_json::from_slice::<MetaFile>(&t).ok())
            .is_some_and(|m| Some(std::ffi::OsStr::new(&m.data)) == data.file_name());
        if names_it {
            let _ = std::fs::remove_file(meta);
        }
    }

    /// Reads the index back, removing what does not add up.
    pub fn load(&self) -> Vec<Loaded> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return out;
        };
        let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        names.sort();
        for path in names
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "meta"))
        {
            match self.load_one(path) {
                Some(l) => out.push(l),
                None => {
                    tracing::warn!("disk tier: dropping damaged entry {}", path.display());
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        // Bodies no metadata names (a fill cut before its metadata, a
        // replaced body) and temp files.
        for path in &names {
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            let named = out.iter().any(|l| &l.data == path);
            if ext == "tmp" || (ext == "data" && !named) {
                let _ = std::fs::remove_file(path);
            }
        }
        out
    }

    fn load_one(&self, meta_path: &Path) -> Option<Loaded> {
        let mut text = Vec::new();
        std::fs::File::open(meta_path)
            .ok()?
            .read_to_end(&mut text)
            .ok()?;
        let m: MetaFile = serde_json::from_slice(&text).ok()?;
        // The file names come from the key: a meta file under another name
        // is not ours; the body is a plain name in this directory.
        if self.meta_path(&m.meta.key) != meta_path
            || Path::new(&m.data).file_name() != Some(std::ffi::OsStr::new(&m.data))
        {
            return None;
        }
        let data = self.dir.join(&m.data);
        let len = std::fs::metadata(&data).ok()?.len();
        if len != m.meta.length {
            return None;
        }
        Some(Loaded {
            sha256: unhex(&m.sha256)?,
            meta: m.meta,
            data,
        })
    }
}

/// SHA-256 of a whole file (the check before a loaded or modified disk
/// object is served).
pub fn file_sha256(file: &std::fs::File) -> std::io::Result<[u8; 32]> {
    use std::os::unix::fs::FileExt;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    loop {
        let n = file.read_at(&mut buf, at)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        at += n as u64;
    }
    Ok(h.finalize().into())
}

/// The modification time of a file, in nanoseconds: a change means the
/// body must be checked again.
pub fn mtime_ns(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .map(|m| {
            (m.mtime() as u64)
                .wrapping_mul(1_000_000_000)
                .wrapping_add(m.mtime_nsec() as u64)
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(key: &str, len: u64) -> Meta {
        Meta {
            key: key.into(),
            status: 200,
            reason: "OK".into(),
            headers: vec![("ETag".into(), "\"x\"".into())],
            length: len,
            fresh_until: 0,
            vary: vec![],
        }
    }

    #[test]
    fn committed_objects_load_and_damaged_ones_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::open(dir.path(), 0, Some(1 << 20)).unwrap();
        assert_eq!(disk.budget, 1 << 20);
        let mut paths = Vec::new();
        for (key, body) in [
            ("GET a", &b"hello"[..]),
            ("GET b", b"world!"),
            ("GET c", b"gone"),
        ] {
            let (tmp, f) = disk.temp_file(key).unwrap();
            std::os::unix::fs::FileExt::write_all_at(&f, body, 0).unwrap();
            let sha: [u8; 32] = Sha256::digest(body).into();
            let data = disk
                .commit(&tmp, &f, &meta(key, body.len() as u64), &sha)
                .unwrap();
            assert_eq!(file_sha256(&f).unwrap(), sha);
            paths.push(data);
        }
        // A replaced body: the metadata names the new one only.
        let (tmp, f) = disk.temp_file("GET a").unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, b"HELLO", 0).unwrap();
        let sha: [u8; 32] = Sha256::digest(b"HELLO").into();
        let new_a = disk.commit(&tmp, &f, &meta("GET a", 5), &sha).unwrap();
        disk.remove("GET a", &paths[0]);
        // A fill cut by a crash, a body cut short, a body gone.
        disk.temp_file("GET d").unwrap();
        std::fs::write(&paths[1], b"wor").unwrap();
        std::fs::remove_file(&paths[2]).unwrap();
        let loaded = disk.load();
        assert_eq!(loaded.len(), 1);
        assert_eq!(
            (&loaded[0].meta, &loaded[0].data),
            (&meta("GET a", 5), &new_a)
        );
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(left.len(), 2, "{left:?}");
    }
}
