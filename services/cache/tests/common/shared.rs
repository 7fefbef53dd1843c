//! What the client tests and bench-cache share: test bodies, and the
//! origins' reading of a request head.

use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes without a short period (a shifted or repeated copy is caught):
/// a pseudo-random run of a prime length, repeated.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    const PERIOD: usize = 1_000_003;
    let run: Vec<u8> = (0..PERIOD.min(len))
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect();
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let take = (len - out.len()).min(run.len());
        out.extend_from_slice(&run[..take]);
    }
    out
}

/// Reads a request head (up to the blank line) as text; `None` when the
/// connection closes first.
pub async fn read_request_head<S: AsyncRead + Unpin>(s: &mut S) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 4096];
    loop {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(String::from_utf8_lossy(&buf[..end]).into_owned());
        }
    }
}
