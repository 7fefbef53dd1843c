//! The index of stored objects over both tiers: lookup with request
//! collapsing (the first miss fills, later ones wait for it), LRU eviction
//! within each tier's budget, and the accounting the statistics show.
//!
//! Which tier: with a disk tier, objects up to 1/16 of the memory budget go
//! to memory and larger ones to disk (the kernel's page cache keeps the hot
//! ones of those in RAM); without one, objects up to half the memory budget
//! are stored, larger ones are passed on unstored.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::watch;

use crate::disk::Disk;
use crate::object::{Body, DiskBody, Object, Tier};
use crate::rules;

/// What a fill turned out to be, for the requests that waited on it.
#[derive(Clone)]
pub enum Resolved {
    /// Serve from this object (check its Vary first).
    Object(Arc<Object>),
    /// The response is not shared (not storable, or the fill failed before
    /// its head): fetch on your own.
    NotShared,
}

pub enum Lookup {
    Found(Arc<Object>),
    Wait(watch::Receiver<Option<Resolved>>),
    /// Nobody has this object or is fetching it: the caller fills it.
    Fill(FillTicket),
}

/// The right (and duty) to fill a key. Dropped without [`FillTicket::resolve`]
/// tells the waiters to fetch on their own.
pub struct FillTicket {
    store: Arc<Store>,
    key: String,
    tx: Option<watch::Sender<Option<Resolved>>>,
}

impl FillTicket {
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Requests waiting for this fill now.
    pub fn waiters(&self) -> usize {
        self.tx.as_ref().map_or(0, |tx| tx.receiver_count())
    }

    pub fn resolve(mut self, r: Resolved) {
        if let Some(tx) = self.tx.take() {
            self.store.end_pending(&self.key);
            tx.send_replace(Some(r));
        }
    }
}

impl Drop for FillTicket {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            self.store.end_pending(&self.key);
            tx.send_replace(Some(Resolved::NotShared));
        }
    }
}

#[derive(Default)]
struct Index {
    objects: HashMap<String, Arc<Object>>,
    /// Primary key (method and URL) -> the fields its responses vary on,
    /// and how many stored variants there are (the entry goes with the last).
    vary: HashMap<String, (Vec<String>, usize)>,
    pending: HashMap<String, watch::Sender<Option<Resolved>>>,
    /// Fills shared but not stored, which a request may still join while
    /// their first bytes are held (never in `objects`, never counted).
    transient: HashMap<String, Arc<Object>>,
    lru: BTreeMap<u64, String>,
    tick: u64,
    memory_bytes: u64,
    disk_bytes: u64,
    memory_objects: u64,
    disk_objects: u64,
}

/// Objects and bytes per tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TierCounts {
    pub memory_objects: u64,
    pub memory_bytes: u64,
    pub disk_objects: u64,
    pub disk_bytes: u64,
    /// The bytes a fill that is not stored may hold behind its readers.
    pub transient_window: u64,
}

pub struct Store {
    index: Mutex<Index>,
    pub memory_budget: u64,
    pub disk: Option<Disk>,
    /// Memory the fills under way may come to hold (see [`Store::reserve_fill`]).
    filling: Mutex<u64>,
}

/// Memory a fill under way may hold (the length of a memory object it
/// fills, or a transient object's window), counted until the fill ends.
pub struct FillReservation {
    store: Arc<Store>,
    bytes: u64,
}

impl Drop for FillReservation {
    fn drop(&mut self) {
        let mut filling = self.store.filling.lock().unwrap_or_else(|e| e.into_inner());
        *filling = filling.saturating_sub(self.bytes);
    }
}

impl Index {
    fn account(&mut self, tier: Tier, bytes: u64, add: bool) {
        let (b, n) = match tier {
            Tier::Memory => (&mut self.memory_bytes, &mut self.memory_objects),
            Tier::Disk => (&mut self.disk_bytes, &mut self.disk_objects),
        };
        if add {
            *b += bytes;
            *n += 1;
        } else {
            *b = b.saturating_sub(bytes);
            *n = n.saturating_sub(1);
        }
    }

    fn touch(&mut self, key: &str, o: &Object) {
        self.tick += 1;
        let old = o.tick.swap(self.tick, Ordering::Relaxed);
        self.lru.remove(&old);
        self.lru.insert(self.tick, key.to_owned());
    }

