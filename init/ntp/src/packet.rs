//! The NTPv4 header on the wire (RFC 5905 §7.3): building a client request,
//! parsing a reply, and the checks a reply must pass before its timestamps are
//! believed. Bytes in, values out; no sockets and no clock.
//!
//! Two layers, as smoltcp does it: `NtpPacket` is any 48-byte header that
//! parses; `ServerReply` exists only for a reply that passed every check
//! (mode, version, origin echo, kiss-o'-death, leap, stratum, timestamps).

use thiserror::Error;

use crate::timestamp::{short_to_secs, NtpTimestamp};

/// Length of the NTP header; extension fields and MACs after it are ignored.
pub const PACKET_LEN: usize = 48;

pub const MODE_CLIENT: u8 = 3;
pub const MODE_SERVER: u8 = 4;
/// Leap indicator 3: the server's clock is not synchronised.
pub const LEAP_UNSYNCHRONISED: u8 = 3;
/// Stratum 16 and above means unsynchronised (RFC 5905 §7.3).
pub const MAX_STRATUM: u8 = 16;

/// Why a datagram is not an NTP header.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PacketError {
    #[error("NTP packet too short: {len} bytes, need {PACKET_LEN}")]
    TooShort { len: usize },
}

/// Why a well-formed header is not a usable answer to our request.
#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum ReplyError {
    #[error("reply has mode {mode}, expected {MODE_SERVER} (server)")]
    BadMode { mode: u8 },
    #[error("reply has NTP version {version}, expected 3 or 4")]
    BadVersion { version: u8 },
    /// The reply does not echo our request's transmit timestamp: a stale
    /// reply, a duplicate, or a spoofing attempt. Dropped, not trusted.
    #[error("reply origin timestamp does not match our request")]
    OriginMismatch,
    /// Stratum 0: a kiss-o'-death; the code says why (RATE, DENY, RSTR...).
    #[error("server sent kiss-o'-death {code}")]
    Kiss { code: String },
    #[error("server is not synchronised (leap {leap}, stratum {stratum})")]
    Unsynchronised { leap: u8, stratum: u8 },
    #[error("reply has a zero receive or transmit timestamp")]
    ZeroTimestamp,
}

impl ReplyError {
    /// Kiss codes after which RFC 5905 §7.4 says to stop using the server.
    pub fn is_access_denied(&self) -> bool {
        matches!(self, ReplyError::Kiss { code } if code == "DENY" || code == "RSTR")
    }

    /// The server asks us to poll less often.
    pub fn is_rate_kiss(&self) -> bool {
        matches!(self, ReplyError::Kiss { code } if code == "RATE")
    }
}

/// One NTP header, any mode, as it appears on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NtpPacket {
    pub leap: u8,
    pub version: u8,
    pub mode: u8,
    pub stratum: u8,
    pub poll: i8,
    pub precision: i8,
    /// 16.16 seconds.
    pub root_delay: u32,
    /// 16.16 seconds.
    pub root_dispersion: u32,
    pub reference_id: [u8; 4],
    pub reference_ts: NtpTimestamp,
    pub origin_ts: NtpTimestamp,
    pub receive_ts: NtpTimestamp,
    pub transmit_ts: NtpTimestamp,
}

/// A reply that passed every check, in the units the rest of the crate uses.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerReply {
    pub leap: u8,
    pub stratum: u8,
    /// Seconds, from the server to its primary reference.
    pub root_delay: f64,
    /// Seconds.
    pub root_dispersion: f64,
    /// Seconds (2^precision).
    pub precision: f64,
    pub reference_id: [u8; 4],
    /// T2: when the server received our request, by its clock.
    pub receive: NtpTimestamp,
    /// T3: when the server sent this reply, by its clock.
    pub transmit: NtpTimestamp,
}

impl NtpPacket {
    /// A client request (mode 3, version 4). `transmit` is echoed back by the
    /// server as the reply's origin; the caller chooses it at random so that
    /// only someone who saw the request can forge a matching reply, and keeps
    /// the real send time (T1) to itself (as ntpd-rs and chrony do).
    pub fn client_request(transmit: NtpTimestamp) -> Self {
        NtpPacket {
            leap: 0,
            version: 4,
            mode: MODE_CLIENT,
            stratum: 0,
            poll: 0,
            precision: 0,
            root_delay: 0,
            root_dispersion: 0,
            reference_id: [0; 4],
            reference_ts: NtpTimestamp::ZERO,
            origin_ts: NtpTimestamp::ZERO,
            receive_ts: NtpTimestamp::ZERO,
            transmit_ts: transmit,
        }
    }

