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
}
