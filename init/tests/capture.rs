//! The upstream capture against the real kernel: captures on `lo` (run as
//! root, as CI does) while the test makes its own traffic, then reads the file
//! back with pcap-file and with Debian's tcpdump. Other tests may be using
//! `lo` at the same time, so the assertions look only for this test's own
//! payload and ports.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use gateway_init::diagnostics::capture::{self, CaptureRequest, EndReason, Progress, Summary};

/// Sets the stop flag when dropped, so a failing assertion in the test's
/// body still ends the capture thread before `thread::scope` joins it.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the capture tests open an AF_PACKET socket and must run as root (as CI does)"
    );
}

fn lo_request(path: &Path) -> CaptureRequest {
    let mut req = CaptureRequest::new("lo", path);
    req.duration = Duration::from_secs(30);
    req
}

/// Waits until the capture has its socket bound (it creates its unfinished
/// file right after), so the traffic that follows is captured.
fn wait_until_capturing(path: &Path, capture: &thread::ScopedJoinHandle<'_, impl Sized>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while capture::unfinished(path).is_empty() && !capture.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the capture did not start within 10 s"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the capture in a thread while `traffic` runs in the test's thread;
/// `traffic` gets the stop flag and the capture's handle.
fn capture_while<T>(
    req: &CaptureRequest,
    traffic: impl FnOnce(&AtomicBool, &dyn Fn() -> bool) -> T,
) -> (Result<Summary, capture::CaptureError>, Vec<Progress>, T) {
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        let capture = s.spawn(|| {
            let mut reports = Vec::new();
            let result = capture::run(req, &stop, &mut |p| reports.push(p.clone()));
            (result, reports)
        });
        let out = {
            let _stop = StopOnDrop(&stop);
            wait_until_capturing(&req.path, &capture);
            traffic(&stop, &|| capture.is_finished())
        };
        let (result, reports) = capture.join().expect("the capture thread panicked");
        (result, reports, out)
    })
}

fn unique_payload() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    format!("gateway-capture-test-{}-{nanos}", std::process::id())
}

/// The TCP destination port and payload of an Ethernet/IPv4/TCP frame.
fn tcp_of(frame: &[u8]) -> Option<(u16, &[u8])> {
    if frame.get(12..14)? != [0x08, 0x00] || *frame.get(23)? != 6 {
        return None;
    }
    let ip = 14;
    let ihl = usize::from(frame.get(ip)? & 0x0f) * 4;
    let tcp = ip + ihl;
    let dst = u16::from_be_bytes([*frame.get(tcp + 2)?, *frame.get(tcp + 3)?]);
    let data_offset = usize::from(frame.get(tcp + 12)? >> 4) * 4;
    Some((dst, frame.get(tcp + data_offset..)?))
}

/// The frames of a pcap file, read raw: pcap-file 2.0's checked reader
/// refuses cut packets (orig_len > snaplen), which are valid pcap.
fn frames(path: &Path) -> Vec<Vec<u8>> {
    let file = std::fs::File::open(path).expect("open the capture");
    let mut reader = pcap_file::pcap::PcapReader::new(file).expect("a pcap header");
    assert_eq!(reader.header().datalink, pcap_file::DataLink::ETHERNET);
    let mut out = Vec::new();
    while let Some(packet) = reader.next_raw_packet() {
        let packet = packet.expect("a well-formed pcap record");
        assert!(packet.incl_len <= packet.orig_len);
        out.push(packet.data.into_owned());
    }
    out
}

