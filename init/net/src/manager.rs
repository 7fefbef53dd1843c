//! The manager: one task that owns the interface and carries out the modes.
//!
//! Everything that changes the interface (an `apply`, a DHCP event, the
//! carrier coming and going) goes through this one task, one at a time, so
//! a DHCP event can never land between the steps of a mode switch: the old
//! lease's address and route are gone before the static ones go on.
//!
//! Compute, then apply, then verify: each mode is a target state (address,
//! default gateway); the task applies it through rtnetlink and reads it
//! back, and the status shows what the kernel has, not what was asked.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;
use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::route::RouteProtocol;
use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Duration, Instant};

use crate::config::{validate_static, Mode, NetConfig, StaticError};
use crate::dhcp::{DhcpClient, DhcpEvent, DhcpOptions, Lease};
use crate::link::{self, Link, LinkError, LinkState};
use crate::packet::{PacketError, PacketSocket};
use crate::status::{format_mac, Ipv4Net, LeaseStatus, NetStatus};

/// Why an `apply` failed (the status's `last_error` says it too).
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("invalid static configuration: {0}")]
    InvalidStatic(#[from] StaticError),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("starting the DHCP client: {0}")]
    Packet(#[from] PacketError),
    #[error("binding the DHCP client port 68 on {name}: {errno}")]
    ClientPort {
        name: String,
        errno: nix::errno::Errno,
    },
    #[error("registering the DHCP socket of {name} with the runtime: {source}")]
    Reactor {
        name: String,
        source: std::io::Error,
    },
    #[error("interface {name} has no Ethernet MAC address")]
    NoMac { name: String },
    #[error("verifying {name}: {what}")]
    Verify { name: String, what: String },
    #[error("the network manager task has stopped")]
    Stopped,
}

/// Tunables; the defaults are for production.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManagerOptions {
    pub dhcp: DhcpOptions,
    /// How often the link state is re-read in case a netlink notification
    /// was lost.
    pub link_recheck: Duration,
}

impl Default for ManagerOptions {
    fn default() -> Self {
        ManagerOptions {
            dhcp: DhcpOptions::default(),
            link_recheck: Duration::from_secs(5),
        }
    }
}

enum Command {
    Apply(NetConfig, oneshot::Sender<Result<(), NetError>>),
    Stop(oneshot::Sender<()>),
}

/// Owns one interface (eth0 on the appliance). Dropping it stops the task,
/// leaving the interface as it is.
pub struct NetManager {
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<NetStatus>,
    task: JoinHandle<()>,
}

impl NetManager {
    /// Take charge of `ifname`. Reads its state but changes nothing until
    /// the first `apply`. Must run inside a tokio runtime.
    pub async fn new(ifname: &str) -> Result<NetManager, NetError> {
        Self::with_options(ifname, ManagerOptions::default()).await
    }

    pub async fn with_options(
        ifname: &str,
        options: ManagerOptions,
    ) -> Result<NetManager, NetError> {
        let handle = link::connect()?;
        let events = link::link_events()?;
        let link = Link::open(handle, ifname).await?;
        let state = link.state().await?;
        let mac = state.mac.ok_or_else(|| NetError::NoMac {
            name: ifname.to_string(),
        })?;
        let mut status = NetStatus::new(ifname);
        status.mac = Some(format_mac(mac));
        status.carrier = state.carrier;
        status.oper_state = state.oper_state.clone();
        let (status_tx, status_rx) = watch::channel(status);
        let (commands, commands_rx) = mpsc::channel(4);
        let actor = Actor {
            link,
            options,
            mac,
            mode: None,
            carrier: state.carrier,
            admin_up: state.admin_up,
            dhcp: None,
            epoch: Instant::now(),
            status: status_tx,
            lease_renewals: 0,
            exchange_started: None,
        };
        let task = tokio::spawn(actor.run(commands_rx, events));
        Ok(NetManager {
            commands,
            status: status_rx,
            task,
        })
    }

