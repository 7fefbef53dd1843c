//! Pure decisions on captured frames: which frames the next-hop filter keeps,
//! how much of a frame goes into the file, and whether the next record still
//! fits the size bound. No I/O here, so the unit tests craft frames byte by
//! byte and check the arithmetic exactly.

/// The classic pcap file header (magic, versions, thiszone, sigfigs, snaplen,
/// linktype): 24 bytes, written once.
pub const PCAP_HEADER_LEN: u64 = 24;

/// The classic pcap record header (ts_sec, ts_usec, incl_len, orig_len):
/// 16 bytes before every packet's data.
pub const PCAP_RECORD_HEADER_LEN: u64 = 16;

const ETHERTYPE_ARP: u16 = 0x0806;
/// 802.1Q and 802.1ad tags: the kernel usually strips the outer tag (VLAN
/// offload), but a frame that still carries one has its real EtherType 4
/// bytes further.
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;

/// Whether the capture keeps `frame` (an Ethernet frame, possibly truncated).
///
/// With no peer every frame is kept. With the next hop's MAC, a frame is kept
/// when it comes from or goes to that MAC, and every ARP frame is kept too:
/// the broadcast "who has <gateway>?" and its answers are exactly what an
/// administrator looks at when the next hop does not respond. A frame too short
/// to hold an Ethernet header cannot be attributed, so it is dropped.
pub fn keep_frame(peer: Option<[u8; 6]>, frame: &[u8]) -> bool {
    let Some(peer) = peer else {
        return true;
    };
    let (Some(dst), Some(src)) = (frame.get(0..6), frame.get(6..12)) else {
        return false;
    };
    dst == peer || src == peer || is_arp(frame)
}

/// Whether the frame's EtherType (after at most one VLAN tag) is ARP.
fn is_arp(frame: &[u8]) -> bool {
    match ethertype_at(frame, 12) {
        Some(ETHERTYPE_VLAN | ETHERTYPE_QINQ) => ethertype_at(frame, 16) == Some(ETHERTYPE_ARP),
        Some(t) => t == ETHERTYPE_ARP,
        None => false,
    }
}

fn ethertype_at(frame: &[u8], offset: usize) -> Option<u16> {
    let b = frame.get(offset..offset + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// The field whose value [`redact`] hides, matched without regard to case.
const PROXY_AUTHORIZATION: &[u8] = b"proxy-authorization:";

/// What a capture hides in each frame before it is written.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Redactions {
    /// Byte strings overwritten wherever they appear (the upstream proxy's
    /// Basic token and password). Empty strings are ignored.
    pub secrets: Vec<Vec<u8>>,
}

/// The secrets themselves never reach a log.
impl std::fmt::Debug for Redactions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactions({} secrets)", self.secrets.len())
    }
}

/// Overwrites with `*`, in a frame about to be written, what must not leave
/// the appliance in a diagnostics report: the value of every
/// `Proxy-Authorization` field (to the end of its line, or of the frame),
/// whoever sent it, and every occurrence of `secrets` (so a field whose
/// name and value a segment boundary separates still loses its value).
/// The frame keeps its length, so every header's lengths stay true; its TCP
/// checksum no longer matches, which tcpdump reports and Wireshark ignores by
/// default.
pub fn redact(frame: &mut [u8], redactions: &Redactions) {
    let n = PROXY_AUTHORIZATION.len();
    let mut i = 0;
    while i + n <= frame.len() {
        if frame[i..i + n].eq_ignore_ascii_case(PROXY_AUTHORIZATION) {
            let mut j = i + n;
            while j < frame.len() && frame[j] != b'\r' && frame[j] != b'\n' {
                frame[j] = b'*';
                j += 1;
            }
            i = j;
        } else {
            i += 1;
        }
    }
    for secret in redactions.secrets.iter().filter(|s| !s.is_empty()) {
        let mut i = 0;
        while i + secret.len() <= frame.len() {
            if frame[i..i + secret.len()] == secret[..] {
                frame[i..i + secret.len()].fill(b'*');
                i += secret.len();
            } else {
                i += 1;
            }
        }
    }
}

/// The number of bytes of a packet of `orig_len` bytes that go into the file:
/// the packet cut to the snapshot length, like tcpdump's `-s`.
pub fn captured_len(orig_len: usize, snaplen: u32) -> usize {
    orig_len.min(usize::try_from(snaplen).unwrap_or(usize::MAX))
}

/// The size accounting of the pcap file: it starts with the file header and
/// grows by one record at a time, and refuses the record that would take it
/// over the bound, so the file never exceeds `max_bytes` (the capture stops
/// there rather than skipping to a smaller packet: a hole in the middle of a
/// capture would be misleading).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeBound {
    max_bytes: u64,
    written: u64,
}

impl SizeBound {
    /// The accounting of a file that holds only its header; `None` when even
    /// the header would not fit.
    pub fn new(max_bytes: u64) -> Option<SizeBound> {
        (max_bytes >= PCAP_HEADER_LEN).then_some(SizeBound {
            max_bytes,
            written: PCAP_HEADER_LEN,
        })
    }

    /// Counts a record with `incl_len` bytes of data if it fits and says
    /// whether it did; a refused record leaves the count unchanged.
    pub fn try_add(&mut self, incl_len: usize) -> bool {
        let record = u64::try_from(incl_len)
            .ok()
            .and_then(|len| len.checked_add(PCAP_RECORD_HEADER_LEN));
        match record.and_then(|r| self.written.checked_add(r)) {
            Some(total) if total <= self.max_bytes => {
                self.written = total;
                true
            }
            _ => false,
        }
    }

