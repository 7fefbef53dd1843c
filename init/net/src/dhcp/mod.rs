//! The DHCPv4 client core: smoltcp's DHCP socket, driven without I/O.
//!
//! [`DhcpClient`] owns a smoltcp `Interface` and its `dhcpv4::Socket`. The
//! caller owns the device (an AF_PACKET socket in the appliance, a queue in
//! the tests), the clock and the sleeping: it calls [`DhcpClient::poll`] with
//! the time whenever a frame arrives or [`DhcpClient::poll_at`] comes due,
//! and applies the [`DhcpEvent`]s it gets back to the kernel. Nothing in here
//! reads the clock, sleeps or touches the kernel's addresses.
//!
//! What smoltcp does: DISCOVER/OFFER/REQUEST/ACK, NAK handling, renewal
//! (unicast to the server at T1), rebinding (broadcast at T2), expiry, and
//! the REQUEST retransmissions (doubling every two tries). What this module
//! adds around it:
//! - DISCOVER retransmission with exponential backoff (RFC 2131 §4.1: 4 s
//!   doubling up to 64 s, randomised by ±1 s); smoltcp's own interval is fixed.
//! - the lease duration and the server's MAC, read from the ACK as it passes
//!   (smoltcp does not expose them);
//! - DHCPRELEASE, which smoltcp does not send;
//! - restart after the carrier comes back, keeping the old lease until a new
//!   one is bound or the old one expires (the spirit of INIT-REBOOT).

mod release;
mod tap;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::net::Ipv4Addr;

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::Device;
use smoltcp::socket::dhcpv4;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    DhcpMessageType, DhcpPacket, DhcpRepr, EthernetAddress, HardwareAddress, IpCidr, Ipv4Cidr,
};

use tap::{Seen, Tap, TapLog};

/// Lease duration assumed when an ACK carries none (smoltcp's own default).
const DEFAULT_LEASE: Duration = Duration::from_secs(120);
/// First DISCOVER retransmission delay (RFC 2131 §4.1).
const DISCOVER_FIRST: Duration = Duration::from_secs(4);
/// Upper bound of the DISCOVER retransmission delay (RFC 2131 §4.1).
const DISCOVER_MAX: Duration = Duration::from_secs(64);
/// Options asked of the server: subnet mask, router, DNS servers, domain name.
const PARAMETER_REQUEST_LIST: &[u8] = &[1, 3, 6, 15];
/// DHCP option 15, the domain name (used as the resolv.conf search domain).
const OPT_DOMAIN_NAME: u8 = 15;

/// An address lease, as granted by the last ACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    /// Domain name (option 15), if the server sent a well-formed one.
    pub domain: Option<String>,
    /// Server identifier (option 54).
    pub server_id: Ipv4Addr,
    /// Address the server's messages came from (renewals are unicast there).
    pub server_address: Ipv4Addr,
    /// Lease time granted by the server (option 51).
    pub duration: Duration,
    /// When the ACK was received.
    pub obtained_at: Instant,
}

impl Lease {
    pub fn expires_at(&self) -> Instant {
        self.obtained_at + self.duration
    }

    /// Same network parameters: nothing on the kernel side needs changing.
    pub fn same_parameters(&self, other: &Lease) -> bool {
        self.address == other.address
            && self.prefix == other.prefix
            && self.router == other.router
            && self.dns == other.dns
            && self.domain == other.domain
    }
}

/// What the caller has to apply to the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhcpEvent {
    /// A new lease, or one whose parameters changed: apply it.
    Bound(Lease),
    /// The same lease extended by the server (renewal or rebinding ACK).
    Renewed(Lease),
    /// The lease is gone (expired, refused by a NAK): remove the address.
    Lost,
}

/// Tunables; the defaults follow RFC 2131.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpOptions {
    /// Cap on the lease duration the server grants (None: as granted).
    /// Only for tests and debugging: it makes the client renew sooner than
    /// the server expects.
    pub max_lease: Option<Duration>,
}

