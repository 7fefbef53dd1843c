//! The SFTP side of one signed-in session (russh_sftp's server handler): a
//! read-only root `/` that holds one file, the report of the offer the
//! session signed in with.
//!
//! Every path goes through [`view::classify`] before any filesystem call;
//! the report is opened with `O_NOFOLLOW` and must be a regular file. Every
//! request that would change something is refused with a message saying the
//! directory is read-only. Reads are recorded per handle ([`Coverage`]);
//! when a handle that returned the whole file closes (or the session ends
//! with it still open), the download is complete and the offer and the
//! report are deleted ([`finish_download`]).

use std::collections::HashMap;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::Arc;

use russh_sftp::protocol::{
    Attrs, Data, File, FileAttributes, Handle, Name, OpenFlags, Status, StatusCode, Version,
};
use russh_sftp::server::StatusReply;

use crate::coverage::Coverage;
use crate::offer::Offer;
use crate::view::{self, Target};

/// Bigger reads are answered short (clients ask again for the rest); this
/// bounds the memory one request can make the server allocate.
const MAX_READ: u32 = 64 * 1024;
/// Open handles per session: bounds the file descriptors one client holds.
const MAX_HANDLES: usize = 16;

const OUTSIDE: &str = "outside the report directory";
const READ_ONLY: &str = "read-only: the report directory cannot be changed";

enum OpenHandle {
    Dir {
        listed: bool,
    },
    File {
        file: Arc<std::fs::File>,
        size: u64,
        coverage: Coverage,
        /// A zero-byte report counts as downloaded only once it was read.
        read_once: bool,
    },
}

impl OpenHandle {
    fn downloaded(&self) -> Option<u64> {
        match self {
            OpenHandle::File {
                size,
                coverage,
                read_once,
                ..
            } if *read_once && coverage.covers(*size) => Some(*size),
            _ => None,
        }
    }
}

/// One SFTP subsystem of a signed-in session.
pub struct SftpSession {
    state_dir: PathBuf,
    /// The offer the session signed in with: its file is the one shown.
    offer: Offer,
    peer: String,
    handles: HashMap<String, OpenHandle>,
    next_handle: u64,
}

impl SftpSession {
    pub fn new(state_dir: PathBuf, offer: Offer, peer: String) -> Self {
        SftpSession {
            state_dir,
            offer,
            peer,
            handles: HashMap::new(),
            next_handle: 0,
        }
    }

    fn report_path(&self) -> PathBuf {
        self.state_dir.join("report").join(&self.offer.file)
    }

    fn target(&self, path: &str) -> Target {
        view::classify(path, Some(&self.offer.file))
    }

    fn refuse_outside(&self, op: &str, path: &str) -> StatusReply {
        tracing::info!(peer = %self.peer, op, path = %crate::for_log(path), "refused: {OUTSIDE}");
        StatusCode::PermissionDenied.with_message(OUTSIDE)
    }

    fn refuse_write(&self, op: &str) -> StatusReply {
        tracing::info!(peer = %self.peer, op, "refused: read-only");
        StatusCode::PermissionDenied.with_message(READ_ONLY)
    }

    fn new_handle(&mut self, handle: OpenHandle) -> Result<String, StatusReply> {
        if self.handles.len() >= MAX_HANDLES {
            return Err(StatusCode::Failure.with_message("too many open handles"));
        }
        self.next_handle += 1;
        let name = self.next_handle.to_string();
        self.handles.insert(name.clone(), handle);
        Ok(name)
    }

    /// The report's attributes, or `NoSuchFile` when it is gone or is not a
    /// regular file (a symlink is not followed).
    fn report_attrs(&self) -> Result<FileAttributes, StatusReply> {
        match std::fs::symlink_metadata(self.report_path()) {
            Ok(m) if m.file_type().is_file() => Ok(file_attrs(&m)),
            _ => Err(StatusCode::NoSuchFile.with_message("the report is not there")),
        }
    }

    /// Whether the offer the session signed in with is still the one on
    /// disk and still valid: a download completed by another session, or an
    /// expiry, ends this session's access to the file too.
    fn offer_still_open(&self) -> bool {
        matches!(Offer::read(&self.state_dir), Ok(Some(current))
            if current == self.offer && now_unix() < current.expires_unix)
    }
}

