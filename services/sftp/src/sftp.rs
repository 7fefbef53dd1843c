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
        tracing::info!(peer = %self.peer, op, path = %path.escape_debug(), "refused: {OUTSIDE}");
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
