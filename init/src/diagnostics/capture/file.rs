//! The capture file: classic pcap (LINKTYPE_ETHERNET, microseconds) written
//! as an [`AtomicFile`] beside `path` and renamed over it only once complete
//! and on disk, so the previous capture stays in place until a new one
//! replaces it whole, and a crash leaves at most a stale temporary file
//! (removed by the next start).

use std::ffi::OsString;
use std::fs;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use gateway_fsutil::{AtomicFile, AtomicWriteError, WriteOptions};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, Endianness, PcapError, TsResolution};

use super::frame::SizeBound;
use super::CaptureError;

/// An open capture file that refuses to grow past its bound. Dropped
/// unfinished (an error, a panic), it leaves no file behind: the previous
/// capture stays the one in the diagnostics.
pub struct PcapFile {
    writer: Option<PcapWriter<BufWriter<AtomicFile>>>,
    bound: SizeBound,
    path: PathBuf,
}

/// `<path>.partial`: where captures before [`AtomicFile`] wrote; one that
/// a crash left is removed like a stale temporary file.
fn legacy_partial(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(".partial");
    PathBuf::from(name)
}

/// The files of a capture of `path` under way, or cut by a crash.
pub fn unfinished(path: &Path) -> Vec<PathBuf> {
    let mut found = gateway_fsutil::temp_files(path).unwrap_or_default();
    let legacy = legacy_partial(path);
    if legacy.exists() {
        found.push(legacy);
    }
    found
}

impl PcapFile {
    /// Creates the file that will replace `path` (mode 0600: a capture
    /// holds the appliance's traffic) and its parent directory, and writes
    /// the pcap header. One capture runs at a time: what a cut capture left
    /// is removed first.
    pub fn create(path: &Path, snaplen: u32, bound: SizeBound) -> Result<PcapFile, CaptureError> {
        let file_error = |op: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source: io::Error| CaptureError::File { op, path, source }
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            // The default mode: a missing /var/lib/gateway may be shared with
            // other services; only the capture itself is private.
            fs::create_dir_all(parent).map_err(file_error("create the directory", parent))?;
        }
        let legacy = legacy_partial(path);
        match fs::remove_file(&legacy) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(file_error("remove the stale", &legacy)(e));
            }
            _ => {}
        }
        gateway_fsutil::remove_temp_files(path).map_err(file_error("remove the stale", path))?;
        // O_EXCL: never an existing file, never through a symlink.
        let file = AtomicFile::create(path, &WriteOptions::private())
            .map_err(|e| atomic_error("create", e))?;
        let header = PcapHeader {
            snaplen,
            datalink: DataLink::ETHERNET,
            ts_resolution: TsResolution::MicroSecond,
            endianness: Endianness::native(),
            ..PcapHeader::default()
        };
        // The file exists from here: dropping it removes it if anything
        // fails before `finish`.
        let writer = PcapWriter::with_header(BufWriter::with_capacity(64 << 10, file), header)
            .map_err(|e| file_error("write", path)(pcap_io(e)))?;
        Ok(PcapFile {
            writer: Some(writer),
            bound,
            path: path.to_owned(),
        })
    }

    /// Appends one packet if its record fits the bound; `Ok(false)` when it
    /// does not (nothing is written then). `data` is already cut to the
    /// snapshot length; `orig_len` is the length on the wire.
    pub fn write(
        &mut self,
        timestamp: SystemTime,
        orig_len: usize,
        data: &[u8],
    ) -> Result<bool, CaptureError> {
        if !self.bound.try_add(data.len()) {
            return Ok(false);
        }
        let since_epoch = timestamp
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let orig_len = u32::try_from(orig_len).unwrap_or(u32::MAX);
        let packet = PcapPacket::new(since_epoch, orig_len, data);
        let Some(writer) = self.writer.as_mut() else {
            return Err(self.error("write", io::Error::other("the file is already closed")));
        };
        match writer.write_packet(&packet) {
            Ok(_) => Ok(true),
            Err(e) => Err(self.error("write", pcap_io(e))),
        }
    }

    /// The file's size so far.
    pub fn written(&self) -> u64 {
        self.bound.written()
    }

    /// Flushes and syncs the file, renames it over `path` and syncs the
    /// directory, so the new capture is whole on disk before it replaces the
    /// previous one, and the rename itself survives a power cut.
    pub fn finish(mut self) -> Result<PathBuf, CaptureError> {
        let Some(writer) = self.writer.take() else {
            return Err(self.error("write", io::Error::other("the file is already closed")));
        };
        let file = writer
            .into_writer()
            .into_inner()
            .map_err(|e| self.error("write", e.into_error()))?;
        match file.commit() {
            // Best effort: the capture is complete and in place either way.
            Ok(()) | Err(AtomicWriteError::SyncDir { .. }) => Ok(self.path.clone()),
            Err(e @ AtomicWriteError::Sync { .. }) => Err(atomic_error("sync", e)),
            Err(e) => Err(atomic_error("rename", e)),
        }
    }

    fn error(&self, op: &'static str, source: io::Error) -> CaptureError {
        CaptureError::File {
            op,
            path: self.path.clone(),
            source,
        }
    }
}

