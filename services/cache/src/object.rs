//! One stored object while it fills and after: its response metadata, its
//! body (memory segments or a file) and how far the fill has come.
//!
//! Read-while-write: readers wait on a watch of the filled length and get
//! bytes as soon as the fill has them, so every client of a collapsed miss
//! is served as the origin sends, not after the fill. The fill runs in its
//! own task; a reader leaving changes nothing for it.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// Memory bodies are kept in segments of this size (never reallocated, so
/// a reader copies out of one while the fill appends to another).
pub const SEGMENT: usize = 256 * 1024;

/// The first reservation of a segment that grows (bytes beyond the known
/// length), doubled from there.
const MIN_GROWTH: usize = 4096;

/// The store's bookkeeping of one object besides its key copies: the
/// index's and the LRU list's entries, the `Arc`'s counts, the watch
/// channels, allocator rounding. An estimate, on the high side.
const INDEX_ENTRY: usize = 512;

fn segments_for(length: u64) -> usize {
    length.div_ceil(SEGMENT as u64) as usize
}

/// Heap bytes of a [`Meta`] (its strings and vectors).
fn meta_capacity(m: &Meta) -> usize {
    let pair = std::mem::size_of::<(String, String)>();
    m.key.capacity()
        + m.reason.capacity()
        + m.headers.capacity() * pair
        + m.headers
            .iter()
            .map(|(n, v)| n.capacity() + v.capacity())
            .sum::<usize>()
        + m.vary.capacity() * std::mem::size_of::<String>()
        + m.vary.iter().map(String::capacity).sum::<usize>()
}

/// The response metadata a stored object is served with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Meta {
    pub key: String,
    pub status: u16,
    pub reason: String,
    /// End-to-end fields of the origin's response (framing and hop-by-hop
    /// fields left out; the cache writes its own).
    pub headers: Vec<(String, String)>,
    pub length: u64,
    /// Seconds since the epoch after which the object must be revalidated.
    pub fresh_until: u64,
    /// The request fields the response varies on (lowercase).
    pub vary: Vec<String>,
}

impl Meta {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn is_fresh(&self, now: SystemTime) -> bool {
        epoch_secs(now) < self.fresh_until
    }
}

pub fn epoch_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Which tier holds an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Memory,
    Disk,
}

/// How far the fill has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// This many bytes are readable; more to come.
    Filling(u64),
    /// The whole object is there.
    Complete,
    /// The origin failed or cut the body short: readers stop, the object is
    /// never stored.
    Failed,
}

pub enum Body {
    Memory(RwLock<Vec<Vec<u8>>>),
    File(DiskBody),
}

/// A body on disk. While it fills, readers share the fill's descriptor
/// (valid across the rename that commits it); once committed, the object
/// holds no descriptor (thousands of stored objects must not hold
/// thousands of files open) and each response opens the file once, so a
/// reader keeps the bytes it started with even if the object is replaced.
pub struct DiskBody {
    path: Mutex<PathBuf>,
    fill: Mutex<Option<Arc<File>>>,
}

impl DiskBody {
    /// A body being written to `path` (the temp file) through `file`.
    pub fn filling(path: PathBuf, file: Arc<File>) -> DiskBody {
        DiskBody {
            path: Mutex::new(path),
            fill: Mutex::new(Some(file)),
        }
    }

    /// A committed body.
    pub fn stored(path: PathBuf) -> DiskBody {
        DiskBody {
            path: Mutex::new(path),
            fill: Mutex::new(None),
        }
    }

