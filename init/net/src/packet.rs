//! The DHCP client's wire: an AF_PACKET socket on one interface, filtered in
//! the kernel to ARP and DHCP server-to-client traffic, as a smoltcp `Device`.
//!
//! smoltcp's own `RawSocket` takes every frame on the interface into user
//! space; on a gateway that is all the forwarded traffic. The classic BPF
//! program attached here lets through only ARP (smoltcp must resolve the
//! server's MAC to unicast renewals) and unfragmented IPv4 UDP from port 67
//! to port 68, and never the frames this host sends itself.
//!
//! Frames that the sending host left with a partial checksum (a veth peer,
//! or any local sender with checksum offload) arrive with the UDP checksum
//! not yet filled in; the kernel says so in PACKET_AUXDATA, and the checksum
//! is completed here so that smoltcp's verification holds for every other
//! frame.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, send, socket, AddressFamily, ControlMessageOwned, LinkAddr, MsgFlags, SockFlag,
    SockType,
};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Packet, UdpPacket,
};

/// Largest frame handled: Ethernet header plus a 1500-byte MTU.
const MAX_FRAME: usize = 1514;

/// Why the packet socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    #[error("creating the AF_PACKET socket: {0}")]
    Socket(Errno),
    #[error("attaching the ARP/DHCP filter to the AF_PACKET socket: {0}")]
    AttachFilter(Errno),
    #[error("enabling PACKET_AUXDATA on the AF_PACKET socket: {0}")]
    AuxData(Errno),
    #[error("binding the AF_PACKET socket to interface index {ifindex}: {errno}")]
    Bind { ifindex: u32, errno: Errno },
}

/// An AF_PACKET socket bound to one interface, seeing only ARP and DHCP.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// Open the socket on the interface with this index. Non-blocking.
    pub fn open(ifindex: u32) -> Result<Self, PacketError> {
        // Protocol 0 receives nothing until bound, so no unfiltered frame can
        // be queued before the filter is in place.
        let fd = socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(PacketError::Socket)?;
        let program = filter();
        let fprog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_ptr().cast_mut(),
        };
        setsockopt(&fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
            .map_err(PacketError::AttachFilter)?;
        let on: libc::c_int = 1;
        setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_AUXDATA, &on)
            .map_err(PacketError::AuxData)?;

        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        addr.sll_ifindex = ifindex as i32;
        // SAFETY: `addr` is a valid sockaddr_ll and the length passed is its
        // size; the fd is an open socket owned by this function.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast::<libc::sockaddr>(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(PacketError::Bind {
                ifindex,
                errno: Errno::last(),
            });
        }
        Ok(PacketSocket { fd })
    }

    /// One frame if one is waiting; None when none is (or on an error,
    /// which a poll loop can do nothing about but try again later).
    fn recv_frame(&self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; MAX_FRAME];
        let mut cmsg = nix::cmsg_space!(libc::tpacket_auxdata);
        loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = match recvmsg::<LinkAddr>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(msg) => msg,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return None,
                Err(errno) => {
                    // ENETDOWN when the interface goes down: reported once,
                    // the socket works again when it comes back.
                    tracing::debug!(%errno, "AF_PACKET receive failed");
                    return None;
                }
            };
            let outgoing = msg
                .address
                .is_some_and(|a| a.pkttype() == libc::PACKET_OUTGOING);
            let csum_not_ready = msg.cmsgs().is_ok_and(|mut cmsgs| {
                cmsgs.any(|c| match c {
                    ControlMessageOwned::Unknown(u) => {
                        u.cmsg_header.cmsg_level == libc::SOL_PACKET
                            && u.cmsg_header.cmsg_type == libc::PACKET_AUXDATA
                            && auxdata_status(&u.data_bytes) & libc::TP_STATUS_CSUMNOTREADY != 0
                    }
                    _ => false,
                })
            });
            let len = msg.bytes;
            if outgoing || msg.flags.contains(MsgFlags::MSG_TRUNC) {
                continue;
            }
            buf.truncate(len);
            if csum_not_ready {
                complete_udp_checksum(&mut buf);
            }
            return Some(buf);
        }
    }

    fn send_frame(&self, frame: &[u8]) {
        if let Err(errno) = send(self.fd.as_raw_fd(), frame, MsgFlags::empty()) {
            // No carrier, interface down, queue full: the DHCP timers retry.
            tracing::debug!(%errno, "AF_PACKET send failed");
        }
    }
}

impl PacketSocket {
    /// Register with the tokio reactor, for readiness.
    pub fn into_async(self) -> std::io::Result<tokio::io::unix::AsyncFd<PacketSocket>> {
        // SAFETY: a PacketSocket owns its fd for its whole life and never
        // swaps it: `as_raw_fd` returns the same open descriptor until the
        // AsyncFd drops it, and no method (the Device ones included)
        // replaces it.
        unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(self, tokio::io::Interest::READABLE)
        }
        .map_err(std::io::Error::from)
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

pub struct FrameRx(Vec<u8>);
pub struct FrameTx<'a>(&'a PacketSocket);