    /// Put the interface in `config`'s mode; returns once it is applied and
    /// verified (for DHCP: once the client has started; the lease follows
    /// in the status).
    pub async fn apply(&mut self, config: NetConfig) -> Result<(), NetError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Apply(config, tx))
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)?
    }

    /// The status, updated at every change; `changed()` on it wakes the
    /// caller (e.g. to rewrite resolv.conf when DHCP brings new servers).
    pub fn status(&self) -> watch::Receiver<NetStatus> {
        self.status.clone()
    }

    /// Stop the task without touching the interface: the lease, if any,
    /// stays applied and is not released (as at a reboot).
    pub async fn stop(self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Stop(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let _ = self.task.await;
    }
}

/// A running DHCP client with its sockets.
struct DhcpSession {
    client: DhcpClient,
    wire: AsyncFd<PacketSocket>,
    /// A UDP socket on port 68, only so that the kernel does not answer the
    /// server's unicast replies (which it sees too, the address being on
    /// the interface) with ICMP port unreachable. What it receives is
    /// thrown away: the client reads the same datagrams from `wire`.
    port68: tokio::net::UdpSocket,
}

enum Event {
    Command(Option<Command>),
    Link(Option<LinkMessage>),
    Recheck,
    DhcpDue,
}

struct Actor {
    link: Link,
    options: ManagerOptions,
    mac: [u8; 6],
    mode: Option<Mode>,
    carrier: bool,
    admin_up: bool,
    dhcp: Option<DhcpSession>,
    /// Zero of the DHCP client's clock.
    epoch: Instant,
    status: watch::Sender<NetStatus>,
    lease_renewals: u32,
    /// When the current DHCP exchange began (DHCP applied, or carrier back).
    exchange_started: Option<Instant>,
}

