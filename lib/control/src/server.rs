//! The server side of the socket: binding with mode 0600, reading one
//! request per line, answering through the caller's [`Handler`]. A client
//! may send several requests on one connection; a malformed line gets an
//! error response and the connection stays usable.

use std::future::Future;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::protocol::{ApiError, Request, Response, MAX_REQUEST_LEN};

/// What PID 1 does with a request.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, request: Request) -> impl Future<Output = Response> + Send;
}

/// Binds the socket at `path` (replacing a stale one from an earlier run),
/// readable and writable by root only.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    let listener = bind_std(path)?;
    listener.set_nonblocking(true)?;
    UnixListener::from_std(listener)
}

/// [`bind`] without a runtime: for a socket handed to another process.
pub fn bind_std(path: &Path) -> io::Result<std::os::unix::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Lets the members of group `gid` use the socket as well (mode 0660): the
/// console runs unprivileged in such a group.
pub fn allow_group(path: &Path, gid: u32) -> io::Result<()> {
    std::os::unix::fs::chown(path, None, Some(gid))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
}

/// Accepts connections forever, each served on its own task.
pub async fn serve<H: Handler>(listener: UnixListener, handler: Arc<H>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let handler = handler.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, &*handler).await {
                        tracing::debug!("control connection: {e}");
                    }
                });
            }
            Err(e) => {
                // Out of file descriptors, most likely: wait rather than spin.
                tracing::warn!("control socket accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection<H: Handler>(stream: UnixStream, handler: &H) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut lines)
            .take(MAX_REQUEST_LEN as u64 + 1)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Ok(());
        }
        let response = if line.len() > MAX_REQUEST_LEN {
            // The rest of the line cannot be trusted to be a request.
            let r = Response::error(ApiError::new(format!(
                "request longer than {MAX_REQUEST_LEN} bytes"
            )));
            write_response(&mut write, &r).await?;
            return Ok(());
        } else {
            match serde_json::from_slice::<Request>(&line) {
                Ok(request) => handler.handle(request).await,
                Err(e) => Response::error(ApiError::new(format!("malformed request: {e}"))),
            }
        };
        write_response(&mut write, &response).await?;
    }
}

async fn write_response(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    r: &Response,
) -> io::Result<()> {
    let mut out = serde_json::to_vec(r).map_err(io::Error::other)?;
    out.push(b'\n');
    write.write_all(&out).await
}