#[allow(clippy::derivable_impls)] // spelled out: the defaults are a decision
impl Default for DhcpOptions {
    fn default() -> Self {
        DhcpOptions { max_lease: None }
    }
}

/// The DHCP client state machine over a smoltcp interface.
pub struct DhcpClient {
    iface: Interface,
    sockets: SocketSet<'static>,
    handle: SocketHandle,
    mac: EthernetAddress,
    options: DhcpOptions,
    /// The lease in force, as last reported to the caller.
    lease: Option<Lease>,
    /// After a restart: the previous lease, still applied on the kernel,
    /// kept until a new one is bound or it expires.
    held: Option<Lease>,
    /// MAC that the server's last message came from (for DHCPRELEASE).
    server_mac: Option<EthernetAddress>,
    /// DISCOVERs sent since the last bind, restart or NAK (backoff step).
    discovers: u32,
    /// xorshift state for the backoff jitter and transaction ids.
    rng: u64,
}

impl DhcpClient {
    /// A client for the interface with this MAC, starting discovery at the
    /// first poll. `seed` randomises transaction ids and retransmission
    /// jitter; give each client a fresh random one.
    pub fn new<D: Device + ?Sized>(
        mac: [u8; 6],
        seed: u64,
        options: DhcpOptions,
        device: &mut D,
        now: Instant,
    ) -> Self {
        let mac = EthernetAddress(mac);
        let mut config = Config::new(HardwareAddress::Ethernet(mac));
        config.random_seed = seed;
        let iface = Interface::new(config, device, now);

        let mut socket = dhcpv4::Socket::new();
        socket.set_parameter_request_list(PARAMETER_REQUEST_LIST);
        socket.set_max_lease_duration(options.max_lease);
        // With a receive buffer set, smoltcp reports every ACK, renewals
        // included, instead of only changed configurations; the client needs
        // them to move the lease expiry. The buffer is empty because the tap
        // already keeps the ACK: smoltcp copies only into a buffer large
        // enough, so an empty one is never written (and `&mut []` is 'static).
        socket.set_receive_packet_buffer(&mut []);
        let mut sockets = SocketSet::new(Vec::new());
        let handle = sockets.add(socket);

        let mut client = DhcpClient {
            iface,
            sockets,
            handle,
            mac,
            options,
            lease: None,
            held: None,
            server_mac: None,
            discovers: 0,
            // xorshift must not start at zero.
            rng: seed | 1,
        };
        client.set_discover_timeout();
        client
    }

