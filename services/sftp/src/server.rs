//! The listening loop: the host key, the TCP listener, a cap on concurrent
//! connections, a sign-in grace time, and SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Semaphore;

use crate::hostkey::{self, HostKeyError};
use crate::settings::Settings;
use crate::ssh::{self, Connection};

/// Connections served at once; more are closed on arrival. A download
/// needs one; the cap keeps a flood from using up memory and descriptors.
const MAX_CONNECTIONS: usize = 8;
/// Time from accepting a connection to a successful sign-in. Without it a
/// client that never signs in (but keeps sending something, which defeats
/// the idle timeout) would hold one of the few connection slots forever.
const SIGN_IN_GRACE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    HostKey(#[from] HostKeyError),
    #[error("listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("install the SIGTERM handler: {0}")]
    Signal(std::io::Error),
}

/// Serves until SIGTERM (or SIGINT), then returns `Ok` at once: open
/// sessions are simply cut, a download in progress is not complete and so
/// does not consume the offer.
pub async fn run(settings: Settings) -> Result<(), ServerError> {
    // Installed before anything slow, so a stop during start-up is not lost.
    let mut term = signal(SignalKind::terminate()).map_err(ServerError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServerError::Signal)?;
    let key = hostkey::load_or_generate(&settings.state_dir)?;
    let config = Arc::new(ssh::config(key));
    let listener =
        TcpListener::bind(settings.listen)
            .await
            .map_err(|source| ServerError::Listen {
                addr: settings.listen,
                source,
            })?;
    tracing::info!(listen = %settings.listen, "serving the diagnostics report over SFTP");
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                        tracing::warn!(%peer, "connection refused: {MAX_CONNECTIONS} already open");
                        continue;
                    };
                    let config = Arc::clone(&config);
                    let state_dir = settings.state_dir.clone();
                    tokio::spawn(async move {
                        serve(config, stream, peer, state_dir).await;
                        drop(slot);
                    });
                }
                Err(e) => {
                    // Out of descriptors, mostly: wait instead of spinning.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
        }
    }
    tracing::info!("stopping");
    Ok(())
}

async fn serve(
    config: Arc<russh::server::Config>,
    stream: TcpStream,
    peer: SocketAddr,
    state_dir: PathBuf,
) {
    tracing::info!(%peer, "connection");
    let _ = stream.set_nodelay(true);
    let authenticated = Arc::new(AtomicBool::new(false));
    let handler = Connection::new(state_dir, peer.to_string(), Arc::clone(&authenticated));
    // run_stream reads the client's version line before returning; a client
    // that never sends one must not keep the slot.
    let session = match tokio::time::timeout(
        SIGN_IN_GRACE,
        russh::server::run_stream(config, stream, handler),
    )
    .await
    {
        Ok(Ok(session)) => session,
        Ok(Err(e)) => {
            tracing::info!(%peer, "connection ended: {e}");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "connection ended: no SSH greeting");
            return;
        }
    };
    let handle = session.handle();
    let grace = async {
        tokio::time::sleep(SIGN_IN_GRACE).await;
        if !authenticated.load(Ordering::Relaxed) {
            tracing::info!(%peer, "connection ended: no sign-in within {SIGN_IN_GRACE:?}");
            let _ = handle
                .disconnect(
                    russh::Disconnect::ByApplication,
                    "sign-in took too long".into(),
                    "en".into(),
                )
                .await;
        }
        // Signed in (or told to go): wait for the session to end by itself.
        std::future::pending::<()>().await
    };
    tokio::select! {
        result = session => match result {
            Ok(()) => tracing::info!(%peer, "connection closed"),
            Err(e) => tracing::info!(%peer, "connection ended: {e}"),
        },
        _ = grace => {}
    }
}