impl Drop for SftpSession {
    /// A client that read the whole file and dropped the connection without
    /// sending CLOSE has still downloaded it.
    fn drop(&mut self) {
        let sizes: Vec<u64> = self
            .handles
            .values()
            .filter_map(|h| h.downloaded())
            .collect();
        if let Some(size) = sizes.first() {
            finish_download(&self.state_dir, &self.offer, &self.peer, *size);
        }
    }
}

/// The download is complete: delete the offer first (so the password stops
/// working even if deleting the report fails), then the report. Only if the
/// offer on disk is still the one this session signed in with: if PID 1 has
/// replaced it meanwhile, its new files are not this session's to delete.
pub fn finish_download(state_dir: &std::path::Path, offer: &Offer, peer: &str, size: u64) {
    match Offer::read(state_dir) {
        Ok(Some(current)) if current == *offer => {}
        _ => {
            tracing::info!(
                peer,
                "diagnostics report downloaded by {peer}; the offer had already ended or changed, \
                 files left as they are"
            );
            return;
        }
    }
    if let Err(e) = std::fs::remove_file(state_dir.join("offer.json")) {
        tracing::warn!("delete offer.json after the download: {e}");
    }
    let report = state_dir.join("report").join(&offer.file);
    if let Err(e) = std::fs::remove_file(&report) {
        tracing::warn!("delete {} after the download: {e}", report.display());
    }
    tracing::info!(peer, size, "diagnostics report downloaded by {peer}");
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn file_attrs(m: &std::fs::Metadata) -> FileAttributes {
    FileAttributes {
        size: Some(m.len()),
        // Shown as a regular file readable by its owner only: what the
        // client may do with it, whatever the mode on disk.
        permissions: Some(0o100400),
        mtime: u32::try_from(m.mtime()).ok(),
        atime: u32::try_from(m.atime()).ok(),
        ..FileAttributes::default()
    }
}

fn dir_attrs() -> FileAttributes {
    FileAttributes {
        permissions: Some(0o040500),
        ..FileAttributes::default()
    }
}

fn ok(id: u32) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Ok".into(),
        language_tag: "en-US".into(),
    }
}

fn no_handle() -> StatusReply {
    StatusCode::Failure.with_message("no such handle")
}

impl russh_sftp::server::Handler for SftpSession {
    type Error = StatusReply;

    /// Every request this handler does not answer would change something.
    fn unimplemented(&self) -> Self::Error {
        StatusCode::OpUnsupported.with_message(READ_ONLY)
    }

    async fn init(
        &mut self,
        version: u32,
        _extensions: HashMap<String, String>,
    ) -> Result<Version, Self::Error> {
        tracing::debug!(peer = %self.peer, version, "sftp started");
        Ok(Version::new())
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        let name = match self.target(&path) {
            Target::Root => "/".to_owned(),
            Target::Report => format!("/{}", self.offer.file),
            Target::Outside => return Err(self.refuse_outside("realpath", &path)),
        };
        Ok(Name {
            id,
            files: vec![File::dummy(name)],
        })
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let attrs = match self.target(&path) {
            Target::Root => dir_attrs(),
            Target::Report => self.report_attrs()?,
            Target::Outside => return Err(self.refuse_outside("stat", &path)),
        };
        Ok(Attrs { id, attrs })
    }