    /// Notes the Vary of an object stored under `key`.
    fn add_variant(&mut self, key: &str, vary: &[String]) {
        match key.split_once('\n') {
            Some((primary, _)) => {
                let e = self.vary.entry(primary.to_owned()).or_default();
                e.0 = vary.to_vec();
                e.1 += 1;
            }
            // The origin no longer varies: the key is the URL alone again.
            None => {
                self.vary.remove(key);
            }
        }
    }

    fn take(&mut self, key: &str) -> Option<Arc<Object>> {
        let o = self.objects.remove(key)?;
        if let Some((primary, _)) = key.split_once('\n') {
            if let Some(e) = self.vary.get_mut(primary) {
                e.1 = e.1.saturating_sub(1);
                if e.1 == 0 {
                    self.vary.remove(primary);
                }
            }
        }
        self.lru.remove(&o.tick.load(Ordering::Relaxed));
        self.account(o.tier, o.accounted.load(Ordering::Relaxed), false);
        Some(o)
    }

    /// Counts `o` in its tier at its footprint (noted in `o`, so that what
    /// goes out when it leaves is what came in).
    fn add(&mut self, o: &Object) {
        let bytes = o.footprint();
        o.accounted.store(bytes, Ordering::Relaxed);
        self.account(o.tier, bytes, true);
    }
}