impl RxToken for FrameRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl TxToken for FrameTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let result = f(&mut buf);
        self.0.send_frame(&buf);
        result
    }
}

impl Device for PacketSocket {
    type RxToken<'a> = FrameRx;
    type TxToken<'a> = FrameTx<'a>;

    fn receive(&mut self, _: Instant) -> Option<(FrameRx, FrameTx<'_>)> {
        let frame = self.recv_frame()?;
        Some((FrameRx(frame), FrameTx(self)))
    }

    fn transmit(&mut self, _: Instant) -> Option<FrameTx<'_>> {
        Some(FrameTx(self))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME;
        caps
    }
}

fn setsockopt<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> Result<(), Errno> {
    // SAFETY: `value` points to a live, initialised T for the duration of
    // the call and the length passed is its size; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast::<libc::c_void>(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// `tp_status`, the first field of `struct tpacket_auxdata`.
fn auxdata_status(data: &[u8]) -> u32 {
    data.get(..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_ne_bytes)
        .unwrap_or(0)
}

/// Fill in the UDP checksum of an IPv4/UDP frame sent with checksum offload.
fn complete_udp_checksum(frame: &mut [u8]) {
    let Ok(mut eth) = EthernetFrame::new_checked(&mut frame[..]) else {
        return;
    };
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return;
    }
    let Ok(mut ip) = Ipv4Packet::new_checked(eth.payload_mut()) else {
        return;
    };
    if ip.next_header() != IpProtocol::Udp {
        return;
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let Ok(mut udp) = UdpPacket::new_checked(ip.payload_mut()) else {
        return;
    };
    udp.fill_checksum(&IpAddress::Ipv4(src), &IpAddress::Ipv4(dst));
}

// Classic BPF, as in <linux/filter.h>.
const BPF_LD: u16 = 0x00;
const BPF_LDX: u16 = 0x01;
const BPF_JMP: u16 = 0x05;
const BPF_RET: u16 = 0x06;
const BPF_H: u16 = 0x08;
const BPF_B: u16 = 0x10;
const BPF_ABS: u16 = 0x20;
const BPF_IND: u16 = 0x40;
const BPF_MSH: u16 = 0xa0;
const BPF_JEQ: u16 = 0x10;
const BPF_JSET: u16 = 0x40;
const BPF_K: u16 = 0x00;
/// Ancillary load of the packet type (`SKF_AD_OFF + SKF_AD_PKTTYPE`).
const PKTTYPE: u32 = (-0x1000i32 + 4) as u32;

const fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The filter: ARP, or IPv4 UDP 67 -> 68 that is not a fragment, and never
/// an outgoing frame. Jump offsets count instructions after the jump.
pub(crate) fn filter() -> [libc::sock_filter; 16] {
    const ACCEPT: u32 = 0x0004_0000;
    [
        /* 0 */ stmt(BPF_LD | BPF_B | BPF_ABS, PKTTYPE),
        /* 1 */
        jump(
            BPF_JMP | BPF_JEQ | BPF_K,
            libc::PACKET_OUTGOING as u32,
            13,
            0,
        ),
        /* 2 */ stmt(BPF_LD | BPF_H | BPF_ABS, 12), // ethertype
        /* 3 */ jump(BPF_JMP | BPF_JEQ | BPF_K, 0x0806, 10, 0), // ARP
        /* 4 */ jump(BPF_JMP | BPF_JEQ | BPF_K, 0x0800, 0, 10), // IPv4
        /* 5 */ stmt(BPF_LD | BPF_B | BPF_ABS, 23), // IP protocol
        /* 6 */ jump(BPF_JMP | BPF_JEQ | BPF_K, 17, 0, 8), // UDP
        /* 7 */ stmt(BPF_LD | BPF_H | BPF_ABS, 20), // flags, fragment offset
        /* 8 */ jump(BPF_JMP | BPF_JSET | BPF_K, 0x3fff, 6, 0), // MF or offset
        /* 9 */ stmt(BPF_LDX | BPF_B | BPF_MSH, 14), // X = IP header length
        /* 10 */ stmt(BPF_LD | BPF_H | BPF_IND, 14), // UDP source port
        /* 11 */ jump(BPF_JMP | BPF_JEQ | BPF_K, 67, 0, 3),
        /* 12 */ stmt(BPF_LD | BPF_H | BPF_IND, 16), // UDP destination port
        /* 13 */ jump(BPF_JMP | BPF_JEQ | BPF_K, 68, 0, 1),
        /* 14 */ stmt(BPF_RET | BPF_K, ACCEPT),
        /* 15 */ stmt(BPF_RET | BPF_K, 0),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Just enough of a classic BPF interpreter to run `filter()`.
    fn run(program: &[libc::sock_filter], frame: &[u8], pkttype: u8) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let byte = |at: usize| frame.get(at).copied();
        let half = |at: usize| Some(u16::from_be_bytes([byte(at)?, byte(at + 1)?]) as u32);
        loop {
            let ins = program[pc];
            pc += 1;
            let k = ins.k;
            match ins.code {
                c if c == BPF_LD | BPF_B | BPF_ABS && k == PKTTYPE => a = pkttype as u32,
                c if c == BPF_LD | BPF_B | BPF_ABS => match byte(k as usize) {
                    Some(v) => a = v as u32,
                    None => return 0,
                },
                c if c == BPF_LD | BPF_H | BPF_ABS => match half(k as usize) {
                    Some(v) => a = v,
                    None => return 0,
                },
                c if c == BPF_LD | BPF_H | BPF_IND => match half((x + k) as usize) {
                    Some(v) => a = v,
                    None => return 0,
                },
                c if c == BPF_LDX | BPF_B | BPF_MSH => match byte(k as usize) {
                    Some(v) => x = 4 * (v as u32 & 0xf),
                    None => return 0,
                },
                c if c == BPF_JMP | BPF_JEQ | BPF_K => {
                    pc += if a == k { ins.jt } else { ins.jf } as usize
                }
                c if c == BPF_JMP | BPF_JSET | BPF_K => {
                    pc += if a & k != 0 { ins.jt } else { ins.jf } as usize
                }
                c if c == BPF_RET | BPF_K => return k,
                c => panic!("opcode {c:#x} not interpreted"),
            }
        }
    }

    fn udp_frame(src_port: u16, dst_port: u16, ihl_words: u8, frag: u16) -> Vec<u8> {
        let ip_len = ihl_words as usize * 4;
        let mut f = vec![0u8; 14 + ip_len + 8 + 10];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x40 | ihl_words;
        f[14 + 6..14 + 8].copy_from_slice(&frag.to_be_bytes());
        f[14 + 9] = 17;
        f[14 + ip_len..14 + ip_len + 2].copy_from_slice(&src_port.to_be_bytes());
        f[14 + ip_len + 2..14 + ip_len + 4].copy_from_slice(&dst_port.to_be_bytes());
        f
    }

    #[test]
    fn filter_passes_arp_and_dhcp_to_the_client_only() {
        let p = filter();
        let host = libc::PACKET_HOST;
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_ne!(run(&p, &arp, host), 0, "ARP");
        assert_ne!(run(&p, &arp, libc::PACKET_BROADCAST), 0, "broadcast ARP");
        assert_ne!(run(&p, &udp_frame(67, 68, 5, 0), host), 0, "DHCP reply");
        assert_ne!(
            run(&p, &udp_frame(67, 68, 6, 0x4000), host),
            0,
            "IP options, DF"
        );
        assert_eq!(run(&p, &udp_frame(67, 68, 5, 0), libc::PACKET_OUTGOING), 0);
        assert_eq!(run(&p, &arp, libc::PACKET_OUTGOING), 0);
        assert_eq!(
            run(&p, &udp_frame(68, 67, 5, 0), host),
            0,
            "client to server"
        );
        assert_eq!(run(&p, &udp_frame(53, 68, 5, 0), host), 0);
        assert_eq!(run(&p, &udp_frame(67, 53, 5, 0), host), 0);
        assert_eq!(
            run(&p, &udp_frame(67, 68, 5, 0x2000), host),
            0,
            "first fragment"
        );
        assert_eq!(
            run(&p, &udp_frame(67, 68, 5, 0x0010), host),
            0,
            "later fragment"
        );
        let mut tcp = udp_frame(67, 68, 5, 0);
        tcp[14 + 9] = 6;
        assert_eq!(run(&p, &tcp, host), 0, "TCP");
        let mut v6 = udp_frame(67, 68, 5, 0);
        v6[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
        assert_eq!(run(&p, &v6, host), 0, "IPv6");
        assert_eq!(run(&p, &[0u8; 10], host), 0, "runt");
    }

    #[test]
    fn partial_checksums_are_completed() {
        use smoltcp::phy::ChecksumCapabilities;
        use smoltcp::wire::{Ipv4Repr, UdpRepr};
        let src = std::net::Ipv4Addr::new(10, 0, 0, 1);
        let dst = std::net::Ipv4Addr::new(10, 0, 0, 2);
        let mut frame = vec![0u8; 14 + 20 + 8 + 4];
        frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let caps = ChecksumCapabilities::default();
        let mut ip = Ipv4Packet::new_unchecked(&mut frame[14..]);
        Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Udp,
            payload_len: 12,
            hop_limit: 64,
        }
        .emit(&mut ip, &caps);
        let mut udp = UdpPacket::new_unchecked(ip.payload_mut());
        UdpRepr {
            src_port: 67,
            dst_port: 68,
        }
        .emit(
            &mut udp,
            &IpAddress::Ipv4(src),
            &IpAddress::Ipv4(dst),
            4,
            |p| p.copy_from_slice(b"dhcp"),
            &caps,
        );
        let good = frame.clone();
        // What a sender with offload leaves: some other checksum value.
        frame[14 + 20 + 6] ^= 0xff;
        complete_udp_checksum(&mut frame);
        assert_eq!(frame, good);
        // Not UDP, too short: left alone, no panic.
        complete_udp_checksum(&mut [0u8; 5]);
    }
}