    /// Nothing in the view is a symlink, so lstat is stat.
    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        self.stat(id, path).await
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        let attrs = match self.handles.get(&handle) {
            Some(OpenHandle::Dir { .. }) => dir_attrs(),
            Some(OpenHandle::File { file, .. }) => file
                .metadata()
                .map(|m| file_attrs(&m))
                .map_err(|e| StatusCode::Failure.with_message(e.to_string()))?,
            None => return Err(no_handle()),
        };
        Ok(Attrs { id, attrs })
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, Self::Error> {
        match self.target(&path) {
            Target::Root => {}
            Target::Report => return Err(StatusCode::Failure.with_message("not a directory")),
            Target::Outside => return Err(self.refuse_outside("opendir", &path)),
        }
        let handle = self.new_handle(OpenHandle::Dir { listed: false })?;
        Ok(Handle { id, handle })
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, Self::Error> {
        let report = self.report_attrs().ok();
        match self.handles.get_mut(&handle) {
            Some(OpenHandle::Dir { listed }) if !*listed => {
                *listed = true;
                match report {
                    Some(attrs) => Ok(Name {
                        id,
                        files: vec![File::new(self.offer.file.clone(), attrs)],
                    }),
                    None => Err(StatusCode::Eof.into()),
                }
            }
            Some(OpenHandle::Dir { .. }) => Err(StatusCode::Eof.into()),
            Some(OpenHandle::File { .. }) => {
                Err(StatusCode::Failure.with_message("not a directory handle"))
            }
            None => Err(no_handle()),
        }
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        _attrs: FileAttributes,
    ) -> Result<Handle, Self::Error> {
        if pflags.bits() & !OpenFlags::READ.bits() != 0 {
            return Err(self.refuse_write("open for writing"));
        }
        if self.target(&filename) != Target::Report {
            return Err(self.refuse_outside("open", &filename));
        }
        if !self.offer_still_open() {
            tracing::info!(peer = %self.peer, "refused open: the offer has ended");
            return Err(StatusCode::NoSuchFile.with_message("the report is no longer offered"));
        }
        // O_NOFOLLOW: a symlink put in place of the report is not followed;
        // O_NONBLOCK: a FIFO there cannot hang the open.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(self.report_path())
            .map_err(|_| StatusCode::NoSuchFile.with_message("the report is not there"))?;
        let meta = file
            .metadata()
            .map_err(|e| StatusCode::Failure.with_message(e.to_string()))?;
        if !meta.file_type().is_file() {
            return Err(StatusCode::NoSuchFile.with_message("the report is not a regular file"));
        }
        tracing::info!(peer = %self.peer, size = meta.len(), "report opened");
        let handle = self.new_handle(OpenHandle::File {
            file: Arc::new(file),
            size: meta.len(),
            coverage: Coverage::new(),
            read_once: false,
        })?;
        Ok(Handle { id, handle })
    }

    async fn read(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        len: u32,
    ) -> Result<Data, Self::Error> {
        let Some(OpenHandle::File {
            file,
            size,
            coverage,
            read_once,
        }) = self.handles.get_mut(&handle)
        else {
            return Err(no_handle());
        };
        *read_once = true;
        if offset >= *size {
            return Err(StatusCode::Eof.into());
        }
        // Never past the size seen at open: coverage is measured against it.
        let want = u64::from(len.min(MAX_READ)).min(*size - offset) as usize;
        let file = Arc::clone(file);
        let data = tokio::task::spawn_blocking(move || read_at(&file, offset, want))
            .await
            .map_err(|_| StatusCode::Failure.with_message("read failed"))?
            .map_err(|e| StatusCode::Failure.with_message(format!("read: {e}")))?;
        if data.is_empty() {
            return Err(StatusCode::Eof.into());
        }
        coverage.add(offset, data.len() as u64);
        Ok(Data { id, data })
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        let Some(closed) = self.handles.remove(&handle) else {
            return Err(no_handle());
        };
        if let Some(size) = closed.downloaded() {
            // Dropped first so the file is closed before it is deleted.
            drop(closed);
            let (dir, offer, peer) = (
                self.state_dir.clone(),
                self.offer.clone(),
                self.peer.clone(),
            );
            let _ = tokio::task::spawn_blocking(move || finish_download(&dir, &offer, &peer, size))
                .await;
        }
        Ok(ok(id))
    }

    async fn write(
        &mut self,
        _id: u32,
        _handle: String,
        _offset: u64,
        _data: Vec<u8>,
    ) -> Result<Status, Self::Error> {
        Err(self.refuse_write("write"))
    }

    async fn remove(&mut self, _id: u32, _filename: String) -> Result<Status, Self::Error> {
        Err(self.refuse_write("remove"))
    }

    async fn rename(
        &mut self,
        _id: u32,
        _oldpath: String,
        _newpath: String,
    ) -> Result<Status, Self::Error> {
        Err(self.refuse_write("rename"))
    }

    async fn mkdir(
        &mut self,
        _id: u32,
        _path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        Err(self.refuse_write("mkdir"))
    }

    async fn rmdir(&mut self, _id: u32, _path: String) -> Result<Status, Self::Error> {
        Err(self.refuse_write("rmdir"))
    }

    async fn setstat(
        &mut self,
        _id: u32,
        _path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        Err(self.refuse_write("setstat"))
    }

    async fn fsetstat(
        &mut self,
        _id: u32,
        _handle: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        Err(self.refuse_write("fsetstat"))
    }

    async fn symlink(
        &mut self,
        _id: u32,
        _linkpath: String,
        _targetpath: String,
    ) -> Result<Status, Self::Error> {
        Err(self.refuse_write("symlink"))
    }
}

/// Up to `want` bytes at `offset`, short only at the end of the file.
fn read_at(file: &std::fs::File, offset: u64, want: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0; want];
    let mut filled = 0;
    while filled < want {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    //! The handler driven through russh_sftp's server over an in-memory
    //! stream, with hand-made SFTP packets (draft-ietf-secsh-filexfer-02).

    use super::*;
    use crate::offer::tests::offer_json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    const INIT: u8 = 1;
    const OPEN: u8 = 3;
    const CLOSE: u8 = 4;
    const READ: u8 = 5;
    const OPENDIR: u8 = 11;
    const READDIR: u8 = 12;
    const REALPATH: u8 = 16;
    const STATUS: u8 = 101;
    const HANDLE: u8 = 102;
    const DATA: u8 = 103;
    const NAME: u8 = 104;

    fn string(b: &mut Vec<u8>, s: &[u8]) {
        b.extend((s.len() as u32).to_be_bytes());
        b.extend(s);
    }

    fn request(kind: u8, id: u32) -> Vec<u8> {
        let mut b = vec![kind];
        b.extend(id.to_be_bytes());
        b
    }

    async fn send(s: &mut DuplexStream, body: &[u8]) {
        s.write_u32(body.len() as u32).await.unwrap();
        s.write_all(body).await.unwrap();
    }

    async fn recv(s: &mut DuplexStream) -> Vec<u8> {
        let read = async {
            let n = s.read_u32().await.unwrap();
            let mut b = vec![0; n as usize];
            s.read_exact(&mut b).await.unwrap();
            b
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), read)
            .await
            .expect("no reply")
    }

