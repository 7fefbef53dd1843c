//! A tunnel carrying bulk data both ways at once: an upload while a download
//! runs, or a peer that echoes. Each direction must progress on its own; a
//! relay that serves one direction at a time deadlocks against an echo
//! peer (the tunnel waits to write to the peer, the peer waits to write
//! back). The peer here is sequential on purpose, like `cat` on a socket:
//! it reads, then writes what it read, and reads again only once that
//! write is done.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

mod common;
use common::*;

/// Each way: 1 GiB.
const TOTAL: u64 = 1 << 30;

/// No byte either way for this long is a stall (not a speed limit: the
/// transfer takes seconds).
const STALL: Duration = Duration::from_secs(30);

/// A sequential echo peer on loopback: its port.
fn echo_peer() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut r = s.try_clone().unwrap();
                let mut w = s;
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match r.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if w.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = w.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    port
}

/// The stream's bytes repeat with a period (251) that divides no buffer
/// size, so a lost, doubled or reordered chunk shows.
const PERIOD: usize = 251;

/// Bytes of the stream from any offset: `&table[offset % PERIOD..][..len]`
/// for `len` up to `CHUNK` (slices compare with memcmp, fast in a debug
/// build).
fn pattern_table() -> Vec<u8> {
    (0..CHUNK + PERIOD).map(|i| (i % PERIOD) as u8).collect()
}

const CHUNK: usize = 1 << 20;

#[test]
fn a_tunnel_moves_a_gibibyte_each_way_at_once_through_an_echo_peer() {
    let port = echo_peer();
    let proxy = start_proxy(config_for(
        &[format!("{PLAIN_NAME}:{port}")],
        &[(PLAIN_NAME, LOOPBACK)],
    ));
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(STALL)).unwrap();
    s.set_write_timeout(Some(STALL)).unwrap();
    s.write_all(format!("CONNECT {PLAIN_NAME}:{port} HTTP/1.1\r\n\r\n").as_bytes())
        .unwrap();
    let mut head = [0u8; 39];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head[..], b"HTTP/1.1 200 Connection established\r\n\r\n");

    let mut writer = s.try_clone().unwrap();
    let table = pattern_table();
    let up_table = table.clone();
    let upload = std::thread::spawn(move || -> Result<u64, String> {
        let mut sent = 0u64;
        while sent < TOTAL {
            let chunk = &up_table[(sent % PERIOD as u64) as usize..][..CHUNK];
            writer
                .write_all(chunk)
                .map_err(|e| format!("upload stalled or failed after {sent} bytes: {e}"))?;
            sent += CHUNK as u64;
        }
        writer.shutdown(std::net::Shutdown::Write).unwrap();
        Ok(sent)
    });

    let mut buf = vec![0u8; CHUNK];
    let mut received = 0u64;
    loop {
        let n = match s.read(&mut buf) {
            Ok(n) => n,
            Err(e) => panic!("download stalled or failed after {received} bytes: {e}"),
        };
        if n == 0 {
            break;
        }
        let expected = &table[(received % PERIOD as u64) as usize..][..n];
        assert!(
            buf[..n] == *expected,
            "the echo differs in the {n} bytes from byte {received}"
        );
        received += n as u64;
    }
    let sent = upload.join().unwrap().unwrap();
    assert_eq!((sent, received), (TOTAL, TOTAL));
    // The proxy counted every byte, each way.
    let stats = proxy.stats.snapshot(std::time::Instant::now());
    assert_eq!((stats.bytes_up, stats.bytes_down), (TOTAL, TOTAL));
}