#[test]
fn captures_own_loopback_traffic_that_tcpdump_reads() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("diagnostics/upstream.pcap");
    let req = lo_request(&path);
    let payload = unique_payload();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();

    let started = Instant::now();
    let (result, reports, ()) = capture_while(&req, |stop, _| {
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        client.write_all(payload.as_bytes()).unwrap();
        let mut got = vec![0u8; payload.len()];
        server.read_exact(&mut got).unwrap();
        assert_eq!(got, payload.as_bytes());
        drop(client);
        drop(server);
        // Long enough for a progress report after the first.
        thread::sleep(Duration::from_millis(2500));
        stop.store(true, Ordering::Relaxed);
    });
    let summary = result.expect("the capture on lo");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped promptly"
    );

    assert_eq!(summary.reason, EndReason::Stopped);
    assert_eq!(summary.path, path);
    assert!(summary.packets >= 1);
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.len(), summary.bytes);
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(capture::unfinished(&path).is_empty());
    assert!(
        reports.len() >= 2,
        "progress at the start and a second later: {reports:?}"
    );
    assert!(reports
        .windows(2)
        .all(|w| w[0].elapsed <= w[1].elapsed && w[0].bytes <= w[1].bytes));

    let frames = frames(&path);
    assert_eq!(frames.len() as u64, summary.packets);
    assert!(
        frames
            .iter()
            .filter_map(|f| tcp_of(f))
            .any(|(dst, data)| dst == port
                && data.windows(payload.len()).any(|w| w == payload.as_bytes())),
        "no frame to port {port} carries {payload:?}"
    );

    let tcpdump = Command::new("/usr/bin/tcpdump")
        .arg("-r")
        .arg(&path)
        .args(["-nn", "port", &port.to_string()])
        .output()
        .expect("run /usr/bin/tcpdump (Debian's tcpdump package)");
    let stdout = String::from_utf8_lossy(&tcpdump.stdout);
    assert!(
        tcpdump.status.success(),
        "tcpdump -r failed: {}\n{stdout}",
        String::from_utf8_lossy(&tcpdump.stderr)
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.contains(&format!(".{port}:")) || l.contains(&format!(".{port} "))),
        "tcpdump shows nothing on port {port}:\n{stdout}"
    );
}

#[test]
fn the_size_bound_ends_the_capture_and_is_never_exceeded() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upstream.pcap");
    let mut req = lo_request(&path);
    req.max_bytes = 4096;

    let (result, _, ()) = capture_while(&req, |_, finished| {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !finished() && Instant::now() < deadline {
            sender
                .send_to(&[0x5a; 300], receiver.local_addr().unwrap())
                .unwrap();
            thread::sleep(Duration::from_millis(5));
        }
    });
    let summary = result.expect("the capture on lo");
    assert_eq!(summary.reason, EndReason::SizeLimit);
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len <= 4096, "{len} bytes");
    assert_eq!(len, summary.bytes);
    assert_eq!(frames(&path).len() as u64, summary.packets);
}

#[test]
fn the_duration_ends_the_capture() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upstream.pcap");
    let mut req = lo_request(&path);
    req.duration = Duration::from_secs(1);

    let started = Instant::now();
    let (result, _, ()) = capture_while(&req, |_, finished| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
    });
    let elapsed = started.elapsed();
    assert_eq!(
        result.expect("the capture on lo").reason,
        EndReason::Duration
    );
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert!(path.exists());
}

#[test]
fn the_peer_filter_drops_frames_of_other_hosts() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upstream.pcap");
    let mut req = lo_request(&path);
    req.duration = Duration::from_secs(1);
    // Frames on lo carry all-zero MACs: none is from or to this peer.
    req.peer_mac = Some([0x02, 0x00, 0x5e, 0x10, 0x20, 0x30]);

    let (result, _, ()) = capture_while(&req, |_, finished| {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !finished() && Instant::now() < deadline {
            sender
                .send_to(b"not for the peer", receiver.local_addr().unwrap())
                .unwrap();
            thread::sleep(Duration::from_millis(20));
        }
    });
    let summary = result.expect("the capture on lo");
    assert_eq!(summary.reason, EndReason::Duration);
    assert_eq!(summary.packets, 0);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        capture::PCAP_HEADER_LEN
    );
}

#[test]
fn a_missing_interface_is_an_error_in_words_and_keeps_the_previous_capture() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upstream.pcap");
    std::fs::write(&path, b"previous capture").unwrap();
    let req = CaptureRequest::new("gwcapnone0", &path);
    let err = capture::run(&req, &AtomicBool::new(false), &mut |_| {}).unwrap_err();
    assert_eq!(err.to_string(), "capture on gwcapnone0: no such interface");
    assert_eq!(std::fs::read(&path).unwrap(), b"previous capture");
    assert!(capture::unfinished(&path).is_empty());
    assert_eq!(capture::next_hop("gwcapnone0"), None);
}