    /// The size of the file so far, its header included.
    pub fn written(&self) -> u64 {
        self.written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    const US: [u8; 6] = [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef];
    const OTHER: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x07];
    const BROADCAST: [u8; 6] = [0xff; 6];

    fn frame(dst: [u8; 6], src: [u8; 6], ethertype: u16) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(&[0x45, 0, 0, 20]); // the start of an IPv4 header
        f
    }

    #[test]
    fn keeps_frames_from_the_peer() {
        assert!(keep_frame(Some(PEER), &frame(US, PEER, 0x0800)));
    }

    #[test]
    fn keeps_frames_to_the_peer() {
        assert!(keep_frame(Some(PEER), &frame(PEER, US, 0x86dd)));
    }

    #[test]
    fn keeps_arp_broadcasts_and_tagged_arp() {
        assert!(keep_frame(Some(PEER), &frame(BROADCAST, US, 0x0806)));
        assert!(keep_frame(Some(PEER), &frame(BROADCAST, OTHER, 0x0806)));
        let mut tagged = frame(BROADCAST, OTHER, 0x8100);
        tagged.splice(14..14, [0x00, 0x05, 0x08, 0x06]);
        assert!(keep_frame(Some(PEER), &tagged));
    }

    #[test]
    fn drops_other_hosts_traffic() {
        assert!(!keep_frame(Some(PEER), &frame(US, OTHER, 0x0800)));
        assert!(!keep_frame(Some(PEER), &frame(BROADCAST, OTHER, 0x0800)));
        let mut tagged_ip = frame(US, OTHER, 0x8100);
        tagged_ip.splice(14..14, [0x00, 0x05, 0x08, 0x00]);
        assert!(!keep_frame(Some(PEER), &tagged_ip));
    }

    #[test]
    fn drops_runts_only_when_filtering() {
        assert!(!keep_frame(Some(PEER), &PEER[..5]));
        assert!(!keep_frame(Some(PEER), &[]));
        assert!(keep_frame(None, &[1, 2, 3]));
        assert!(keep_frame(None, &frame(US, OTHER, 0x0800)));
    }

    #[test]
    fn captured_len_cuts_to_the_snaplen() {
        assert_eq!(captured_len(1514, 65535), 1514);
        assert_eq!(captured_len(1514, 96), 96);
        assert_eq!(captured_len(96, 96), 96);
    }

    #[test]
    fn size_bound_counts_headers_and_stops_before_the_limit() {
        assert_eq!(SizeBound::new(23), None);
        let mut b = SizeBound::new(24 + 16 + 100 + 16 + 50).unwrap();
        assert_eq!(b.written(), 24);
        assert!(b.try_add(100));
        assert_eq!(b.written(), 140);
        assert!(!b.try_add(51), "one byte over the bound");
        assert_eq!(b.written(), 140, "a refused record is not counted");
        assert!(b.try_add(50), "exactly at the bound");
        assert_eq!(b.written(), 206);
        assert!(!b.try_add(0), "even an empty record needs its header");
    }

    #[test]
    fn size_bound_of_the_header_alone_takes_no_record() {
        let mut b = SizeBound::new(24).unwrap();
        assert!(!b.try_add(0));
        let mut huge = SizeBound::new(u64::MAX).unwrap();
        assert!(huge.try_add(1 << 20));
        assert!(!huge.try_add(usize::MAX) || usize::BITS < 64, "no overflow");
    }

    #[test]
    fn proxy_authorization_values_and_secrets_are_overwritten_in_place() {
        let frame = b"\x00\x01CONNECT a.b:443 HTTP/1.1\r\nPROXY-Authorization: Basic c3VwcG9ydDpzM2NyZXQ=\r\nHost: a.b\r\n\r\n";
        let mut f = frame.to_vec();
        redact(&mut f, &Redactions::default());
        assert_eq!(f.len(), frame.len());
        let text = String::from_utf8_lossy(&f);
        let hidden = "*".repeat(" Basic c3VwcG9ydDpzM2NyZXQ=".len());
        assert!(
            text.contains(&format!("PROXY-Authorization:{hidden}\r\nHost: a.b\r\n")),
            "{text}"
        );
        assert!(!text.contains("c3VwcG9y"), "{text}");

        // A segment that starts inside the value (the name was in the one
        // before): only the known secret tells what to hide.
        let secrets = Redactions {
            secrets: vec![
                b"c3VwcG9ydDpzM2NyZXQ=".to_vec(),
                b"s3cret".to_vec(),
                Vec::new(),
            ],
        };
        let mut f = b"xx c3VwcG9ydDpzM2NyZXQ=\r\npass=s3cret&s3cret".to_vec();
        redact(&mut f, &secrets);
        assert_eq!(f, b"xx ********************\r\npass=******&******".to_vec());

        // A field cut by the end of the frame loses what the frame holds.
        let mut f = b"GET / HTTP/1.1\r\nproxy-authorization: Bas".to_vec();
        redact(&mut f, &Redactions::default());
        assert_eq!(f, b"GET / HTTP/1.1\r\nproxy-authorization:****".to_vec());
        assert_eq!(format!("{secrets:?}"), "Redactions(3 secrets)");
    }
}
