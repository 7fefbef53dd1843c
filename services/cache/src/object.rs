//! One stored object while it fills and after: its response metadata, its
//! body (memory segments or a file) and how far the fill has come.
//!
//! Read-while-write: readers wait on a watch of the filled length and get
//! bytes as soon as the fill has them, so every client of a collapsed miss
//! is served as the origin sends, not after the fill. The fill runs in its
//! own task; a reader leaving changes nothing for it.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};

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
    usize::try_from(length.div_ceil(SEGMENT as u64)).unwrap_or(usize::MAX)
}

/// The most segment slots reserved up front for an object's list (256 MiB
/// of body, 24 KiB of list): the length comes from the origin's
/// Content-Length, a promise rather than a fact, and
/// `Content-Length: 9999999999999999999` asked for 10^15 bytes of list
/// before its first byte came. Beyond, the list grows as bytes come.
const MAX_RESERVED_SEGMENTS: usize = 1024;

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

/// How the origin delimits the body an object fills from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length`: the length is known from the start.
    Sized,
    /// `Transfer-Encoding: chunked`: the length is known once the last
    /// chunk came (which also proves the body whole).
    Chunked,
    /// Until the origin closes: the length is known at the end, and a body
    /// cut short cannot be told from a whole one (never stored).
    UntilClose,
}

/// The readers of an object whose memory may be released behind them: one
/// whose length is not known in advance (it may outgrow its tier and stop
/// being stored) or one that is not stored at all (a *transient* object).
/// A transient object keeps at most its window of bytes: the segments every
/// attached reader has gone past are released; see [`Object::make_room`].
pub struct Follow {
    state: Mutex<FollowState>,
    /// A reader moved on or left (the fill may have room again).
    moved: Notify,
    /// The most bytes (segment capacity) a transient object held at once.
    peak: AtomicU64,
}

#[derive(Default)]
struct FollowState {
    next_id: u64,
    /// Attached readers: id -> the offset of the next byte each wants
    /// (what is below it, it has taken).
    readers: HashMap<u64, u64>,
    /// Readers cut off for falling a window behind: their next read fails.
    detached: std::collections::HashSet<u64>,
    /// Leading segments released (empty): a reader can no longer start from
    /// the first byte.
    released: usize,
    /// Set once the object is transient: the bytes it may hold.
    window: Option<u64>,
}

/// One response's place in a [`Follow`]ed object; leaving (drop) detaches it.
pub struct Cursor {
    follow: Arc<Follow>,
    id: u64,
}

impl Cursor {
    /// This reader has taken everything below `offset`.
    fn seek(&self, offset: u64) -> Result<(), ReadError> {
        {
            let mut st = self.follow.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.detached.contains(&self.id) {
                return Err(ReadError::Detached);
            }
            st.readers.insert(self.id, offset);
        }
        self.follow.moved.notify_one();
        Ok(())
    }

    fn check(&self) -> Result<(), ReadError> {
        let st = self.follow.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.detached.contains(&self.id) {
            return Err(ReadError::Detached);
        }
        Ok(())
    }
}

impl Drop for Cursor {
    fn drop(&mut self) {
        if let Ok(mut st) = self.follow.state.lock() {
            st.readers.remove(&self.id);
            st.detached.remove(&self.id);
        }
        self.follow.moved.notify_one();
    }
}

/// What [`Object::make_room`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Room {
    /// The fill may append; `detached` readers were cut off to make room.
    Made { detached: u64 },
    /// Nobody reads the object and its bytes are needed for room: the fill
    /// may stop.
    NoReaders,
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
    /// A memory object whose bytes may be released behind its readers:
    /// this reader's place in it.
    Follow(Cursor),
}

pub struct Object {
    pub meta: Mutex<Meta>,
    pub body: Body,
    pub tier: Tier,
    pub framing: Framing,
    /// Objects whose bytes may be released behind their readers (see
    /// [`Follow`]); none for sized stored objects, whose bytes all stay.
    follow: Option<Arc<Follow>>,
    progress: watch::Sender<Progress>,
    /// SHA-256 of the body once complete.
    pub sha256: Mutex<Option<[u8; 32]>>,
    /// Disk objects: the SHA-256 of each [`crate::blocks::BLOCK`] of the
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
    /// This reader fell a whole window behind a fill that is not stored,
    /// for longer than the fill waits: cut off.
    #[error("this reader fell too far behind a fill that is not stored")]
    Detached,
}

