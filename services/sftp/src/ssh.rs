//! The SSH side of one connection (russh's server handler): password
//! authentication against the offer, then `session` channels whose only
//! accepted request is the `sftp` subsystem. Everything else a client can
//! ask for (shell, exec, terminal, environment, agent and X11 forwarding,
//! other subsystems, TCP and Unix-socket forwarding in both directions) is
//! refused and logged.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use russh::keys::PrivateKey;
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session};
use russh::{Channel, ChannelId, ChannelMsg, ChannelOpenFailure, MethodKind, MethodSet};

use crate::offer::{Offer, Verdict};
use crate::sftp::SftpSession;

/// Session channels one connection may have open (OpenSSH's sftp uses one).
const MAX_CHANNELS: usize = 2;
/// Refused requests after which a channel is closed.
const MAX_REFUSED: u32 = 16;

/// The russh server configuration: the host key, password only, a one
/// second delay on every rejection and few tries per connection (so
/// guessing is slow), and an idle timeout.
pub fn config(host_key: PrivateKey) -> russh::server::Config {
    russh::server::Config {
        server_id: russh::SshId::Standard("SSH-2.0-gateway-sftp".into()),
        methods: MethodSet::from(&[MethodKind::Password][..]),
        auth_rejection_time: Duration::from_secs(1),
        // OpenSSH starts with a "none" request to learn the methods: it
        // tests no secret, so it need not wait.
        auth_rejection_time_initial: Some(Duration::ZERO),
        max_auth_attempts: 3,
        inactivity_timeout: Some(Duration::from_secs(600)),
        keys: vec![host_key],
        ..Default::default()
    }
}

/// Per-channel bookkeeping.
#[derive(Default)]
struct ChannelState {
    sftp: bool,
    refused: u32,
}

/// One connection.
pub struct Connection {
    state_dir: PathBuf,
    peer: String,
    /// The offer the connection signed in with.
    offer: Option<Offer>,
    /// Set on sign-in; the server's grace timer reads it.
    authenticated: Arc<AtomicBool>,
    channels: HashMap<ChannelId, ChannelState>,
}

impl Connection {
    pub fn new(state_dir: PathBuf, peer: String, authenticated: Arc<AtomicBool>) -> Self {
        Connection {
            state_dir,
            peer,
            offer: None,
            authenticated,
            channels: HashMap::new(),
        }
    }

    /// Answers a refused channel request; a channel that keeps asking is
    /// closed (each request is queued to the channel, so an endless stream
    /// of them is not kept). Returns whether the channel is still open.
    fn refuse(&mut self, channel: ChannelId, what: &str, session: &mut Session) -> bool {
        if !what.is_empty() {
            tracing::info!(peer = %self.peer, "refused {what}: only sftp is offered");
        }
        let _ = session.channel_failure(channel);
        let Some(state) = self.channels.get_mut(&channel) else {
            return false;
        };
        state.refused += 1;
        if state.refused >= MAX_REFUSED {
            self.close(channel, session);
            return false;
        }
        true
    }

    /// Refuses a request that would run something and closes the channel,
    /// so the client does not wait for output that never comes.
    fn refuse_and_close(&mut self, channel: ChannelId, what: &str, session: &mut Session) {
        if self.refuse(channel, what, session) {
            self.close(channel, session);
        }
    }

    fn close(&mut self, channel: ChannelId, session: &mut Session) {
        self.channels.remove(&channel);
        let _ = session.close(channel);
    }