    pub fn encode(&self) -> [u8; PACKET_LEN] {
        let mut b = [0u8; PACKET_LEN];
        b[0] = (self.leap & 0b11) << 6 | (self.version & 0b111) << 3 | (self.mode & 0b111);
        b[1] = self.stratum;
        b[2] = self.poll as u8;
        b[3] = self.precision as u8;
        b[4..8].copy_from_slice(&self.root_delay.to_be_bytes());
        b[8..12].copy_from_slice(&self.root_dispersion.to_be_bytes());
        b[12..16].copy_from_slice(&self.reference_id);
        b[16..24].copy_from_slice(&self.reference_ts.0.to_be_bytes());
        b[24..32].copy_from_slice(&self.origin_ts.0.to_be_bytes());
        b[32..40].copy_from_slice(&self.receive_ts.0.to_be_bytes());
        b[40..48].copy_from_slice(&self.transmit_ts.0.to_be_bytes());
        b
    }

    pub fn decode(buf: &[u8]) -> Result<Self, PacketError> {
        if buf.len() < PACKET_LEN {
            return Err(PacketError::TooShort { len: buf.len() });
        }
        let u32_at = |i: usize| u32::from_be_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
        let ts_at = |i: usize| NtpTimestamp(u64::from(u32_at(i)) << 32 | u64::from(u32_at(i + 4)));
        Ok(NtpPacket {
            leap: buf[0] >> 6,
            version: (buf[0] >> 3) & 0b111,
            mode: buf[0] & 0b111,
            stratum: buf[1],
            poll: buf[2] as i8,
            precision: buf[3] as i8,
            root_delay: u32_at(4),
            root_dispersion: u32_at(8),
            reference_id: [buf[12], buf[13], buf[14], buf[15]],
            reference_ts: ts_at(16),
            origin_ts: ts_at(24),
            receive_ts: ts_at(32),
            transmit_ts: ts_at(40),
        })
    }

    /// Checks this header as the reply to a request sent with transmit
    /// timestamp `sent`. The origin check comes before the kiss check so an
    /// off-path attacker cannot make us drop a server with a forged DENY.
    pub fn check_reply(&self, sent: NtpTimestamp) -> Result<ServerReply, ReplyError> {
        if self.mode != MODE_SERVER {
            return Err(ReplyError::BadMode { mode: self.mode });
        }
        if !(3..=4).contains(&self.version) {
            return Err(ReplyError::BadVersion {
                version: self.version,
            });
        }
        if self.origin_ts != sent {
            return Err(ReplyError::OriginMismatch);
        }
        if self.stratum == 0 {
            return Err(ReplyError::Kiss {
                code: kiss_code(self.reference_id),
            });
        }
        if self.leap == LEAP_UNSYNCHRONISED || self.stratum >= MAX_STRATUM {
            return Err(ReplyError::Unsynchronised {
                leap: self.leap,
                stratum: self.stratum,
            });
        }
        if self.transmit_ts.is_zero() || self.receive_ts.is_zero() {
            return Err(ReplyError::ZeroTimestamp);
        }
        Ok(ServerReply {
            leap: self.leap,
            stratum: self.stratum,
            root_delay: short_to_secs(self.root_delay),
            root_dispersion: short_to_secs(self.root_dispersion),
            precision: 2f64.powi(i32::from(self.precision)),
            reference_id: self.reference_id,
            receive: self.receive_ts,
            transmit: self.transmit_ts,
        })
    }
}