impl Store {
    pub fn new(memory_budget: u64, disk: Option<Disk>) -> Arc<Store> {
        let store = Arc::new(Store {
            index: Mutex::new(Index::default()),
            memory_budget,
            disk,
            filling: Mutex::new(0),
        });
        store.load_disk();
        store
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts the disk tier's objects back in the index (after a restart),
    /// least recently used first, and evicts those beyond the budget: the
    /// budget may have been lowered (`disk_max_bytes`, a reserve) or the
    /// file system shrunk since they were stored, and the tier would
    /// otherwise stay over it until enough new objects came in.
    fn load_disk(&self) {
        let Some(disk) = &self.disk else { return };
        let mut loaded = disk.load();
        // Oldest first: the LRU order follows the recorded times (ties in
        // the order of expiry, then key, so a load is repeatable).
        loaded.sort_by(|a, b| {
            (a.used, a.meta.fresh_until, &a.meta.key).cmp(&(
                b.used,
                b.meta.fresh_until,
                &b.meta.key,
            ))
        });
        let mut evicted = Vec::new();
        let mut ix = self.lock();
        for l in loaded {
            let key = l.meta.key.clone();
            ix.add_variant(&key, &l.meta.vary);
            let body = Body::File(DiskBody::stored(l.data));
            let o = Object::complete(l.meta, body, Tier::Disk, l.sha256, l.blocks);
            ix.add(&o);
            ix.touch(&key, &o);
            ix.objects.insert(key, o);
        }
        self.evict_tier(&mut ix, Tier::Disk, None, &mut evicted);
        tracing::info!(
            "disk tier {}: {} objects, {} bytes (budget {}){}",
            disk.dir.display(),
            ix.disk_objects,
            ix.disk_bytes,
            disk.budget,
            if evicted.is_empty() {
                String::new()
            } else {
                format!("; {} least recently used evicted to fit", evicted.len())
            }
        );
        drop(ix);
        for (k, o) in evicted {
            self.remove_files(&k, &o);
        }
    }

    /// The full key of a request: its primary key plus what the object's
    /// `Vary` names in this request.
    pub fn full_key(&self, primary: &str, request: &rules::Fields) -> String {
        let ix = self.lock();
        match ix.vary.get(primary) {
            Some((names, _)) => format!("{primary}{}", rules::vary_key(names, request)),
            None => primary.to_owned(),
        }
    }

    /// Finds an object, joins a fill under way, or hands out the fill.
    pub fn lookup(self: &Arc<Self>, primary: &str, request: &rules::Fields) -> Lookup {
        let key = self.full_key(primary, request);
        let mut ix = self.lock();
        if let Some(o) = ix.objects.get(&key).cloned() {
            ix.touch(&key, &o);
            return Lookup::Found(o);
        }
        if let Some(t) = ix.transient.get(&key).cloned() {
            if t.joinable() {
                return Lookup::Found(t);
            }
            // Its first bytes are gone: a new request starts its own fill.
            ix.transient.remove(&key);
        }
        if let Some(tx) = ix.pending.get(&key) {
            return Lookup::Wait(tx.subscribe());
        }
        let (tx, _) = watch::channel(None);
        ix.pending.insert(key.clone(), tx.clone());
        Lookup::Fill(FillTicket {
            store: self.clone(),
            key,
            tx: Some(tx),
        })
    }

    fn end_pending(&self, key: &str) {
        self.lock().pending.remove(key);
    }

    /// The tier a new object of `len` bytes goes to, if any.
    pub fn tier_for(&self, len: u64) -> Option<Tier> {
        match &self.disk {
            Some(_) if len <= self.memory_budget / 16 => Some(Tier::Memory),
            Some(d) if len <= d.budget => Some(Tier::Disk),
            Some(_) => None,
            None if len <= self.memory_budget / 2 => Some(Tier::Memory),
            None => None,
        }
    }

    /// The most bytes a fill that is not stored holds behind its readers:
    /// a quarter of the memory budget, between 1 MiB and 64 MiB (each such
    /// fill under way holds up to this much besides the memory tier).
    pub fn transient_window(&self) -> u64 {
        (self.memory_budget / 4).clamp(1 << 20, 64 << 20)
    }

    /// Admission for a fill that may hold `bytes` of memory: granted while
    /// the fills under way, this one included, may hold at most the memory
    /// budget. Complete objects can be evicted to make room; a filling one
    /// cannot, so without this many concurrent misses (whose clients may
    /// have left: a stored fill goes on) would hold their whole lengths
    /// beyond the budget and the unit's memory limit. A fill refused here
    /// is relayed to its own client instead of being stored or shared.
    pub fn reserve_fill(self: &Arc<Self>, bytes: u64) -> Option<FillReservation> {
        let mut filling = self.filling.lock().unwrap_or_else(|e| e.into_inner());
        if filling.saturating_add(bytes) > self.memory_budget {
            return None;
        }
        *filling += bytes;
        Some(FillReservation {
            store: self.clone(),
            bytes,
        })
    }

    /// The memory the fills under way may hold, reserved.
    pub fn filling_bytes(&self) -> u64 {
        *self.filling.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The largest object of unknown length kept in memory as it fills.
    pub fn growing_limit(&self) -> u64 {
        match &self.disk {
            Some(_) => self.memory_budget / 16,
            None => self.memory_budget / 2,
        }
    }

    /// Notes a fill shared but not stored, which requests may join.
    pub fn add_transient(&self, key: &str, o: Arc<Object>) {
        self.lock().transient.insert(key.to_owned(), o);
    }

    /// A fill shared but not stored has ended (or may no longer be joined).
    pub fn end_transient(&self, key: &str, o: &Arc<Object>) {
        let mut ix = self.lock();
        if ix.transient.get(key).is_some_and(|t| Arc::ptr_eq(t, o)) {
            ix.transient.remove(key);
        }
    }

    /// A stored memory object of unknown length grew to `len` bytes:
    /// counted again (evicting others beyond the budget). False when it is
    /// to stop being stored: larger than `limit` or than the tier takes,
    /// or no longer the object of `key`; it is then out of the index.
    pub fn grown(&self, key: &str, o: &Arc<Object>, len: u64, limit: u64) -> bool {
        if len > limit || len > self.growing_limit() {
            self.remove(key, o);
            return false;
        }
        let mut evicted = Vec::new();
        {
            let mut ix = self.lock();
            if !ix.objects.get(key).is_some_and(|cur| Arc::ptr_eq(cur, o)) {
                return false;
            }
            let old = o.accounted.load(Ordering::Relaxed);
            ix.account(o.tier, old, false);
            ix.add(o);
            self.evict(&mut ix, o, &mut evicted);
        }
        for (k, o) in evicted {
            self.remove_files(&k, &o);
        }
        true
    }

    /// Takes the least recently used complete objects of `o`'s tier out of
    /// the index (into `evicted`) until the tier is within its budget.
    fn evict(&self, ix: &mut Index, o: &Arc<Object>, evicted: &mut Vec<(String, Arc<Object>)>) {
        self.evict_tier(ix, o.tier, Some(o), evicted);
    }

    /// Takes the least recently used complete objects of `tier`, `keep`
    /// aside, out of the index (into `evicted`) until the tier is within
    /// its budget.
    fn evict_tier(
        &self,
        ix: &mut Index,
        tier: Tier,
        keep: Option<&Arc<Object>>,
        evicted: &mut Vec<(String, Arc<Object>)>,
    ) {
        let budget = match tier {
            Tier::Memory => self.memory_budget,
            Tier::Disk => self.disk.as_ref().map(|d| d.budget).unwrap_or(0),
        };
        let mut cursor = 0u64;
        loop {
            let used = match tier {
                Tier::Memory => ix.memory_bytes,
                Tier::Disk => ix.disk_bytes,
            };
            if used <= budget {
                break;
            }
            // The least recently used complete object of this tier.
            let victim = ix
                .lru
                .range(cursor..)
                .find(|(_, k)| {
                    ix.objects.get(*k).is_some_and(|v| {
                        v.tier == tier
                            && v.is_complete()
                            && !keep.is_some_and(|o| Arc::ptr_eq(v, o))
                    })
                })
                .map(|(t, k)| (*t, k.clone()));
            let Some((t, victim)) = victim else { break };
            cursor = t + 1;
            if let Some(v) = ix.take(&victim) {
                evicted.push((victim, v));
            }
        }
    }

    /// A new memory body.
    pub fn memory_body() -> Body {
        Body::Memory(RwLock::new(Vec::new()))
    }

    /// Stores `o` under `key` (replacing what was there) and evicts the
    /// least recently used complete objects of its tier beyond the budget.
    /// A memory object counts at its [`Object::footprint`]: body, metadata
    /// and the index's entries, so a budget of small objects is what they
    /// really hold, not only their bodies.
    pub fn insert(&self, key: &str, o: Arc<Object>) {
        let mut evicted = Vec::new();
        {
            let mut ix = self.lock();
            // A replaced disk object's body goes now (a response reading it
            // keeps its open file); the new one is another file.
            if let Some(old) = ix.take(key) {
                evicted.push((key.to_owned(), old));
            }
            ix.add_variant(key, &o.meta().vary);
            ix.add(&o);
            ix.touch(key, &o);
            ix.objects.insert(key.to_owned(), o.clone());
            self.evict(&mut ix, &o, &mut evicted);
        }
        for (k, o) in evicted {
            self.remove_files(&k, &o);
        }
    }

    fn remove_files(&self, key: &str, o: &Object) {
        if let (Some(disk), Body::File(d)) = (&self.disk, &o.body) {
            disk.remove(key, &d.path());
        }
    }

    /// Drops `o` from the index if it is still there (a failed fill, a body
    /// whose SHA-256 no longer matches); its disk files go with it.
    pub fn remove(&self, key: &str, o: &Arc<Object>) {
        let removed = {
            let mut ix = self.lock();
            match ix.objects.get(key) {
                Some(cur) if Arc::ptr_eq(cur, o) => ix.take(key).is_some(),
                _ => false,
            }
        };
        if removed {
            self.remove_files(key, o);
        }
    }

    /// `o`'s metadata changed (a 304 replaced fields): counts it again,
    /// if it is still the object of `key`.
    pub fn reaccount(&self, key: &str, o: &Arc<Object>) {
        let mut ix = self.lock();
        if ix.objects.get(key).is_some_and(|cur| Arc::ptr_eq(cur, o)) {
            let old = o.accounted.load(Ordering::Relaxed);
            ix.account(o.tier, old, false);
            ix.add(o);
        }
    }

    pub fn counts(&self) -> TierCounts {
        let ix = self.lock();
        TierCounts {
            memory_objects: ix.memory_objects,
            memory_bytes: ix.memory_bytes,
            disk_objects: ix.disk_objects,
            disk_bytes: ix.disk_bytes,
            transient_window: self.transient_window(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::{Meta, Progress, SEGMENT};
    use std::path::PathBuf;

    fn object(key: &str, len: u64) -> Arc<Object> {
        let meta = Meta {
            key: key.into(),
            status: 200,
            reason: "OK".into(),
            headers: vec![],
            length: len,
            fresh_until: 0,
            vary: vec![],
        };
        let o = Object::new(meta, Store::memory_body(), Tier::Memory);
        o.finish(Progress::Complete);
        o
    }

    #[tokio::test]
    async fn concurrent_misses_make_one_fill() {
        let store = Store::new(1000, None);
        let Lookup::Fill(ticket) = store.lookup("GET a", &[]) else {
            panic!("fill")
        };
        let Lookup::Wait(mut rx) = store.lookup("GET a", &[]) else {
            panic!("wait")
        };
        let o = object("GET a", 10);
        store.insert(ticket.key(), o.clone());
        ticket.resolve(Resolved::Object(o.clone()));
        rx.changed().await.unwrap();
        assert!(matches!(&*rx.borrow(), Some(Resolved::Object(x)) if Arc::ptr_eq(x, &o)));
        assert!(matches!(store.lookup("GET a", &[]), Lookup::Found(_)));
        // A ticket dropped unresolved sends the waiters on their own way.
        let Lookup::Fill(ticket) = store.lookup("GET b", &[]) else {
            panic!("fill")
        };
        let Lookup::Wait(mut rx) = store.lookup("GET b", &[]) else {
            panic!("wait")
        };
        drop(ticket);
        rx.changed().await.unwrap();
        assert!(matches!(&*rx.borrow(), Some(Resolved::NotShared)));
        assert!(matches!(store.lookup("GET b", &[]), Lookup::Fill(_)));
    }

    #[test]
    fn variants_are_keyed_by_what_they_vary_on() {
        let store = Store::new(1000, None);
        let gzip = vec![("Accept-Encoding".to_string(), b"gzip".to_vec())];
        let names = vec!["accept-encoding".to_string()];
        let key = format!("GET a{}", rules::vary_key(&names, &gzip));
        let o = object(&key, 10);
        if let Ok(mut m) = o.meta.lock() {
            m.vary = names.clone();
        }
        store.insert(&key, o);
        assert!(matches!(store.lookup("GET a", &gzip), Lookup::Found(_)));
        assert!(matches!(store.lookup("GET a", &[]), Lookup::Fill(_)));
        // The origin stops varying: the URL alone is the key again.
        store.insert("GET a", object("GET a", 10));
        assert!(matches!(store.lookup("GET a", &[]), Lookup::Found(_)));
        assert!(matches!(store.lookup("GET a", &gzip), Lookup::Found(_)));
    }

    #[test]
    fn the_least_recently_used_goes_first() {
        // Room for three objects of 300 bytes with their overhead, not four.
        let each = object("GET a", 300).footprint();
        assert!(each > 300, "the metadata and index entries count too");
        let budget = 3 * each + each / 2;
        let store = Store::new(budget, None);
        for k in ["GET a", "GET b", "GET c"] {
            store.insert(k, object(k, 300));
        }
        // a used again: b is the oldest now.
        assert!(matches!(store.lookup("GET a", &[]), Lookup::Found(_)));
        store.insert("GET d", object("GET d", 300));
        assert!(matches!(store.lookup("GET b", &[]), Lookup::Fill(_)));
        assert!(matches!(store.lookup("GET a", &[]), Lookup::Found(_)));
        assert_eq!(store.counts().memory_bytes, 3 * each);
        assert_eq!(store.counts().memory_objects, 3);
        assert_eq!(store.tier_for(budget / 2), Some(Tier::Memory));
        assert_eq!(store.tier_for(budget / 2 + 1), None);
    }

    /// A filled memory object as a fill makes it: origin-like fields, the
    /// body appended in pieces as they come off the network.
    fn filled(key: &str, len: usize) -> Arc<Object> {
        let headers = [
            ("Cache-Control", "max-age=3600"),
            ("Content-Type", "application/json"),
            ("ETag", "\"5f2a-1c9e8b3d\""),
            ("Last-Modified", "Sun, 01 Nov 2026 00:00:00 GMT"),
            ("Date", "Sun, 22 Nov 2026 10:00:00 GMT"),
        ];
        let meta = Meta {
            key: key.into(),
            status: 200,
            reason: "OK".into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            length: len as u64,
            fresh_until: 0,
            vary: vec![],
        };
        let o = Object::new(meta, Store::memory_body(), Tier::Memory);
        let body = vec![7u8; len];
        let mut at = 0;
        for piece in body.chunks(1460) {
            o.append(piece, at).unwrap();
            at += piece.len() as u64;
        }
        o.finish(Progress::Complete);
        o
    }

    #[test]
    fn small_objects_are_accounted_at_what_they_hold() {
        // 2,000 manifests of 2 KB under a 1 MiB budget: the store keeps as
        // many as fit, and what they really hold stays within the budget
        // (a whole 256 KiB segment per object once made them hold 100
        // times their accounted size).
        let budget = 1 << 20;
        let store = Store::new(budget, None);
        let mut kept = Vec::new();
        for i in 0..2000 {
            let key = format!("GET https://updates.example.com/manifests/{i}.json");
            let o = filled(&key, 2048);
            store.insert(&key, o.clone());
            kept.push((key, o));
        }
        let counts = store.counts();
        let held: u64 = kept
            .iter()
            .filter(|(k, _)| matches!(store.lookup(k, &[]), Lookup::Found(_)))
            .map(|(_, o)| o.capacity())
            .sum();
        assert!(counts.memory_objects > 100, "{counts:?}");
        assert!(counts.memory_bytes <= budget, "{counts:?}");
        // Accounted at least what is held, and not far above it.
        assert!(held <= counts.memory_bytes, "held {held}, {counts:?}");
        assert!(
            counts.memory_bytes <= held * 3 / 2,
            "held {held}, {counts:?}"
        );
        // One object: accounted before its fill at what it holds after.
        let o = filled("GET x", 2048);
        assert!(
            o.capacity() <= o.footprint(),
            "{} {}",
            o.capacity(),
            o.footprint()
        );
        assert!(o.capacity() >= 2048);
        assert!(o.footprint() < 2 * 2048, "{}", o.footprint());
    }

    #[test]
    fn a_large_memory_object_reserves_its_length() {
        // Segments of 256 KiB and a last one of just the rest.
        let len = SEGMENT * 3 + 1000;
        let o = filled("GET big", len);
        let cap = o.capacity();
        assert!(cap >= len as u64 && cap <= o.footprint(), "{cap}");
        assert!(cap < len as u64 + 4096, "{cap}");
    }

    /// Commits `len` bytes under `key` to `disk`, its files' times put at
    /// `committed` (the `.meta`) and `accessed` (the body) seconds ago.
    fn commit_at(disk: &Disk, key: &str, len: usize, committed: u64, accessed: u64) -> PathBuf {
        use sha2::Digest;
        use std::os::unix::fs::FileExt;
        let body = vec![1u8; len];
        let (tmp, f) = disk.temp_file(key).unwrap();
        f.write_all_at(&body, 0).unwrap();
        let mut h = crate::disk::BlockHasher::default();
        h.update(&body);
        let meta = Meta {
            key: key.into(),
            status: 200,
            reason: "OK".into(),
            headers: vec![],
            length: len as u64,
            fresh_until: 0,
            vary: vec![],
        };
        let sha: [u8; 32] = sha2::Sha256::digest(&body).into();
        let data = disk.commit(&tmp, &f, &meta, &sha, &h.finish()).unwrap();
        let ago = |s| std::time::SystemTime::now() - std::time::Duration::from_secs(s);
        let times = |at| std::fs::FileTimes::new().set_modified(at).set_accessed(at);
        let meta_file = crate::disk::tests_meta_path(disk, key);
        std::fs::File::options()
            .write(true)
            .open(meta_file)
            .unwrap()
            .set_times(times(ago(committed)))
            .unwrap();
        std::fs::File::options()
            .write(true)
            .open(&data)
            .unwrap()
            .set_times(
                std::fs::FileTimes::new()
                    .set_modified(ago(committed))
                    .set_accessed(ago(accessed)),
            )
            .unwrap();
        data
    }

    #[test]
    fn a_disk_tier_over_its_budget_at_load_evicts_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let big = Disk::open(dir.path(), 0, Some(1 << 30)).unwrap();
        // Committed an hour, 50 and 40 minutes ago; "a" read a minute ago
        // (its body's access time), so "b" is the least recently used.
        let a = commit_at(&big, "GET a", 1000, 3600, 60);
        let b = commit_at(&big, "GET b", 1000, 3000, 3000);
        let c = commit_at(&big, "GET c", 1000, 2400, 2400);
        let d = commit_at(&big, "GET d", 1000, 1200, 1200);
        // Restarted with room for two of them.
        let small = Disk::open(dir.path(), 0, Some(2500)).unwrap();
        let store = Store::new(1 << 20, Some(small));
        let counts = store.counts();
        assert_eq!((counts.disk_objects, counts.disk_bytes), (2, 2000));
        for (key, data, kept) in [
            ("GET a", a, true),
            ("GET b", b, false),
            ("GET c", c, false),
            ("GET d", d, true),
        ] {
            assert_eq!(data.exists(), kept, "{key}");
            assert_eq!(
                crate::disk::tests_meta_path(store.disk.as_ref().unwrap(), key).exists(),
                kept,
                "{key}"
            );
            assert_eq!(
                matches!(store.lookup(key, &[]), Lookup::Found(_)),
                kept,
                "{key}"
            );
        }
        // Within budget: a restart with the same budget evicts nothing.
        drop(store);
        let store = Store::new(
            1 << 20,
            Some(Disk::open(dir.path(), 0, Some(2500)).unwrap()),
        );
        assert_eq!(store.counts().disk_objects, 2);
    }
}