    fn password_again() -> Auth {
        Auth::Reject {
            proceed_with_methods: Some(MethodSet::from(&[MethodKind::Password][..])),
            partial_success: false,
        }
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Owns a session channel until its `sftp` subsystem starts, then hands it
/// to the SFTP server. Until then it drains what the client sends on it, so
/// russh's per-channel queue never fills and stalls the connection.
async fn serve_channel(mut channel: Channel<Msg>, sftp: SftpSession) {
    while let Some(msg) = channel.wait().await {
        // The handler answers the same request by the same rule (the first
        // `sftp` subsystem of the channel is accepted), so both sides agree.
        if let ChannelMsg::RequestSubsystem { name, .. } = msg {
            if name == "sftp" {
                russh_sftp::server::run(channel.into_stream(), sftp).await;
                return;
            }
        }
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(Self::password_again())
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        // Read afresh: PID 1 writes, replaces and deletes it at any time.
        let offer = match Offer::read(&self.state_dir) {
            Ok(Some(offer)) => offer,
            Ok(None) => {
                tracing::info!(peer = %self.peer, user = %crate::for_log(user), "sign-in refused: no report is offered");
                return Ok(Self::password_again());
            }
            Err(e) => {
                tracing::warn!(peer = %self.peer, user = %crate::for_log(user), "sign-in refused: {e}");
                return Ok(Self::password_again());
            }
        };
        match offer.verify(user, password, now_unix()) {
            Verdict::Accept => {
                tracing::info!(peer = %self.peer, user = %crate::for_log(user), "signed in");
                self.offer = Some(offer);
                self.authenticated.store(true, Ordering::Relaxed);
                Ok(Auth::Accept)
            }
            verdict => {
                let why = match verdict {
                    Verdict::WrongUser => "unknown user",
                    Verdict::Expired => "the offer has expired",
                    _ => "wrong password",
                };
                tracing::info!(peer = %self.peer, user = %crate::for_log(user), "sign-in refused: {why}");
                Ok(Self::password_again())
            }
        }
    }

    async fn auth_publickey_offered(
        &mut self,
        _user: &str,
        _offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(Self::password_again())
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        _user: &str,
        _submethods: &str,
        _response: Option<russh::server::Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        Ok(Self::password_again())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(offer) = self.offer.clone() else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        if self.channels.len() >= MAX_CHANNELS {
            tracing::info!(peer = %self.peer, "refused a session channel: too many");
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        self.channels.insert(channel.id(), ChannelState::default());
        reply.accept().await;
        let sftp = SftpSession::new(self.state_dir.clone(), offer, self.peer.clone());
        tokio::spawn(serve_channel(channel, sftp));
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match self.channels.get_mut(&channel) {
            Some(state) if name == "sftp" && !state.sftp => {
                state.sftp = true;
                tracing::info!(peer = %self.peer, "sftp session started");
                session.channel_success(channel)?;
            }
            _ => {
                let what = format!("the subsystem \"{}\"", crate::for_log(name));
                self.refuse_and_close(channel, &what, session);
            }
        }
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse_and_close(channel, "a shell", session);
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // The command is not logged: it is the client's text, of any size.
        self.refuse_and_close(channel, "a command", session);
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse(channel, "a terminal", session);
        Ok(())
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse(channel, "X11 forwarding", session);
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _variable_name: &str,
        _variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Debian's ssh sends LANG and LC_* before every sftp session: not
        // worth a log line each (the empty `what`), but still refused.
        self.refuse(channel, "", session);
        Ok(())
    }

    async fn agent_request(
        &mut self,
        _channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        // russh answers the failure itself when this returns false.
        tracing::info!(peer = %self.peer, "refused agent forwarding: only sftp is offered");
        Ok(false)
    }

    async fn channel_open_x11(
        &mut self,
        _channel: Channel<Msg>,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        prohibit(&self.peer, reply, "an x11 channel").await;
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        _channel: Channel<Msg>,
        _host_to_connect: &str,
        _port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        prohibit(&self.peer, reply, "port forwarding (direct-tcpip)").await;
        Ok(())
    }

    async fn channel_open_forwarded_tcpip(
        &mut self,
        _channel: Channel<Msg>,
        _host_to_connect: &str,
        _port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        prohibit(&self.peer, reply, "port forwarding (forwarded-tcpip)").await;
        Ok(())
    }

    async fn channel_open_direct_streamlocal(
        &mut self,
        _channel: Channel<Msg>,
        _socket_path: &str,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        prohibit(&self.peer, reply, "socket forwarding (direct-streamlocal)").await;
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        _address: &str,
        _port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        tracing::info!(peer = %self.peer, "refused remote port forwarding (tcpip-forward)");
        Ok(false)
    }

    async fn streamlocal_forward(
        &mut self,
        _socket_path: &str,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        tracing::info!(peer = %self.peer, "refused remote socket forwarding (streamlocal-forward)");
        Ok(false)
    }
}

/// Refuses a channel the client asked to open (only `session` channels
/// carrying sftp are served), with a log line naming it.
async fn prohibit(peer: &impl std::fmt::Display, reply: ChannelOpenHandle, what: &str) {
    tracing::info!(%peer, "refused {what}");
    reply
        .reject(ChannelOpenFailure::AdministrativelyProhibited)
        .await;
}