/// A step of the replacement that failed, as the capture's error.
fn atomic_error(op: &'static str, source: AtomicWriteError) -> CaptureError {
    CaptureError::Replace { op, source }
}

/// pcap-file's error as the I/O error it almost always is; the other variants
/// (a field out of range) cannot happen with data cut to the snaplen, but are
/// kept in words rather than unwrapped.
fn pcap_io(e: PcapError) -> io::Error {
    match e {
        PcapError::IoError(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_a_bounded_file_and_replaces_the_previous_one_only_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/upstream.pcap");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, b"previous").unwrap();
        // What cut captures left: one of an older appliance, one of ours.
        fs::write(legacy_partial(&path), b"stale").unwrap();
        let stale = path.with_file_name(".upstream.pcap.4242.0.tmp");
        fs::write(&stale, b"stale").unwrap();
        assert_eq!(unfinished(&path).len(), 2);

        let bound = SizeBound::new(24 + 16 + 60 + 16 + 10).unwrap();
        let mut f = PcapFile::create(&path, 60, bound).unwrap();
        assert!(!legacy_partial(&path).exists() && !stale.exists());
        assert_eq!(
            fs::read(&path).unwrap(),
            b"previous",
            "not replaced before the end"
        );
        let frame = [0xabu8; 100];
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        assert!(f.write(t, 100, &frame[..60]).unwrap());
        assert!(!f.write(t, 100, &frame[..11]).unwrap(), "over the bound");
        assert!(f.write(t, 10, &frame[..10]).unwrap());
        assert_eq!(f.written(), 24 + 16 + 60 + 16 + 10);
        assert_eq!(f.finish().unwrap(), path);

        assert!(unfinished(&path).is_empty());
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), 24 + 16 + 60 + 16 + 10);
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let mut reader = pcap_file::pcap::PcapReader::new(File::open(&path).unwrap()).unwrap();
        assert_eq!(reader.header().datalink, DataLink::ETHERNET);
        assert_eq!(reader.header().snaplen, 60);
        // Raw records: pcap-file 2.0's checked reader refuses a packet longer
        // than the snaplen (orig_len > snaplen), which is precisely a cut
        // packet, valid pcap that tcpdump and Wireshark read.
        let p = reader.next_raw_packet().unwrap().unwrap();
        assert_eq!((p.orig_len, p.incl_len, p.data.len()), (100, 60, 60));
        assert_eq!((p.ts_sec, p.ts_frac), (1_700_000_000, 123_456));
        let p = reader.next_raw_packet().unwrap().unwrap();
        assert_eq!((p.orig_len, p.data.len()), (10, 10));
        assert!(reader.next_raw_packet().is_none());
    }

    #[test]
    fn an_abandoned_capture_leaves_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upstream.pcap");
        fs::write(&path, b"previous").unwrap();
        let f = PcapFile::create(&path, 65535, SizeBound::new(1024).unwrap()).unwrap();
        assert_eq!(unfinished(&path).len(), 1);
        drop(f);
        assert!(unfinished(&path).is_empty());
        assert_eq!(fs::read(&path).unwrap(), b"previous");
    }
}