impl Actor {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        link_events: UnboundedReceiver<LinkMessage>,
    ) {
        let mut link_events = Some(link_events);
        let mut recheck = tokio::time::interval(self.options.link_recheck);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let event = self
                .next_event(&mut commands, &mut link_events, &mut recheck)
                .await;
            match event {
                Event::Command(None) => return,
                Event::Command(Some(Command::Stop(done))) => {
                    let _ = done.send(());
                    return;
                }
                Event::Command(Some(Command::Apply(config, reply))) => {
                    let result = self.apply(config.mode).await;
                    self.note_result(&result);
                    let _ = reply.send(result);
                }
                Event::Link(None) => {
                    tracing::warn!("netlink link notifications ended; relying on re-reads");
                    link_events = None;
                }
                Event::Link(Some(message)) => {
                    if message.header.index == self.link.index {
                        self.on_link_state(link::link_state(&message)).await;
                    }
                }
                Event::Recheck => match self.link.state().await {
                    Ok(state) => self.on_link_state(state).await,
                    Err(e) => tracing::warn!(error = %e, "re-reading the link state"),
                },
                Event::DhcpDue => self.poll_dhcp().await,
            }
        }
    }

    async fn next_event(
        &mut self,
        commands: &mut mpsc::Receiver<Command>,
        link_events: &mut Option<UnboundedReceiver<LinkMessage>>,
        recheck: &mut tokio::time::Interval,
    ) -> Event {
        let deadline = self.dhcp_deadline();
        let session = self.dhcp.as_ref();
        let mut scratch = [0u8; 1600];
        tokio::select! {
            command = commands.recv() => Event::Command(command),
            message = async { link_events.as_mut().expect("guarded").next().await }, if link_events.is_some() => Event::Link(message),
            _ = recheck.tick() => Event::Recheck,
            guard = async { session.expect("guarded").wire.readable().await }, if session.is_some() => {
                // Cleared before the client drains the socket: a frame that
                // arrives meanwhile raises readiness again.
                if let Ok(mut guard) = guard {
                    guard.clear_ready();
                }
                Event::DhcpDue
            }
            _ = async {
                let port68 = &session.expect("guarded").port68;
                loop {
                    if port68.readable().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                    while port68.try_recv(&mut scratch).is_ok() {}
                }
            }, if session.is_some() => Event::DhcpDue,
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => Event::DhcpDue,
        }
    }

    fn now(&self) -> smoltcp::time::Instant {
        smoltcp::time::Instant::from_micros(self.epoch.elapsed().as_micros() as i64)
    }

    /// When the DHCP client next needs a poll; never sooner than a few
    /// milliseconds, so that a deadline in the past cannot spin the loop.
    fn dhcp_deadline(&mut self) -> Option<Instant> {
        let now = self.now();
        let session = self.dhcp.as_mut()?;
        let at = session.client.poll_at(now)?;
        let wait = if at > now {
            (at - now).into()
        } else {
            std::time::Duration::ZERO
        };
        Some(Instant::now() + wait.max(Duration::from_millis(5)))
    }

    async fn poll_dhcp(&mut self) {
        let now = self.now();
        let Some(session) = self.dhcp.as_mut() else {
            return;
        };
        let events = session.client.poll(now, session.wire.get_mut());
        for event in events {
            self.on_dhcp_event(event).await;
        }
        self.publish();
    }

    async fn on_dhcp_event(&mut self, event: DhcpEvent) {
        match event {
            DhcpEvent::Bound(lease) => {
                tracing::info!(
                    address = %lease.address, prefix = lease.prefix, router = ?lease.router,
                    dns = ?lease.dns, server = %lease.server_id, duration_s = lease.duration.secs(),
                    "DHCP lease bound"
                );
                self.lease_renewals = 0;
                let result = self.apply_lease(&lease).await;
                if result.is_ok() {
                    self.note_bound_time();
                }
                self.set_lease_status(&lease);
                self.note_result(&result);
            }
            DhcpEvent::Renewed(lease) => {
                tracing::info!(address = %lease.address, duration_s = lease.duration.secs(), "DHCP lease renewed");
                self.lease_renewals = self.lease_renewals.saturating_add(1);
                // Re-applied in case something removed it meanwhile; a no-op
                // when the kernel still has it.
                let result = self.apply_lease(&lease).await;
                // After a carrier return, the same lease confirmed ends the
                // exchange as a new one would.
                if result.is_ok() {
                    self.note_bound_time();
                }
                self.set_lease_status(&lease);
                self.note_result(&result);
            }
            DhcpEvent::Lost => {
                tracing::warn!("DHCP lease lost; removing the address");
                let result = self.clear_addresses().await;
                self.status.send_modify(|s| {
                    s.lease = None;
                    s.dhcp_dns.clear();
                    s.dhcp_domain = None;
                });
                self.exchange_started = Some(Instant::now());
                self.note_result(&result);
            }
        }
    }

    /// Time from the start of the exchange to the lease on the kernel.
    fn note_bound_time(&mut self) {
        if let Some(started) = self.exchange_started.take() {
            let ms = started.elapsed().as_millis() as u64;
            tracing::info!(ms, "DHCP lease applied");
            self.status.send_modify(|s| s.dhcp_bound_in_ms = Some(ms));
        }
    }

    async fn apply_lease(&mut self, lease: &Lease) -> Result<(), NetError> {
        self.ensure(
            Some((lease.address, lease.prefix)),
            lease.router,
            RouteProtocol::Dhcp,
        )
        .await
    }

    fn set_lease_status(&mut self, lease: &Lease) {
        let now_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let renewals = self.lease_renewals;
        self.status.send_modify(|s| {
            s.dhcp_dns = lease.dns.clone();
            s.dhcp_domain = lease.domain.clone();
            s.lease = Some(LeaseStatus {
                server: lease.server_id,
                obtained_at_unix: now_unix,
                expires_at_unix: now_unix + lease.duration.secs(),
                duration_secs: lease.duration.secs(),
                renewals,
            });
        });
    }

    async fn on_link_state(&mut self, state: LinkState) {
        let carrier_back = state.carrier && !self.carrier;
        let carrier_lost = !state.carrier && self.carrier;
        self.carrier = state.carrier;
        self.admin_up = state.admin_up;
        self.status.send_modify(|s| {
            s.carrier = state.carrier;
            s.oper_state = state.oper_state.clone();
        });
        if carrier_lost {
            // The lease or static address stays: a cable pulled for a moment
            // should not renumber the gateway. DHCP timers keep running; if
            // the lease expires meanwhile it is removed then.
            tracing::warn!(interface = %self.link.name, "carrier lost");
        }
        if !state.admin_up && self.mode.is_some() {
            // This manager owns the link; someone set it down.
            tracing::warn!(interface = %self.link.name, "link was set down; setting it up");
            let result = self.link.set_up().await.map_err(NetError::from);
            self.note_result(&result);
        }
        if carrier_back {
            tracing::info!(interface = %self.link.name, "carrier up");
            match self.mode.clone() {
                Some(Mode::Dhcp) => {
                    // The network may be another one now: ask again, keeping
                    // the old lease until answered (or expired).
                    if let Some(session) = self.dhcp.as_mut() {
                        session.client.restart();
                        self.exchange_started = Some(Instant::now());
                    }
                    self.poll_dhcp().await;
                }
                Some(Mode::Static {
                    address,
                    prefix,
                    gateway,
                }) => {
                    let result = self
                        .ensure(Some((address, prefix)), gateway, RouteProtocol::Static)
                        .await;
                    self.note_result(&result);
                }
                Some(Mode::Unconfigured) | None => {}
            }
        }
        self.publish();
    }

    async fn apply(&mut self, mode: Mode) -> Result<(), NetError> {
        if let Mode::Static {
            address,
            prefix,
            gateway,
        } = mode
        {
            validate_static(address, prefix, gateway)?;
        }
        if mode == Mode::Dhcp && self.mode == Some(Mode::Dhcp) && self.dhcp.is_some() {
            return Ok(()); // already running: keep the lease
        }
        if let (
            Some(Mode::Static { .. }),
            Mode::Static {
                address,
                prefix,
                gateway,
            },
        ) = (&self.mode, &mode)
        {
            // Static to static: change only what differs, no flush.
            self.mode = Some(mode.clone());
            self.status.send_modify(|s| s.mode = Some(mode.clone()));
            self.link.set_up().await?;
            let result = self
                .ensure(Some((*address, *prefix)), *gateway, RouteProtocol::Static)
                .await;
            self.publish();
            return result;
        }
        tracing::info!(interface = %self.link.name, ?mode, "applying network mode");
        self.stop_dhcp(true).await;
        self.mode = Some(mode.clone());
        self.status.send_modify(|s| s.mode = Some(mode.clone()));
        self.link.set_up().await?;
        // Whatever the previous mode left (a lease's address and route, a
        // static address) goes first; nothing lingers into the new mode.
        self.clear_addresses().await?;
        let result = match mode {
            Mode::Dhcp => self.start_dhcp().await,
            Mode::Static {
                address,
                prefix,
                gateway,
            } => {
                self.ensure(Some((address, prefix)), gateway, RouteProtocol::Static)
                    .await
            }
            Mode::Unconfigured => Ok(()),
        };
        self.publish();
        result
    }

    async fn start_dhcp(&mut self) -> Result<(), NetError> {
        let wire = PacketSocket::open(self.link.index)?;
        let mut wire = wire.into_async().map_err(|e| NetError::Reactor {
            name: self.link.name.clone(),
            source: e,
        })?;
        let port68 = open_port68(&self.link.name)?;
        let client = DhcpClient::new(
            self.mac,
            random_seed(),
            self.options.dhcp,
            wire.get_mut(),
            self.now(),
        );
        self.dhcp = Some(DhcpSession {
            client,
            wire,
            port68,
        });
        self.lease_renewals = 0;
        self.exchange_started = Some(Instant::now());
        self.poll_dhcp().await;
        Ok(())
    }

    /// Stop the DHCP client; with `release`, give the lease back first. The
    /// caller removes the address.
    async fn stop_dhcp(&mut self, release: bool) {
        let now = self.now();
        if let Some(mut session) = self.dhcp.take() {
            if release {
                if let Some(lease) = session.client.release(now, session.wire.get_mut()) {
                    tracing::info!(address = %lease.address, server = %lease.server_id, "DHCP lease released");
                }
            }
        }
        self.exchange_started = None;
        self.status.send_modify(|s| {
            s.lease = None;
            s.dhcp_dns.clear();
            s.dhcp_domain = None;
        });
    }

    /// Remove every IPv4 address and default route of the interface, and
    /// check that none is left.
    async fn clear_addresses(&mut self) -> Result<(), NetError> {
        self.link.delete_default_routes().await?;
        self.link.flush_ipv4().await?;
        self.status.send_modify(|s| {
            s.address = None;
            s.gateway = None;
        });
        self.verify(None, None).await
    }

    /// Make the kernel have exactly `address` and default route `gateway` on
    /// the interface, changing only what differs, then read it back.
    async fn ensure(
        &mut self,
        address: Option<(Ipv4Addr, u8)>,
        gateway: Option<Ipv4Addr>,
        protocol: RouteProtocol,
    ) -> Result<(), NetError> {
        let current = self.link.ipv4_addresses().await?;
        if current.iter().any(|a| Some(*a) != address) {
            // Something else is there: start from nothing (the routes that
            // went through the old address go with it).
            self.link.delete_default_routes().await?;
            self.link.flush_ipv4().await?;
        }
        if let Some((addr, prefix)) = address {
            if !current.contains(&(addr, prefix)) || current.len() != 1 {
                self.link.add_address(addr, prefix).await?;
            }
        }
        let routes = self.link.default_routes().await?;
        let gateways: Vec<_> = routes.iter().map(|r| r.gateway).collect();
        match gateway {
            Some(gw) if gateways != [Some(gw)] => {
                self.link.delete_default_routes().await?;
                self.link.replace_default_route(gw, protocol).await?;
            }
            None if !gateways.is_empty() => self.link.delete_default_routes().await?,
            _ => {}
        }
        self.verify(address, gateway).await
    }

    /// Read back addresses and default routes; they must be exactly these.
    async fn verify(
        &mut self,
        address: Option<(Ipv4Addr, u8)>,
        gateway: Option<Ipv4Addr>,
    ) -> Result<(), NetError> {
        let addresses = self.link.ipv4_addresses().await?;
        let gateways: Vec<_> = self
            .link
            .default_routes()
            .await?
            .into_iter()
            .map(|r| r.gateway)
            .collect();
        let want_addresses: Vec<_> = address.into_iter().collect();
        let want_gateways: Vec<_> = gateway.map(Some).into_iter().collect();
        self.status.send_modify(|s| {
            s.address = addresses.first().map(|(address, prefix)| Ipv4Net {
                address: *address,
                prefix: *prefix,
            });
            s.gateway = gateways.first().copied().flatten();
        });
        if addresses != want_addresses || gateways != want_gateways {
            return Err(NetError::Verify {
                name: self.link.name.clone(),
                what: format!(
                    "wanted addresses {want_addresses:?} and default routes via {want_gateways:?}, \
                     the kernel has {addresses:?} and {gateways:?}"
                ),
            });
        }
        Ok(())
    }

    fn note_result(&mut self, result: &Result<(), NetError>) {
        match result {
            Ok(()) => self.status.send_modify(|s| s.last_error = None),
            Err(e) => {
                tracing::warn!(interface = %self.link.name, error = %e, "network configuration failed");
                let message = e.to_string();
                self.status.send_modify(|s| s.last_error = Some(message));
            }
        }
        self.publish();
    }

    /// Recompute the one-line state.
    fn publish(&mut self) {
        let bound = self.dhcp.as_ref().and_then(|d| d.client.lease()).is_some();
        let carrier = self.carrier;
        let mode = self.mode.clone();
        self.status.send_if_modified(|s| {
            let base = match (&mode, bound) {
                (None, _) => "not configured yet",
                (Some(Mode::Dhcp), true) => "dhcp: bound",
                (Some(Mode::Dhcp), false) => "dhcp: discovering",
                (Some(Mode::Static { .. }), _) => "static",
                (Some(Mode::Unconfigured), _) => "unconfigured",
            };
            let state = if carrier {
                base.to_string()
            } else {
                format!("{base} (no carrier)")
            };
            if s.state != state {
                s.state = state;
                true
            } else {
                false
            }
        });
    }
}

/// The UDP socket on port 68 (see `DhcpSession::port68`), bound to the
/// interface so it takes nothing meant for another.
fn open_port68(ifname: &str) -> Result<tokio::net::UdpSocket, NetError> {
    let error = |errno| NetError::ClientPort {
        name: ifname.to_string(),
        errno,
    };
    let fd: OwnedFd = socket::socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(error)?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(error)?;
    socket::setsockopt(
        &fd,
        sockopt::BindToDevice,
        &std::ffi::OsString::from(ifname),
    )
    .map_err(error)?;
    socket::bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68)),
    )
    .map_err(error)?;
    tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(fd))
        .map_err(|e| error(nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0))))
}

/// A seed for transaction ids and jitter, from the standard library's
/// per-process random hash keys.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    hasher.finish()
}
