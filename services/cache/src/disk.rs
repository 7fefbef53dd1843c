//! The disk tier's files, on the patch disk: per object `<h>.meta` (its
//! metadata, the SHA-256 of its body, the SHA-256 of each 1 MiB block of
//! it and the name of its body file, JSON) and the body `<h>.<unique>.data`,
//! where `<h>` is the SHA-256 of the key.
//! A fill writes `<h>.<n>.tmp`, then fsyncs it, renames it to a data name
//! no other fill used, writes `.meta` atomically (temp, fsync, rename, fsync
//! of the directory): after a power cut an object is there whole or not at
//! all, its block hashes with it. A replaced object's body is another file,
//! so a response still reading the old one never gets the new one's bytes.
//! At start, anything that does not add up (a `.meta` that fails its own
//! check or is of the older format without block hashes, one whose body is
//! missing or of another size, a `.data` no `.meta` names, temp files) is
//! removed. Every read of a body reads whole blocks and checks each against
//! its hash before any of its bytes are served ([`read_verified`]).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::blocks::{read_verified, BlockError, BlockHasher, BLOCK};
use crate::object::Meta;

/// The metadata format this version writes. The first format (no `format`
/// field) had only the whole body's SHA-256: checking it meant hashing the
/// whole file before the first byte was served, so such entries are
/// dropped at load and fetched again when asked for.
const FORMAT: u32 = 2;

#[derive(Debug, Serialize, Deserialize)]
struct MetaFile {
    /// Absent (0) in the first format.
    #[serde(default)]
    format: u32,
    meta: Meta,
    /// The whole body's SHA-256: the object's identity.
    sha256: String,
    /// The body's file name, in the same directory.
    data: String,
    /// Bytes per block ([`BLOCK`] when written).
    #[serde(default)]
    block_size: u64,
    /// The SHA-256 of each block of the body, hex, one after the other.
    #[serde(default)]
    blocks: String,
    /// The SHA-256 of this file's JSON with `check` empty: a metadata file
    /// damaged anywhere (a header value, the freshness, a block hash) is
    /// dropped at load rather than served with wrong fields.
    #[serde(default)]
    check: String,
}

impl MetaFile {
    fn digest(&self) -> std::io::Result<String> {
        let text = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        Ok(hex(&Sha256::digest(&text)))
    }
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

/// The hashes of `blocks` (hex, concatenated) when there is one per block
/// of a body of `length` bytes.
fn unhex_blocks(blocks: &str, length: u64) -> Option<Vec<[u8; 32]>> {
    if blocks.len() as u64 != length.div_ceil(BLOCK).checked_mul(64)? {
        return None;
    }
    (0..blocks.len() / 64)
        .map(|i| unhex(blocks.get(64 * i..64 * (i + 1))?))
        .collect()
}

/// A loaded object: its metadata, SHA-256, block hashes and data file.
pub struct Loaded {
    pub meta: Meta,
    pub sha256: [u8; 32],
    pub blocks: Vec<[u8; 32]>,
    pub data: PathBuf,
    /// When the object was last committed or used, as the files record
    /// it: the later of the `.meta`'s modification time (its commit, or
    /// the last revalidation that rewrote it) and the body's access time
    /// (reads, where the file system keeps it: relatime updates it about
    /// once a day, noatime never). The load's LRU order.
    pub used: std::time::SystemTime,
}

/// Why an entry was not loaded.
enum Dropped {
    /// Written by an older version (no block hashes).
    Older,
    Damaged,
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
}

/// The `.meta` file of `key`, for the store's tests.
#[cfg(test)]
pub(crate) fn tests_meta_path(disk: &Disk, key: &str) -> PathBuf {
    disk.meta_path(key)
}

impl Disk {
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
    /// own, then the metadata naming it, with the block hashes: they are
    /// committed with the body or not at all. Returns the data file's path.
    pub fn commit(
        &self,
        tmp: &Path,
        file: &std::fs::File,
        meta: &Meta,
        sha256: &[u8; 32],
        blocks: &[[u8; 32]],
    ) -> std::io::Result<PathBuf> {
        file.sync_all()?;
        let data = self
            .base(&meta.key)
            .with_extension(format!("{}.data", self.unique()));
        std::fs::rename(tmp, &data)?;
        self.write_meta(meta, sha256, blocks, &data)?;
        Ok(data)
    }