    /// Where the body is now.
    pub fn path(&self) -> PathBuf {
        self.path.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// The fill committed the body to `path`; its descriptor goes.
    pub fn committed(&self, path: PathBuf) {
        if let Ok(mut p) = self.path.lock() {
            *p = path;
        }
        if let Ok(mut f) = self.fill.lock() {
            *f = None;
        }
    }

    fn fill_file(&self) -> Option<Arc<File>> {
        self.fill.lock().ok().and_then(|f| f.clone())
    }

    fn open(&self) -> std::io::Result<Arc<File>> {
        match self.fill_file() {
            Some(f) => Ok(f),
            None => File::open(self.path()).map(Arc::new),
        }
    }
}

/// What one response reads an object from.
pub enum Source {
    Memory,
    File(Arc<File>),
}

pub struct Object {
    pub meta: Mutex<Meta>,
    pub body: Body,
    pub tier: Tier,
    progress: watch::Sender<Progress>,
    /// SHA-256 of the body once complete.
    pub sha256: Mutex<Option<[u8; 32]>>,
    /// Disk objects: the SHA-256 of each [`crate::disk::BLOCK`] of the
    /// body, in order, as far as the fill has hashed them (all of them once
    /// complete). Every read of a block whose hash is known checks it.
    blocks: Mutex<Vec<[u8; 32]>>,
    /// LRU position (a tick of the store's clock).
    pub tick: AtomicU64,
    /// The bytes the store counted for this object when it was indexed
    /// ([`Object::footprint`] then), taken off again when it leaves.
    pub accounted: AtomicU64,
    /// A revalidation under way: its outcome (`true`: the stored copy may
    /// be served) for the requests that arrive meanwhile.
    revalidation: Mutex<Option<watch::Receiver<Option<bool>>>>,
}

/// Who revalidates a stale object.
pub enum Join {
    /// This request asks the origin; the others wait for its answer.
    Lead(Revalidation),
    /// Another request is asking: wait for its outcome.
    Wait(watch::Receiver<Option<bool>>),
}

/// The lead of a revalidation. Dropped without [`Revalidation::done`]
/// (the object was replaced or dropped, the request went away), the
/// waiters look the object up again.
pub struct Revalidation {
    object: Arc<Object>,
    tx: watch::Sender<Option<bool>>,
}

impl Revalidation {
    /// The stored copy may be served (a 304, or an origin out of reach).
    pub fn done(self) {
        self.tx.send_replace(Some(true));
    }
}

impl Drop for Revalidation {
    fn drop(&mut self) {
        if let Ok(mut r) = self.object.revalidation.lock() {
            *r = None;
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReadError {
    #[error("the origin transfer failed; the object was not stored")]
    Failed,
    #[error("read the stored object: {0}")]
    Io(String),
    /// A disk block does not match its SHA-256: the object is to be
    /// dropped, and none of this block's bytes served.
    #[error("block {0} of the stored object does not match its SHA-256")]
    Damaged(u64),
}

impl Object {
    pub fn new(meta: Meta, body: Body, tier: Tier) -> Arc<Object> {
        let (progress, _) = watch::channel(Progress::Filling(0));
        Arc::new(Object {
            meta: Mutex::new(meta),
            body,
            tier,
            progress,
            sha256: Mutex::new(None),
            blocks: Mutex::new(Vec::new()),
            tick: AtomicU64::new(0),
            accounted: AtomicU64::new(0),
            revalidation: Mutex::new(None),
        })
    }

    /// An object whose body is already complete (loaded from disk).
    pub fn complete(
        meta: Meta,
        body: Body,
        tier: Tier,
        sha256: [u8; 32],
        blocks: Vec<[u8; 32]>,
    ) -> Arc<Object> {
        let o = Object::new(meta, body, tier);
        o.progress.send_replace(Progress::Complete);
        if let Ok(mut s) = o.sha256.lock() {
            *s = Some(sha256);
        }
        o.add_blocks(blocks);
        o
    }

    /// The fill hashed these next blocks (their bytes are written).
    pub fn add_blocks(&self, hashes: Vec<[u8; 32]>) {
        if hashes.is_empty() {
            return;
        }
        let mut b = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        b.extend(hashes);
    }

    /// The block hashes known so far.
    pub fn blocks(&self) -> Vec<[u8; 32]> {
        self.blocks
            .lock()
            .map(|b| b.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Leads the revalidation of this object, or joins the one under way:
    /// concurrent requests for a stale object make one conditional request.
    pub fn join_revalidation(self: &Arc<Self>) -> Join {
        let Ok(mut r) = self.revalidation.lock() else {
            let (tx, _) = watch::channel(None);
            return Join::Lead(Revalidation {
                object: self.clone(),
                tx,
            });
        };
        if let Some(rx) = r.as_ref() {
            return Join::Wait(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        *r = Some(rx);
        Join::Lead(Revalidation {
            object: self.clone(),
            tx,
        })
    }

    pub fn meta(&self) -> Meta {
        self.meta
            .lock()
            .map(|m| m.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    pub fn length(&self) -> u64 {
        self.meta.lock().map(|m| m.length).unwrap_or(0)
    }

    pub fn progress(&self) -> Progress {
        *self.progress.borrow()
    }

    pub fn is_complete(&self) -> bool {
        self.progress() == Progress::Complete
    }

    /// Appends bytes the origin sent (the fill task only).
    ///
    /// A memory segment is reserved for what the object still needs (its
    /// known length less what the earlier segments hold, at most a segment):
    /// reserving a whole segment for every object made a 2 KB manifest hold
    /// 256 KiB, a hundred times what the store accounts for it, so many small
    /// objects could take the unit past its cgroup's memory limit. Bytes
    /// beyond the known length (none known: 0) grow the segment geometrically,
    /// never past a segment.
    pub fn append(&self, data: &[u8], filled: u64) -> std::io::Result<()> {
        match &self.body {
            Body::Memory(segments) => {
                let length = self.length();
                let mut segs = segments
                    .write()
                    .map_err(|_| std::io::Error::other("poisoned"))?;
                if segs.is_empty() {
                    // The list of segments too, exactly: it is accounted.
                    segs.reserve_exact(segments_for(length));
                }
                let mut rest = data;
                while !rest.is_empty() {
                    if segs.last().is_none_or(|s| s.len() == SEGMENT) {
                        // Every earlier segment is full: this one starts here.
                        let at = (segs.len() as u64).saturating_mul(SEGMENT as u64);
                        let needed = length.saturating_sub(at).min(SEGMENT as u64) as usize;
                        segs.push(Vec::with_capacity(needed));
                    }
                    let Some(last) = segs.last_mut() else { break };
                    let take = (SEGMENT - last.len()).min(rest.len());
                    if last.capacity() - last.len() < take {
                        // Never past a segment (the readers' indexing assumes
                        // full segments of SEGMENT bytes), at least what this
                        // append needs (take <= SEGMENT - len).
                        let want = (last.len() + take)
                            .max(last.capacity().saturating_mul(2))
                            .clamp(MIN_GROWTH, SEGMENT);
                        last.reserve_exact(want - last.len());
                    }
                    last.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                }
            }
            Body::File(d) => d
                .fill_file()
                .ok_or_else(|| std::io::Error::other("the fill's file is closed"))?
                .write_all_at(data, filled)?,
        }
        self.progress
            .send_replace(Progress::Filling(filled + data.len() as u64));
        Ok(())
    }

    /// The heap bytes the object holds now: its memory segments' capacity
    /// (disk bodies are in files), its metadata's and the object itself.
    pub fn capacity(&self) -> u64 {
        let body = match &self.body {
            Body::Memory(segments) => segments
                .read()
                .map(|s| {
                    s.capacity() * std::mem::size_of::<Vec<u8>>()
                        + s.iter().map(Vec::capacity).sum::<usize>()
                })
                .unwrap_or(0),
            Body::File(_) => 0,
        };
        let meta = self.meta.lock().map(|m| meta_capacity(&m)).unwrap_or(0);
        (body + meta + std::mem::size_of::<Object>()) as u64
    }

    /// What the store counts against a tier's budget for this object. Disk:
    /// the body's length (the file). Memory: what [`Object::capacity`] is
    /// once the fill is complete (the segments reserve exactly the length),
    /// plus the store's own entries for it (the key in the index and the
    /// LRU list, their nodes): a small object costs far more than its body.
    pub fn footprint(&self) -> u64 {
        let m = self.meta.lock().unwrap_or_else(|e| e.into_inner());
        match self.tier {
            Tier::Disk => m.length,
            Tier::Memory => {
                let segs = segments_for(m.length) * std::mem::size_of::<Vec<u8>>();
                let index = 2 * m.key.len() + INDEX_ENTRY;
                m.length + (segs + meta_capacity(&m) + std::mem::size_of::<Object>() + index) as u64
            }
        }
    }

    pub fn finish(&self, result: Progress) {
        self.progress.send_replace(result);
    }

    /// Opens the object for one response.
    pub fn source(&self) -> std::io::Result<Source> {
        match &self.body {
            Body::Memory(_) => Ok(Source::Memory),
            Body::File(d) => d.open().map(Source::File),
        }
    }

    /// Up to `max` bytes at `offset` of `src`, waiting for the fill when
    /// they are not there yet. `Ok(empty)` at the end of the object.
    pub async fn read_at(
        &self,
        src: &Source,
        offset: u64,
        max: usize,
    ) -> Result<Vec<u8>, ReadError> {
        self.read_counted(src, offset, max).await.map(|(b, _)| b)
    }

    /// [`Object::read_at`], and how many disk blocks were checked for it.
    ///
    /// A file body is read in whole blocks once their hashes are known
    /// (always once complete; a filling object's blocks as the fill hashes
    /// them), each checked before any byte of it is returned: a block that
    /// does not match is [`ReadError::Damaged`], and nothing of it is
    /// given out. A read spanning blocks ends at a block boundary (or at
    /// `offset + max`'s end of the object), so a reader going on from
    /// there never reads and hashes a block twice.
    pub async fn read_counted(
        &self,
        src: &Source,
        offset: u64,
        max: usize,
    ) -> Result<(Vec<u8>, u64), ReadError> {
        let length = self.length();
        if offset >= length || max == 0 {
            return Ok((Vec::new(), 0));
        }
        let mut rx = self.progress.subscribe();
        let available = loop {
            let p = *rx.borrow_and_update();
            match p {
                Progress::Complete => break length,
                Progress::Failed => return Err(ReadError::Failed),
                Progress::Filling(n) if n > offset => break n,
                Progress::Filling(_) => {}
            }
            if rx.changed().await.is_err() {
                return Err(ReadError::Failed);
            }
        };
        let want = ((available - offset) as usize).min(max);
        match (&self.body, src) {
            (Body::Memory(segments), _) => {
                let segs = segments
                    .read()
                    .map_err(|_| ReadError::Io("poisoned".into()))?;
                let mut out = Vec::with_capacity(want);
                let mut at = offset;
                while out.len() < want {
                    let i = (at / SEGMENT as u64) as usize;
                    let within = (at % SEGMENT as u64) as usize;
                    let Some(seg) = segs.get(i) else { break };
                    let take = (seg.len().saturating_sub(within)).min(want - out.len());
                    if take == 0 {
                        break;
                    }
                    out.extend_from_slice(&seg[within..within + take]);
                    at += take as u64;
                }
                Ok((out, 0))
            }
            (Body::File(_), Source::Memory) => Err(ReadError::Io("not a memory object".into())),
            (_, Source::File(f)) => {
                use crate::disk::BLOCK;
                let mut end = offset + want as u64;
                let first = offset / BLOCK;
                let mut last = (end - 1) / BLOCK;
                if last > first && !end.is_multiple_of(BLOCK) && end < length {
                    // Up to the boundary: the next read starts on a block.
                    last -= 1;
                    end = last.saturating_add(1).saturating_mul(BLOCK);
                }
                let hashes: Vec<[u8; 32]> = {
                    let b = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
                    let to = (last as usize).saturating_add(1).min(b.len());
                    b.get(first as usize..to)
                        .map(<[_]>::to_vec)
                        .unwrap_or_default()
                };
                if !hashes.is_empty() {
                    // The blocks not hashed yet (a fill under way) wait for
                    // the next read.
                    end = end.min((first + hashes.len() as u64).saturating_mul(BLOCK));
                }
                let f = f.clone();
                let read = tokio::task::spawn_blocking(move || {
                    if hashes.is_empty() {
                        // Bytes a fill under way has written but not yet
                        // hashed (its block is not complete): they are
                        // this process's own writes of a moment ago; the
                        // block is checked on every read once complete.
                        let mut out = vec![0u8; want];
                        let n = f
                            .read_at(&mut out, offset)
                            .map_err(crate::disk::BlockError::Io)?;
                        out.truncate(n);
                        Ok((out, 0))
                    } else {
                        crate::disk::read_verified(&f, length, first, &hashes, offset, end)
                    }
                })
                .await
                .map_err(|e| ReadError::Io(e.to_string()))?;
                match read {
                    Ok((out, _)) if out.is_empty() => Err(ReadError::Io(
                        "the file is shorter than its index says".into(),
                    )),
                    Ok(r) => Ok(r),
                    Err(crate::disk::BlockError::Io(e)) => Err(ReadError::Io(e.to_string())),
                    Err(crate::disk::BlockError::Damaged(b)) => Err(ReadError::Damaged(b)),
                }
            }
        }
    }

    /// Waits until the fill has ended; true when the object is complete.
    pub async fn wait_done(&self) -> bool {
        let mut rx = self.progress.subscribe();
        loop {
            match *rx.borrow_and_update() {
                Progress::Complete => return true,
                Progress::Failed => return false,
                Progress::Filling(_) => {}
            }
            if rx.changed().await.is_err() {
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(len: u64) -> Meta {
        Meta {
            key: "k".into(),
            status: 200,
            reason: "OK".into(),
            headers: vec![],
            length: len,
            fresh_until: 0,
            vary: vec![],
        }
    }

    #[tokio::test]
    async fn readers_get_bytes_as_the_fill_appends_them() {
        let len = (SEGMENT * 2 + 10) as u64;
        let o = Object::new(
            meta(len),
            Body::Memory(RwLock::new(Vec::new())),
            Tier::Memory,
        );
        let reader = {
            let o = o.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                while (got.len() as u64) < len {
                    let b = o
                        .read_at(&Source::Memory, got.len() as u64, 100_000)
                        .await
                        .unwrap();
                    got.extend_from_slice(&b);
                }
                got
            })
        };
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut at = 0;
        for piece in data.chunks(70_000) {
            o.append(piece, at).unwrap();
            at += piece.len() as u64;
            tokio::task::yield_now().await;
        }
        o.finish(Progress::Complete);
        assert_eq!(reader.await.unwrap(), data);
        assert!(o
            .read_at(&Source::Memory, len, 10)
            .await
            .unwrap()
            .is_empty());
    }

    /// The body segments' capacity.
    fn body_capacity(o: &Object) -> usize {
        match &o.body {
            Body::Memory(s) => s.read().unwrap().iter().map(Vec::capacity).sum(),
            Body::File(_) => 0,
        }
    }

    #[test]
    fn a_segment_holds_what_the_object_needs() {
        // Known length: exactly it, however the bytes come.
        let o = Object::new(
            meta(2048),
            Body::Memory(RwLock::new(Vec::new())),
            Tier::Memory,
        );
        o.append(&[1; 100], 0).unwrap();
        o.append(&[2; 1948], 100).unwrap();
        assert_eq!(body_capacity(&o), 2048);
        // More than the length said (none known): geometric growth, so
        // the capacity stays within twice the bytes and a segment.
        let o = Object::new(meta(0), Body::Memory(RwLock::new(Vec::new())), Tier::Memory);
        o.append(&[1; 10], 0).unwrap();
        assert!(body_capacity(&o) <= 4096, "{}", body_capacity(&o));
        let mut at = 10;
        for _ in 0..100 {
            o.append(&[3; 3000], at).unwrap();
            at += 3000;
        }
        let cap = body_capacity(&o);
        assert!(
            cap >= at as usize && cap <= 2 * at as usize,
            "{cap} for {at}"
        );
        assert!(o.capacity() >= cap as u64);
    }

    #[tokio::test]
    async fn one_revalidation_at_a_time() {
        let o = Object::new(meta(1), Body::Memory(RwLock::new(Vec::new())), Tier::Memory);
        let Join::Lead(lead) = o.join_revalidation() else {
            panic!("lead")
        };
        let Join::Wait(mut rx) = o.join_revalidation() else {
            panic!("wait")
        };
        lead.done();
        rx.changed().await.unwrap();
        assert_eq!(*rx.borrow(), Some(true));
        // Over: the next stale request leads again; one dropped unfinished
        // lets its waiters look again.
        let Join::Lead(lead) = o.join_revalidation() else {
            panic!("lead")
        };
        let Join::Wait(mut rx) = o.join_revalidation() else {
            panic!("wait")
        };
        drop(lead);
        assert!(rx.changed().await.is_err());
        assert_eq!(*rx.borrow(), None);
    }

    #[tokio::test]
    async fn a_failed_fill_stops_its_readers() {
        let o = Object::new(
            meta(100),
            Body::Memory(RwLock::new(Vec::new())),
            Tier::Memory,
        );
        o.append(b"abc", 0).unwrap();
        assert_eq!(o.read_at(&Source::Memory, 0, 10).await.unwrap(), b"abc");
        let waiting = {
            let o = o.clone();
            tokio::spawn(async move { o.read_at(&Source::Memory, 3, 10).await })
        };
        tokio::task::yield_now().await;
        o.finish(Progress::Failed);
        assert_eq!(waiting.await.unwrap(), Err(ReadError::Failed));
        assert!(!o.wait_done().await);
    }

    #[tokio::test]
    async fn disk_reads_check_whole_blocks_and_end_on_a_boundary() {
        use crate::disk::{BlockHasher, BLOCK};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("body");
        let len = 2 * BLOCK + 10;
        let body: Vec<u8> = (0..len).map(|i| (i % 241) as u8).collect();
        std::fs::write(&path, &body).unwrap();
        let mut h = BlockHasher::default();
        h.update(&body);
        let body_of = DiskBody::stored(path.clone());
        let o = Object::complete(
            meta(len),
            Body::File(body_of),
            Tier::Disk,
            [0; 32],
            h.finish(),
        );
        let src = o.source().unwrap();
        let b = |a: u64, z: u64| &body[a as usize..z as usize];
        // From inside block 0, for a block's worth: up to the boundary, so
        // the next read starts on block 1 and no block is hashed twice.
        same(
            o.read_counted(&src, 100, BLOCK as usize).await,
            b(100, BLOCK),
            1,
        );
        same(
            o.read_counted(&src, BLOCK, BLOCK as usize).await,
            b(BLOCK, 2 * BLOCK),
            1,
        );
        same(
            o.read_counted(&src, 2 * BLOCK, BLOCK as usize).await,
            b(2 * BLOCK, len),
            1,
        );
        // One byte of block 1 changed: a read of any byte of it fails (and
        // one that spans it: nothing of it is given out), block 0 still
        // reads.
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&[body[BLOCK as usize + 5] ^ 1], BLOCK + 5)
            .unwrap();
        let src = o.source().unwrap();
        assert_eq!(
            o.read_at(&src, BLOCK + 1000, 1).await,
            Err(ReadError::Damaged(1))
        );
        assert_eq!(
            o.read_at(&src, 0, 2 * BLOCK as usize).await,
            Err(ReadError::Damaged(1))
        );
        same(
            o.read_counted(&src, 0, BLOCK as usize).await,
            b(0, BLOCK),
            1,
        );
    }

    /// `got` is `want`'s bytes, `n` blocks checked (without printing
    /// megabytes when not).
    #[track_caller]
    fn same(got: Result<(Vec<u8>, u64), ReadError>, want: &[u8], n: u64) {
        let (bytes, checked) = got.expect("read");
        assert_eq!((bytes.len(), checked), (want.len(), n));
        assert!(bytes == want, "other bytes");
    }

    #[tokio::test]
    async fn readers_of_a_disk_fill_check_the_blocks_it_has_hashed() {
        use crate::disk::{BlockHasher, BLOCK};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fill.tmp");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        let len = 3 * BLOCK;
        let body: Vec<u8> = (0..len).map(|i| (i % 239) as u8).collect();
        let o = Object::new(
            meta(len),
            Body::File(DiskBody::filling(path.clone(), Arc::new(file))),
            Tier::Disk,
        );
        // Block 0 and a bit of block 1 written; block 0 hashed.
        let part = BLOCK as usize + 10;
        o.append(&body[..part], 0).unwrap();
        let mut h = BlockHasher::default();
        h.update(&body[..part]);
        o.add_blocks(h.take_done());
        let src = o.source().unwrap();
        // Block 0 checked, and the read stops at its end.
        same(
            o.read_counted(&src, 0, len as usize).await,
            &body[..BLOCK as usize],
            1,
        );
        // The bytes of the block not hashed yet come as written.
        same(
            o.read_counted(&src, BLOCK, len as usize).await,
            &body[BLOCK as usize..part],
            0,
        );
        // Block 0 changed under the fill: refused.
        let w = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        w.write_all_at(&[body[7] ^ 1], 7).unwrap();
        assert_eq!(o.read_at(&src, 3, 10).await, Err(ReadError::Damaged(0)));
    }
}