impl Object {
    pub fn new(meta: Meta, body: Body, tier: Tier) -> Arc<Object> {
        Object::filling(meta, body, tier, Framing::Sized, None)
    }

    /// A memory object to fill that is not stored (`window`: the bytes it
    /// may hold), or stored but of a length not known yet (`None`). Its
    /// readers are followed, so that its bytes can be released behind them.
    pub fn followed(meta: Meta, framing: Framing, window: Option<u64>) -> Arc<Object> {
        let follow = Follow {
            state: Mutex::new(FollowState {
                window,
                ..FollowState::default()
            }),
            moved: Notify::new(),
            peak: AtomicU64::new(0),
        };
        let body = Body::Memory(RwLock::new(Vec::new()));
        Object::filling(meta, body, Tier::Memory, framing, Some(Arc::new(follow)))
    }

    fn filling(
        meta: Meta,
        body: Body,
        tier: Tier,
        framing: Framing,
        follow: Option<Arc<Follow>>,
    ) -> Arc<Object> {
        let (progress, _) = watch::channel(Progress::Filling(0));
        Arc::new(Object {
            meta: Mutex::new(meta),
            body,
            tier,
            framing,
            follow,
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

    /// Whether the length was known from the start (`Content-Length`).
    pub fn is_sized(&self) -> bool {
        self.framing == Framing::Sized
    }

    /// Whether the object is not stored (its fill is only shared).
    /// Followed: a memory object whose readers follow the fill and whose
    /// bytes may be released behind them (see [`Object::followed`]).
    pub fn follows(&self) -> bool {
        self.follow.is_some()
    }

    pub fn is_transient(&self) -> bool {
        self.follow_state(|st| st.window.is_some())
    }

    /// A new reader may still start from the first byte.
    pub fn joinable(&self) -> bool {
        self.follow_state(|st| st.released == 0)
    }

    /// The object stops being stored (it outgrew its tier while filling):
    /// from now on it holds at most `window` bytes behind its readers.
    /// Only a followed object can.
    pub fn make_transient(&self, window: u64) -> bool {
        self.follow_state(|st| {
            st.window = Some(window);
            true
        })
    }

    /// The most bytes this object held at once while transient.
    pub fn transient_peak(&self) -> u64 {
        self.follow
            .as_ref()
            .map_or(0, |f| f.peak.load(Ordering::Relaxed))
    }

    /// `f` of the follow state; the default answer for objects not followed.
    fn follow_state<T: Default>(&self, f: impl FnOnce(&mut FollowState) -> T) -> T {
        match &self.follow {
            Some(fo) => f(&mut fo.state.lock().unwrap_or_else(|e| e.into_inner())),
            None => T::default(),
        }
    }

    /// Before the fill appends `incoming` bytes to a transient object:
    /// releases the segments every attached reader is past, so that the
    /// object stays within its window. When the slowest reader holds the
    /// window full, the fill (and with it the origin's transfer) waits for
    /// it: until room for a quarter of the window is free, at most `grace`;
    /// then the readers still in the way are cut off. Why wait rather than
    /// cut at once: clients on the LAN normally read faster than the origin
    /// sends, so a reader a window behind is usually a momentary stall, and
    /// cutting it would cost a whole download of its own, which collapsing
    /// exists to avoid; the bound keeps one stuck client from holding back
    /// everyone else for longer than `grace`.
    pub async fn make_room(&self, incoming: usize, grace: Duration) -> Room {
        let Some(f) = &self.follow else {
            return Room::Made { detached: 0 };
        };
        let Progress::Filling(filled) = self.progress() else {
            return Room::Made { detached: 0 };
        };
        let seg = SEGMENT as u64;
        // Segments the body spans once the incoming bytes are in, and the
        // whole segments already filled (the only ones that can go).
        let spans = (filled + incoming as u64).div_ceil(seg) as usize;
        let full = (filled / seg) as usize;
        let deadline = tokio::time::Instant::now() + grace;
        let mut detached = 0u64;
        let mut target: Option<usize> = None;
        loop {
            // Decided under the lock, acted on without it (no guard lives
            // across an await).
            enum Step {
                Done(Room),
                Release(usize, usize),
                Wait,
            }
            let step = {
                let mut st = f.state.lock().unwrap_or_else(|e| e.into_inner());
                match st.window {
                    None => Step::Done(Room::Made { detached }),
                    Some(window) => {
                        let max = (window / seg).max(1) as usize;
                        let need = spans.saturating_sub(max);
                        let low = st
                            .readers
                            .iter()
                            .filter(|(id, _)| !st.detached.contains(id))
                            .map(|(_, at)| *at)
                            .min();
                        let want = target.unwrap_or(need);
                        match low {
                            _ if need <= st.released => Step::Done(Room::Made { detached }),
                            None => Step::Done(Room::NoReaders),
                            Some(low) if ((low / seg) as usize).min(full) >= want => {
                                let from = st.released;
                                st.released = ((low / seg) as usize).min(full);
                                Step::Release(from, st.released)
                            }
                            Some(_) if tokio::time::Instant::now() >= deadline => {
                                let cut = want as u64 * seg;
                                let slow: Vec<u64> = st
                                    .readers
                                    .iter()
                                    .filter(|(id, at)| **at < cut && !st.detached.contains(id))
                                    .map(|(id, _)| *id)
                                    .collect();
                                detached += slow.len() as u64;
                                st.detached.extend(slow);
                                continue;
                            }
                            Some(_) => {
                                // Paused: resume once a quarter of the window
                                // is free, not at every segment the slowest
                                // reader frees (which would let a slow but
                                // steady reader set everyone's pace).
                                target.get_or_insert((need + max / 4).min(full).max(need));
                                Step::Wait
                            }
                        }
                    }
                }
            };
            match step {
                Step::Done(room) => return room,
                Step::Wait => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    let _ = tokio::time::timeout(left, f.moved.notified()).await;
                }
                Step::Release(from, to) => {
                    if let Body::Memory(segments) = &self.body {
                        let mut segs = segments.write().unwrap_or_else(|e| e.into_inner());
                        for s in segs.iter_mut().take(to).skip(from) {
                            *s = Vec::new();
                        }
                    }
                    return Room::Made { detached };
                }
            }
        }
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
                    segs.reserve_exact(segments_for(length).min(MAX_RESERVED_SEGMENTS));
                }
                let mut rest = data;
                let mut pos = filled;
                while !rest.is_empty() {
                    // By position, not by the last segment's length: a
                    // transient object's segments behind its readers are
                    // released (empty), the last one too once all have it.
                    let at = (segs.len() as u64).saturating_mul(SEGMENT as u64);
                    if at <= pos {
                        // Every earlier segment is full: this one starts here.
                        let needed = length.saturating_sub(at).min(SEGMENT as u64) as usize;
                        segs.push(Vec::with_capacity(needed));
                    }
                    let Some(last) = segs.last_mut() else { break };
                    let take = (SEGMENT - last.len()).min(rest.len());
                    if take == 0 {
                        // `filled` is not where the body ends: never loop.
                        return Err(std::io::Error::other("append out of order"));
                    }
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
                    pos += take as u64;
                }
                if let Some(f) = &self.follow {
                    let st = f.state.lock().unwrap_or_else(|e| e.into_inner());
                    if st.window.is_some() {
                        let held: usize = segs.iter().skip(st.released).map(Vec::capacity).sum();
                        f.peak.fetch_max(held as u64, Ordering::Relaxed);
                    }
                }
            }
            Body::File(d) => d
                .fill_file()
                .ok_or_else(|| std::io::Error::other("the fill's file is closed"))?
                .write_all_at(data, filled)?,
        }
        if self.framing != Framing::Sized {
            // The length so far: what the accounting and readers go by
            // until the end is known.
            if let Ok(mut m) = self.meta.lock() {
                m.length = filled + data.len() as u64;
            }
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
                // Saturating: the length is the origin's word (see
                // MAX_RESERVED_SEGMENTS); a huge one is a huge footprint,
                // which no tier admits, not an overflow.
                let segs = segments_for(m.length).saturating_mul(std::mem::size_of::<Vec<u8>>());
                let index = 2 * m.key.len() + INDEX_ENTRY;
                let own =
                    segs.saturating_add(meta_capacity(&m) + std::mem::size_of::<Object>() + index);
                m.length.saturating_add(own as u64)
            }
        }
    }

    pub fn finish(&self, result: Progress) {
        self.progress.send_replace(result);
    }

    /// Opens the object for one response.
    pub fn source(&self) -> std::io::Result<Source> {
        match (&self.body, &self.follow) {
            (Body::Memory(_), Some(f)) => {
                let mut st = f.state.lock().unwrap_or_else(|e| e.into_inner());
                if st.released > 0 {
                    return Err(std::io::Error::other(
                        "the first bytes of this fill, which is not stored, are no longer held",
                    ));
                }
                if self.is_complete() {
                    // Nothing is released once the fill has ended.
                    return Ok(Source::Memory);
                }
                let id = st.next_id;
                st.next_id += 1;
                st.readers.insert(id, 0);
                Ok(Source::Follow(Cursor {
                    follow: f.clone(),
                    id,
                }))
            }
            (Body::Memory(_), None) => Ok(Source::Memory),
            (Body::File(d), _) => d.open().map(Source::File),
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
        // First: asking for `offset` says everything below it is taken
        // (also at the end, or for nothing).
        if let Source::Follow(c) = src {
            c.seek(offset)?;
        }
        let sized = self.is_sized();
        let length = self.length();
        if max == 0 || (sized && offset >= length) {
            return Ok((Vec::new(), 0));
        }
        let mut rx = self.progress.subscribe();
        let available = loop {
            let p = *rx.borrow_and_update();
            match p {
                Progress::Complete => {
                    // An object of unknown length ends where its fill did.
                    let length = self.length();
                    if offset >= length {
                        return Ok((Vec::new(), 0));
                    }
                    break length;
                }
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
                // Checked under the segments' lock: the fill cuts a reader
                // off before it releases what that reader still needs, and
                // releases only under the write lock.
                if let Source::Follow(c) = src {
                    c.check()?;
                }
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
            (Body::File(_), Source::Memory | Source::Follow(_)) => {
                Err(ReadError::Io("not a memory object".into()))
            }
            (_, Source::File(f)) => {
                use crate::blocks::BLOCK;
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
                            .map_err(crate::blocks::BlockError::Io)?;
                        out.truncate(n);
                        Ok((out, 0))
                    } else {
                        crate::blocks::read_verified(&f, length, first, &hashes, offset, end)
                    }
                })
                .await
                .map_err(|e| ReadError::Io(e.to_string()))?;
                match read {
                    Ok((out, _)) if out.is_empty() => Err(ReadError::Io(
                        "the file is shorter than its index says".into(),
                    )),
                    Ok(r) => Ok(r),
                    Err(crate::blocks::BlockError::Io(e)) => Err(ReadError::Io(e.to_string())),
                    Err(crate::blocks::BlockError::Damaged(b)) => Err(ReadError::Damaged(b)),
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

    #[test]
    fn a_length_the_origin_states_reserves_no_more_than_a_bounded_list() {
        // The first byte of a body said to be 9,999,999,999,999,999,999
        // bytes long: stored, with a segment list of at most
        // MAX_RESERVED_SEGMENTS slots (it aborted the cache, asking for
        // 10^15 bytes).
        let o = Object::new(
            meta(9_999_999_999_999_999_999),
            Body::Memory(RwLock::new(Vec::new())),
            Tier::Memory,
        );
        o.append(&[7], 0).unwrap();
        let Body::Memory(segs) = &o.body else {
            panic!("memory")
        };
        let segs = segs.read().unwrap();
        assert!(
            segs.capacity() <= MAX_RESERVED_SEGMENTS,
            "{}",
            segs.capacity()
        );
        assert_eq!(segs[0], [7]);
        assert!(segs[0].capacity() <= SEGMENT);
        drop(segs);
        // Accounted as what it says it is, which no tier admits; at the
        // top of the range, without overflowing.
        assert!(o.footprint() > 9_999_999_999_999_999_999);
        let o = Object::new(
            meta(u64::MAX),
            Body::Memory(RwLock::new(Vec::new())),
            Tier::Memory,
        );
        assert_eq!(o.footprint(), u64::MAX);
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
        use crate::blocks::{BlockHasher, BLOCK};
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
        use crate::blocks::{BlockHasher, BLOCK};
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

    /// Reads `n` bytes of `o` at `at` through `src`.
    async fn take(o: &Object, src: &Source, at: u64, n: usize) -> Result<Vec<u8>, ReadError> {
        let mut got = Vec::new();
        while got.len() < n {
            let b = o.read_at(src, at + got.len() as u64, n - got.len()).await?;
            if b.is_empty() {
                break;
            }
            got.extend_from_slice(&b);
        }
        // As a response does, asking for what follows: all of it is taken.
        o.read_at(src, at + got.len() as u64, 0).await?;
        Ok(got)
    }

    #[tokio::test]
    async fn a_transient_fill_keeps_its_window_and_cuts_off_a_stalled_reader() {
        let seg = SEGMENT as u64;
        let len = 8 * seg;
        let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        let o = Object::followed(meta(len), Framing::Sized, Some(2 * seg));
        let fast = o.source().unwrap();
        let slow = o.source().unwrap();
        let grace = Duration::from_millis(200);
        let mut at = 0usize;
        let mut append = |o: &Object, n: usize| {
            o.append(&data[at..at + n], at as u64).unwrap();
            at += n;
        };
        // The window's worth goes in without waiting.
        for _ in 0..2 {
            assert_eq!(
                o.make_room(SEGMENT, grace).await,
                Room::Made { detached: 0 }
            );
            append(&o, SEGMENT);
        }
        assert!(o.joinable());
        assert!(take(&o, &fast, 0, 2 * SEGMENT).await.unwrap() == data[..2 * SEGMENT]);
        // The slow reader has taken nothing: the fill waits for it, and a
        // reader that moves on within the grace lets it go on.
        let moved = {
            let o = o.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let got = take(&o, &slow, 0, SEGMENT).await;
                (got, slow)
            })
        };
        let t = std::time::Instant::now();
        assert_eq!(
            o.make_room(SEGMENT, grace).await,
            Room::Made { detached: 0 }
        );
        assert!(
            t.elapsed() >= Duration::from_millis(40),
            "{:?}",
            t.elapsed()
        );
        let (got, slow) = moved.await.unwrap();
        assert!(got.unwrap() == data[..SEGMENT]);
        append(&o, SEGMENT);
        // Nobody starts from the first byte any more.
        assert!(!o.joinable());
        assert!(o.source().is_err());
        // Now it stalls: after the grace it is cut off, the fill goes on.
        assert!(take(&o, &fast, 2 * seg, SEGMENT).await.unwrap() == data[2 * SEGMENT..3 * SEGMENT]);
        let t = std::time::Instant::now();
        assert_eq!(
            o.make_room(SEGMENT, grace).await,
            Room::Made { detached: 1 }
        );
        assert!(t.elapsed() >= grace, "{:?}", t.elapsed());
        assert_eq!(o.read_at(&slow, seg, 10).await, Err(ReadError::Detached));
        append(&o, SEGMENT);
        assert!(take(&o, &fast, 3 * seg, SEGMENT).await.unwrap() == data[3 * SEGMENT..4 * SEGMENT]);
        // Never more than the window held.
        assert!(
            o.transient_peak() > 0 && o.transient_peak() <= 2 * seg,
            "{}",
            o.transient_peak()
        );
        // With no reader left, a fill that needs room may stop.
        drop(fast);
        drop(slow);
        assert_eq!(
            o.make_room(SEGMENT, grace).await,
            Room::Made { detached: 0 }
        );
        append(&o, SEGMENT);
        assert_eq!(o.make_room(SEGMENT, grace).await, Room::NoReaders);
    }
}