    /// Writes (replaces) the metadata of a stored object whose body is
    /// `data` (also after a revalidation changed its freshness).
    pub fn write_meta(
        &self,
        meta: &Meta,
        sha256: &[u8; 32],
        blocks: &[[u8; 32]],
        data: &Path,
    ) -> std::io::Result<()> {
        let name = data
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| std::io::Error::other("no data file name"))?;
        if blocks.len() as u64 != meta.length.div_ceil(BLOCK) {
            // It would be dropped at the next load: better said now.
            return Err(std::io::Error::other(format!(
                "{} block hashes for {} bytes",
                blocks.len(),
                meta.length
            )));
        }
        let mut file = MetaFile {
            format: FORMAT,
            meta: meta.clone(),
            sha256: hex(sha256),
            data: name.to_owned(),
            block_size: BLOCK,
            blocks: blocks.iter().map(|b| hex(b)).collect(),
            check: String::new(),
        };
        file.check = file.digest()?;
        let text = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
        // A name of its own for each writer's temporary file (two fills of
        // one key may commit at once); a leftover ends in `.tmp`, which the
        // next load removes.
        gateway_fsutil::write_atomic(
            &self.meta_path(&meta.key),
            &text,
            &gateway_fsutil::WriteOptions::private(),
        )?;
        Ok(())
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
                Ok(l) => out.push(l),
                Err(Dropped::Older) => {
                    tracing::info!(
                        "disk tier: dropping {} (an older format without block hashes; \
                         fetched again when asked for)",
                        path.display()
                    );
                    let _ = std::fs::remove_file(path);
                }
                Err(Dropped::Damaged) => {
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

    fn load_one(&self, meta_path: &Path) -> Result<Loaded, Dropped> {
        let damaged = |_| Dropped::Damaged;
        let mut text = Vec::new();
        std::fs::File::open(meta_path)
            .map_err(damaged)?
            .read_to_end(&mut text)
            .map_err(damaged)?;
        let mut m: MetaFile = serde_json::from_slice(&text).map_err(|_| Dropped::Damaged)?;
        if m.format < FORMAT {
            return Err(Dropped::Older);
        }
        let check = std::mem::take(&mut m.check);
        if m.format != FORMAT || m.block_size != BLOCK || m.digest().ok() != Some(check) {
            return Err(Dropped::Damaged);
        }
        // The file names come from the key: a meta file under another name
        // is not ours; the body is a plain name in this directory.
        if self.meta_path(&m.meta.key) != meta_path
            || Path::new(&m.data).file_name() != Some(std::ffi::OsStr::new(&m.data))
        {
            return Err(Dropped::Damaged);
        }
        let data = self.dir.join(&m.data);
        let data_md = std::fs::metadata(&data).map_err(damaged)?;
        if data_md.len() != m.meta.length {
            return Err(Dropped::Damaged);
        }
        let committed = std::fs::metadata(meta_path).and_then(|md| md.modified());
        let used = [committed.ok(), data_md.accessed().ok()]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(std::time::UNIX_EPOCH);
        Ok(Loaded {
            used,
            sha256: unhex(&m.sha256).ok_or(Dropped::Damaged)?,
            blocks: unhex_blocks(&m.blocks, m.meta.length).ok_or(Dropped::Damaged)?,
            meta: m.meta,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

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

    /// SHA-256 of a whole file.
    fn file_sha256(file: &std::fs::File) -> [u8; 32] {
        let mut all = Vec::new();
        let mut at = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file.read_at(&mut buf, at).unwrap();
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
            at += n as u64;
        }
        Sha256::digest(&all).into()
    }

    fn blocks_of(body: &[u8]) -> Vec<[u8; 32]> {
        let mut h = BlockHasher::default();
        // In odd pieces, as a fill gets them off the network.
        for piece in body.chunks(70_001) {
            h.update(piece);
        }
        h.finish()
    }

    /// Commits `body` under `key`; returns the data file.
    fn store(disk: &Disk, key: &str, body: &[u8]) -> PathBuf {
        let (tmp, f) = disk.temp_file(key).unwrap();
        f.write_all_at(body, 0).unwrap();
        let sha: [u8; 32] = Sha256::digest(body).into();
        let data = disk
            .commit(
                &tmp,
                &f,
                &meta(key, body.len() as u64),
                &sha,
                &blocks_of(body),
            )
            .unwrap();
        assert_eq!(file_sha256(&f), sha);
        data
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
            paths.push(store(&disk, key, body));
        }
        // A replaced body: the metadata names the new one only.
        let new_a = store(&disk, "GET a", b"HELLO");
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
        assert_eq!(
            loaded[0].blocks,
            vec![<[u8; 32]>::from(Sha256::digest(b"HELLO"))]
        );
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(left.len(), 2, "{left:?}");
    }

    #[test]
    fn block_hashes_are_committed_and_damaged_or_older_metadata_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::open(dir.path(), 0, Some(1 << 30)).unwrap();
        let body: Vec<u8> = (0..(2 * BLOCK + 10)).map(|i| (i % 251) as u8).collect();
        let keys = ["GET whole", "GET older", "GET edited", "GET short"];
        for k in keys {
            store(&disk, k, &body);
        }
        let meta_of = |k: &str| disk.meta_path(k);
        // An entry of the first format: the whole body's SHA-256 only.
        let text = std::fs::read(meta_of("GET older")).unwrap();
        let mut v: serde_json::Value = serde_json::from_slice(&text).unwrap();
        let o = v.as_object_mut().unwrap();
        for field in ["format", "block_size", "blocks", "check"] {
            assert!(o.remove(field).is_some(), "{field}");
        }
        std::fs::write(meta_of("GET older"), serde_json::to_vec(&v).unwrap()).unwrap();
        // Damage that still parses: a field's value, a block hash's digit.
        let text = String::from_utf8(std::fs::read(meta_of("GET edited")).unwrap()).unwrap();
        assert!(text.contains("\"x\\\""));
        let edited = text.replacen("\"x\\\"", "\"y\\\"", 1);
        std::fs::write(meta_of("GET edited"), edited).unwrap();
        // Hashes for fewer blocks than the body has, check and all right.
        let m: MetaFile =
            serde_json::from_slice(&std::fs::read(meta_of("GET short")).unwrap()).unwrap();
        let mut m = MetaFile {
            blocks: m.blocks[64..].to_owned(),
            check: String::new(),
            ..m
        };
        m.check = m.digest().unwrap();
        std::fs::write(meta_of("GET short"), serde_json::to_vec(&m).unwrap()).unwrap();

        let loaded = disk.load();
        let names: Vec<&str> = loaded.iter().map(|l| l.meta.key.as_str()).collect();
        assert_eq!(names, ["GET whole"]);
        assert_eq!(loaded[0].blocks, blocks_of(&body));
        assert_eq!(loaded[0].blocks.len(), 3);
        assert_eq!(
            loaded[0].blocks[2],
            <[u8; 32]>::from(Sha256::digest(&body[2 * BLOCK as usize..]))
        );
        // The dropped entries' bodies went with their metadata.
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(left.len(), 2, "{left:?}");
    }

    #[test]
    fn reads_check_the_blocks_they_touch_and_stop_at_a_damaged_one() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::open(dir.path(), 0, Some(1 << 30)).unwrap();
        let len = 3 * BLOCK + 100;
        let body: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        let data = store(&disk, "GET r", &body);
        let hashes = blocks_of(&body);
        let f = std::fs::File::open(&data).unwrap();
        // A few bytes near the end: the last block alone is read.
        let (got, n) = read_verified(&f, len, 3, &hashes[3..], len - 50, len).unwrap();
        assert_eq!((got.as_slice(), n), (&body[(len - 50) as usize..], 1));
        // Across a block boundary: both blocks.
        let (a, b) = (BLOCK - 5, BLOCK + 5);
        let (got, n) = read_verified(&f, len, 0, &hashes[..2], a, b).unwrap();
        assert_eq!((got.as_slice(), n), (&body[a as usize..b as usize], 2));
        // One byte changed in block 2: it is refused, blocks 0 and 1 still
        // read, and no byte of block 2 comes out of a read that spans it.
        let w = std::fs::OpenOptions::new().write(true).open(&data).unwrap();
        let at = 2 * BLOCK + 777;
        w.write_all_at(&[body[at as usize] ^ 1], at).unwrap();
        assert!(matches!(
            read_verified(&f, len, 2, &hashes[2..3], 2 * BLOCK + 10, 2 * BLOCK + 20),
            Err(BlockError::Damaged(2))
        ));
        assert!(matches!(
            read_verified(&f, len, 1, &hashes[1..3], BLOCK, 3 * BLOCK),
            Err(BlockError::Damaged(2))
        ));
        let (got, _) = read_verified(&f, len, 0, &hashes[..2], 0, 2 * BLOCK).unwrap();
        assert_eq!(got, body[..2 * BLOCK as usize]);
        // A body cut short is an I/O error, not bytes.
        w.set_len(len - 1).unwrap();
        assert!(matches!(
            read_verified(&f, len, 3, &hashes[3..], len - 50, len),
            Err(BlockError::Io(_))
        ));
    }
}