    fn status_of(reply: &[u8]) -> (u32, String) {
        assert_eq!(reply[0], STATUS, "{reply:?}");
        let code = u32::from_be_bytes(reply[5..9].try_into().unwrap());
        let len = u32::from_be_bytes(reply[9..13].try_into().unwrap()) as usize;
        (
            code,
            String::from_utf8_lossy(&reply[13..13 + len]).into_owned(),
        )
    }

    /// A state directory offering `report` with `content`, and a running
    /// SFTP server for it; the client's end of the stream.
    async fn start(content: &[u8]) -> (tempfile::TempDir, DuplexStream) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("report")).unwrap();
        std::fs::write(dir.path().join("report/report"), content).unwrap();
        std::fs::write(
            dir.path().join("offer.json"),
            offer_json("pw", u64::MAX, "report"),
        )
        .unwrap();
        let offer = Offer::read(dir.path()).unwrap().unwrap();
        let session = SftpSession::new(dir.path().to_owned(), offer, "test".into());
        let (mut client, server) = tokio::io::duplex(1 << 20);
        russh_sftp::server::run(server, session).await;
        let mut init = vec![INIT];
        init.extend(3u32.to_be_bytes());
        send(&mut client, &init).await;
        assert_eq!(recv(&mut client).await[0], 2);
        (dir, client)
    }

    async fn open(c: &mut DuplexStream, path: &[u8], flags: u32) -> Vec<u8> {
        let mut b = request(OPEN, 1);
        string(&mut b, path);
        b.extend(flags.to_be_bytes());
        b.extend(0u32.to_be_bytes());
        send(c, &b).await;
        recv(c).await
    }

    async fn read(c: &mut DuplexStream, handle: &[u8], offset: u64, len: u32) -> Vec<u8> {
        let mut b = request(READ, 2);
        string(&mut b, handle);
        b.extend(offset.to_be_bytes());
        b.extend(len.to_be_bytes());
        send(c, &b).await;
        recv(c).await
    }

    fn handle_of(reply: &[u8]) -> Vec<u8> {
        assert_eq!(reply[0], HANDLE, "{reply:?}");
        reply[9..].to_vec()
    }

    #[tokio::test]
    async fn reading_every_byte_then_closing_is_the_download() {
        let content: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
        let (dir, mut c) = start(&content).await;
        let handle = handle_of(&open(&mut c, b"/report", 1).await);
        // Backwards, with a big request answered short (64 KiB at most).
        let mut got = vec![0; content.len()];
        let mut offset = content.len() as u64;
        while offset > 0 {
            let start = offset.saturating_sub(50_000);
            let reply = read(&mut c, &handle, start, 1 << 24).await;
            assert_eq!(reply[0], DATA);
            let data = &reply[9..];
            assert!(data.len() <= MAX_READ as usize);
            got[start as usize..start as usize + data.len()].copy_from_slice(data);
            assert!(dir.path().join("offer.json").exists());
            offset = start;
        }
        assert!(got == content);
        assert_eq!(status_of(&read(&mut c, &handle, 150_000, 10).await).0, 1);
        let mut close = request(CLOSE, 3);
        string(&mut close, &handle);
        send(&mut c, &close).await;
        assert_eq!(status_of(&recv(&mut c).await).0, 0);
        assert!(!dir.path().join("offer.json").exists());
        assert!(!dir.path().join("report/report").exists());
        // The offer has gone: the file cannot be opened again.
        assert_ne!(open(&mut c, b"/report", 1).await[0], HANDLE);
    }

    #[tokio::test]
    async fn closing_after_part_of_the_file_keeps_the_offer() {
        let (dir, mut c) = start(&[5; 1000]).await;
        let handle = handle_of(&open(&mut c, b"report", 1).await);
        assert_eq!(read(&mut c, &handle, 1, 999).await[0], DATA);
        let mut close = request(CLOSE, 3);
        string(&mut close, &handle);
        send(&mut c, &close).await;
        assert_eq!(status_of(&recv(&mut c).await).0, 0);
        assert!(dir.path().join("offer.json").exists());
        assert!(dir.path().join("report/report").exists());
    }

    #[tokio::test]
    async fn refusals_carry_their_reason() {
        let (_dir, mut c) = start(b"x").await;
        for path in [
            &b"/.."[..],
            b"../offer.json",
            b"/offer.json",
            b"/report/../..",
        ] {
            let mut b = request(REALPATH, 7);
            string(&mut b, path);
            send(&mut c, &b).await;
            assert_eq!(
                status_of(&recv(&mut c).await),
                (3, OUTSIDE.to_owned()),
                "{path:?}"
            );
            assert_eq!(
                status_of(&open(&mut c, path, 1).await),
                (3, OUTSIDE.to_owned())
            );
        }
        for flags in [2, 1 | 2, 1 | 4, 1 | 8, 1 | 0x10, 0x20, 0x40] {
            let (code, message) = status_of(&open(&mut c, b"/report", flags).await);
            assert_eq!(code, 3);
            assert!(message.starts_with("read-only"), "{message}");
        }
        // The listing has the report, then ends.
        let mut b = request(OPENDIR, 8);
        string(&mut b, b"/");
        send(&mut c, &b).await;
        let dir_handle = handle_of(&recv(&mut c).await);
        let mut b = request(READDIR, 9);
        string(&mut b, &dir_handle);
        send(&mut c, &b).await;
        let reply = recv(&mut c).await;
        assert_eq!(reply[0], NAME);
        assert_eq!(u32::from_be_bytes(reply[5..9].try_into().unwrap()), 1);
        send(&mut c, &b).await;
        assert_eq!(status_of(&recv(&mut c).await).0, 1);
    }

    #[tokio::test]
    async fn garbage_gets_answers_and_the_server_goes_on() {
        let (dir, mut c) = start(b"report bytes").await;
        // xorshift: the same "random" packets every run.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..2000 {
            let len = (next() % 64) as usize + 1;
            let mut body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Mostly real request types, so the decoders get exercised.
            body[0] = match next() % 4 {
                0 => body[0],
                _ => [
                    3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 200,
                ][(next() % 19) as usize],
            };
            send(&mut c, &body).await;
            recv(&mut c).await;
        }
        let mut b = request(REALPATH, 11);
        string(&mut b, b".");
        send(&mut c, &b).await;
        assert_eq!(recv(&mut c).await[0], NAME);
        assert!(dir.path().join("report/report").exists());
        assert!(dir.path().join("offer.json").exists());
    }
}