    /// The lease in force (including one held across a restart).
    pub fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref().or(self.held.as_ref())
    }

    /// Process every frame the device has, send what is due, and report what
    /// changed. Never panics on what arrives: smoltcp drops malformed
    /// packets, and the tap only notes what parses.
    pub fn poll<D: Device + ?Sized>(&mut self, now: Instant, device: &mut D) -> Vec<DhcpEvent> {
        let log = RefCell::new(TapLog::default());
        let mut events = Vec::new();
        {
            let mut tap = Tap {
                inner: device,
                log: &log,
            };
            // One frame at a time, so that a Configured event can be matched
            // with the ACK that caused it (the tap keeps only the last one).
            loop {
                let result = self
                    .iface
                    .poll_ingress_single(now, &mut tap, &mut self.sockets);
                let seen = log.borrow_mut().received.take();
                if let Some(seen) = &seen {
                    self.note_server_message(seen);
                }
                self.take_socket_event(now, seen.as_ref(), &mut events);
                if result == smoltcp::iface::PollIngressSingleResult::None {
                    break;
                }
            }
            self.iface.poll_maintenance(now);
            while self.iface.poll_egress(now, &mut tap, &mut self.sockets)
                == smoltcp::iface::PollResult::SocketStateChanged
            {}
            self.take_socket_event(now, None, &mut events);
        }

        let sent = std::mem::take(&mut log.borrow_mut().sent);
        for message in sent {
            if message == DhcpMessageType::Discover {
                self.discovers = self.discovers.saturating_add(1);
                self.set_discover_timeout();
            }
        }

        if let Some(held) = &self.held {
            if now >= held.expires_at() {
                tracing::debug!(address = %held.address, "DHCP held lease expired during restart");
                self.held = None;
                events.push(DhcpEvent::Lost);
            }
        }
        events
    }

    /// When `poll` must be called next if no frame arrives first.
    pub fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        let socket_at = self.iface.poll_at(now, &self.sockets);
        let held_at = self.held.as_ref().map(Lease::expires_at);
        match (socket_at, held_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Start the exchange again now, e.g. because the carrier came back and
    /// the network may have changed. A lease in force stays applied (it is
    /// not reported lost) until a new one is bound or it expires.
    pub fn restart(&mut self) {
        if let Some(lease) = self.lease.take() {
            self.held = Some(lease);
        }
        self.iface.update_ip_addrs(|addrs| addrs.clear());
        self.iface.routes_mut().remove_default_ipv4_route();
        self.socket().reset();
        // Throw away the Deconfigured event the reset raised: the held lease
        // stands until replaced or expired.
        let _ = self.socket().poll();
        self.discovers = 0;
        self.set_discover_timeout();
    }

    /// Give the lease back: send a DHCPRELEASE to the server (RFC 2131
    /// §4.4.6) and forget the lease. Returns the released lease. The caller
    /// removes the address from the kernel afterwards, and drops the client.
    pub fn release<D: Device + ?Sized>(&mut self, now: Instant, device: &mut D) -> Option<Lease> {
        let lease = self.lease.take().or_else(|| self.held.take())?;
        let xid = self.next_random() as u32;
        let server_mac = self.server_mac.unwrap_or(EthernetAddress::BROADCAST);
        match device.transmit(now) {
            Some(token) => {
                let frame = release::frame(self.mac, server_mac, &lease, xid);
                smoltcp::phy::TxToken::consume(token, frame.len(), |buf| {
                    buf.copy_from_slice(&frame)
                });
                tracing::debug!(address = %lease.address, server = %lease.server_id, "DHCP sent RELEASE");
            }
            None => tracing::debug!("DHCP RELEASE not sent: device has no transmit buffer"),
        }
        self.iface.update_ip_addrs(|addrs| addrs.clear());
        self.iface.routes_mut().remove_default_ipv4_route();
        self.socket().reset();
        let _ = self.socket().poll();
        Some(lease)
    }

    fn socket(&mut self) -> &mut dhcpv4::Socket<'static> {
        self.sockets.get_mut::<dhcpv4::Socket>(self.handle)
    }

    fn note_server_message(&mut self, seen: &Seen) {
        self.server_mac = Some(seen.server_mac);
        if seen.message_type == DhcpMessageType::Nak {
            // Discovery starts over right away; so does its backoff.
            self.discovers = 0;
            self.set_discover_timeout();
        }
    }

    /// Turn the socket's Configured/Deconfigured into a `DhcpEvent`. `seen`
    /// is the frame just processed, if any: the ACK behind a Configured.
    fn take_socket_event(
        &mut self,
        now: Instant,
        seen: Option<&Seen>,
        events: &mut Vec<DhcpEvent>,
    ) {
        let event = match self.socket().poll() {
            None => return,
            Some(dhcpv4::Event::Configured(config)) => Some((
                config.address,
                config.router,
                config.dns_servers.to_vec(),
                config.server,
            )),
            Some(dhcpv4::Event::Deconfigured) => None,
        };
        match event {
            Some((cidr, router, dns, server)) => {
                let (duration, domain) = seen
                    .filter(|s| s.message_type == DhcpMessageType::Ack)
                    .map(|s| ack_details(&s.payload))
                    .unwrap_or((None, None));
                let mut duration = duration.unwrap_or(DEFAULT_LEASE);
                if let Some(max) = self.options.max_lease {
                    duration = duration.min(max);
                }
                let lease = Lease {
                    address: cidr.address(),
                    prefix: cidr.prefix_len(),
                    router,
                    dns,
                    domain,
                    server_id: server.identifier,
                    server_address: server.address,
                    duration,
                    obtained_at: now,
                };
                self.set_iface_address(cidr, router);
                let previous = self.lease.take().or_else(|| self.held.take());
                self.discovers = 0;
                self.set_discover_timeout();
                let event = match previous {
                    Some(old) if old.same_parameters(&lease) => DhcpEvent::Renewed(lease.clone()),
                    _ => DhcpEvent::Bound(lease.clone()),
                };
                self.lease = Some(lease);
                events.push(event);
            }
            None => {
                self.iface.update_ip_addrs(|addrs| addrs.clear());
                self.iface.routes_mut().remove_default_ipv4_route();
                self.discovers = 0;
                self.set_discover_timeout();
                if self.lease.take().is_some() {
                    events.push(DhcpEvent::Lost);
                }
            }
        }
    }

    /// smoltcp sends renewals from the leased address and unicasts them to
    /// the server, so its interface needs the address (to source them and
    /// answer ARP) and the router (to reach a server behind a relay).
    fn set_iface_address(&mut self, cidr: Ipv4Cidr, router: Option<Ipv4Addr>) {
        self.iface.update_ip_addrs(|addrs| {
            addrs.clear();
            // One address into an empty list always fits.
            let _ = addrs.push(IpCidr::Ipv4(cidr));
        });
        match router {
            Some(router) => {
                // The routing table has room for one default route, the one
                // replaced here.
                let _ = self.iface.routes_mut().add_default_ipv4_route(router);
            }
            None => {
                self.iface.routes_mut().remove_default_ipv4_route();
            }
        }
    }

    /// Set the delay smoltcp will wait after the next DISCOVER it sends:
    /// 4 s doubling up to 64 s, ±1 s (RFC 2131 §4.1).
    fn set_discover_timeout(&mut self) {
        let base = DISCOVER_FIRST * (1u32 << self.discovers.min(4));
        let base = base.min(DISCOVER_MAX);
        let jitter = (self.next_random() % 2001) as i64 - 1000;
        let millis = (base.total_millis() as i64 + jitter).max(1000) as u64;
        let socket = self.socket();
        let mut retry = socket.get_retry_config();
        retry.discover_timeout = Duration::from_millis(millis);
        socket.set_retry_config(retry);
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64: enough for jitter and transaction ids.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

/// Lease time (option 51) and domain name (option 15) of an ACK payload.
fn ack_details(payload: &[u8]) -> (Option<Duration>, Option<String>) {
    let Ok(packet) = DhcpPacket::new_checked(payload) else {
        return (None, None);
    };
    let duration = DhcpRepr::parse(&packet)
        .ok()
        .and_then(|repr| repr.lease_duration)
        .map(|secs| Duration::from_secs(u64::from(secs)));
    let domain = packet
        .options()
        .find(|option| option.kind == OPT_DOMAIN_NAME)
        .and_then(|option| valid_domain(option.data));
    (duration, domain)
}

/// A domain name fit to write into resolv.conf: letters, digits, '-' and
/// '.', at most 253 characters. Anything else (a newline above all) is
/// refused rather than cleaned, since the server sent something broken.
fn valid_domain(data: &[u8]) -> Option<String> {
    // Some servers NUL-terminate the string.
    let data = data.strip_suffix(&[0]).unwrap_or(data);
    let text = std::str::from_utf8(data).ok()?;
    let text = text.strip_suffix('.').unwrap_or(text);
    let ok = !text.is_empty()
        && text.len() <= 253
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    ok.then(|| text.to_string())
}