/// The four ASCII characters of a kiss code, with anything unprintable shown
/// as '?' so a hostile server cannot put control characters in our logs.
fn kiss_code(id: [u8; 4]) -> String {
    id.iter()
        .take_while(|&&c| c != 0)
        .map(|&c| {
            if c.is_ascii_graphic() {
                char::from(c)
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOKIE: NtpTimestamp = NtpTimestamp(0x1234_5678_9abc_def0);

    fn good_reply() -> NtpPacket {
        NtpPacket {
            leap: 0,
            version: 4,
            mode: MODE_SERVER,
            stratum: 2,
            poll: 6,
            precision: -20,
            root_delay: 0x0000_8000,
            root_dispersion: 0x0000_4000,
            reference_id: [127, 0, 0, 1],
            reference_ts: NtpTimestamp(0xe000_0000_0000_0000),
            origin_ts: COOKIE,
            receive_ts: NtpTimestamp(0xe000_0001_0000_0000),
            transmit_ts: NtpTimestamp(0xe000_0001_8000_0000),
        }
    }

    #[test]
    fn request_layout() {
        let b = NtpPacket::client_request(COOKIE).encode();
        assert_eq!(b[0], 0x23, "LI 0, VN 4, mode 3");
        assert!(b[1..40].iter().all(|&x| x == 0));
        assert_eq!(&b[40..48], &COOKIE.0.to_be_bytes());
    }

    #[test]
    fn encode_decode_round_trip() {
        let p = good_reply();
        let b = p.encode();
        assert_eq!(NtpPacket::decode(&b).unwrap(), p);
        assert_eq!(NtpPacket::decode(&b).unwrap().encode(), b);
    }

    #[test]
    fn decode_ignores_trailing_extension_bytes() {
        let mut v = good_reply().encode().to_vec();
        v.extend_from_slice(&[0xaa; 20]);
        assert_eq!(NtpPacket::decode(&v).unwrap(), good_reply());
    }

    #[test]
    fn short_and_empty_packets_are_refused() {
        assert_eq!(
            NtpPacket::decode(&[]),
            Err(PacketError::TooShort { len: 0 })
        );
        let b = good_reply().encode();
        assert_eq!(
            NtpPacket::decode(&b[..47]),
            Err(PacketError::TooShort { len: 47 })
        );
    }

    #[test]
    fn good_reply_converts_units() {
        let r = good_reply().check_reply(COOKIE).unwrap();
        assert_eq!(r.stratum, 2);
        assert_eq!(r.root_delay, 0.5);
        assert_eq!(r.root_dispersion, 0.25);
        assert_eq!(r.precision, 2f64.powi(-20));
        assert_eq!(r.transmit, NtpTimestamp(0xe000_0001_8000_0000));
    }

    #[test]
    fn wrong_mode_and_version_are_refused() {
        let mut p = good_reply();
        p.mode = MODE_CLIENT;
        assert_eq!(p.check_reply(COOKIE), Err(ReplyError::BadMode { mode: 3 }));
        let mut p = good_reply();
        p.version = 2;
        assert_eq!(
            p.check_reply(COOKIE),
            Err(ReplyError::BadVersion { version: 2 })
        );
        let mut p = good_reply();
        p.version = 3;
        assert!(p.check_reply(COOKIE).is_ok(), "NTPv3 servers are fine");
    }

    #[test]
    fn origin_must_echo_our_transmit() {
        assert_eq!(
            good_reply().check_reply(NtpTimestamp(1)),
            Err(ReplyError::OriginMismatch)
        );
    }

    #[test]
    fn kiss_o_death_reports_its_code() {
        let mut p = good_reply();
        p.stratum = 0;
        p.reference_id = *b"RATE";
        let e = p.check_reply(COOKIE).unwrap_err();
        assert_eq!(
            e,
            ReplyError::Kiss {
                code: "RATE".into()
            }
        );
        assert!(e.is_rate_kiss() && !e.is_access_denied());
        p.reference_id = *b"DENY";
        assert!(p.check_reply(COOKIE).unwrap_err().is_access_denied());
        p.reference_id = [b'X', 0x07, 0, 0];
        assert_eq!(
            p.check_reply(COOKIE),
            Err(ReplyError::Kiss { code: "X?".into() })
        );
    }

    #[test]
    fn forged_kiss_with_wrong_origin_is_only_a_mismatch() {
        let mut p = good_reply();
        p.stratum = 0;
        p.reference_id = *b"DENY";
        assert_eq!(
            p.check_reply(NtpTimestamp(7)),
            Err(ReplyError::OriginMismatch)
        );
    }

    #[test]
    fn unsynchronised_servers_are_refused() {
        let mut p = good_reply();
        p.leap = LEAP_UNSYNCHRONISED;
        assert!(matches!(
            p.check_reply(COOKIE),
            Err(ReplyError::Unsynchronised { leap: 3, .. })
        ));
        let mut p = good_reply();
        p.stratum = 16;
        assert!(matches!(
            p.check_reply(COOKIE),
            Err(ReplyError::Unsynchronised { stratum: 16, .. })
        ));
    }

    #[test]
    fn zero_timestamps_are_refused() {
        let mut p = good_reply();
        p.transmit_ts = NtpTimestamp::ZERO;
        assert_eq!(p.check_reply(COOKIE), Err(ReplyError::ZeroTimestamp));
        let mut p = good_reply();
        p.receive_ts = NtpTimestamp::ZERO;
        assert_eq!(p.check_reply(COOKIE), Err(ReplyError::ZeroTimestamp));
    }
}
