//! Follows the kernel log (/dev/kmsg, from its first record) into
//! `kernel.log`, and PID 1's own records (it writes its messages to the
//! kernel log with an `init: ` prefix) into `init.log`, with the kernel's
//! timestamps.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use super::file::{LogFile, MAX_BYTES};

/// One record of /dev/kmsg: `prio,seq,usec,flags;message` then
/// continuation lines (` KEY=value`) that we drop.
pub fn parse(record: &str) -> Option<(Duration, &str)> {
    let (head, rest) = record.split_once(';')?;
    let usec: u64 = head.split(',').nth(2)?.parse().ok()?;
    let message = rest.lines().next().unwrap_or("");
    Some((Duration::from_micros(usec), message))
}

/// PID 1's console lines carry their own `[uptime]`; the file gets the
/// kernel's, once.
pub fn strip_stamp(line: &str) -> &str {
    match line.strip_prefix('[').and_then(|r| r.split_once("] ")) {
        Some((stamp, rest))
            if stamp
                .trim()
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.') =>
        {
            rest
        }
        _ => line,
    }
}

/// Runs on its own thread for the life of PID 1 (reads block).
pub fn follow(dir: &Path) {
    let mut kmsg = match std::fs::File::open("/dev/kmsg") {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!("logs: /dev/kmsg: {e}; the kernel log is not kept");
            return;
        }
    };
    let mut kernel = LogFile::new(dir, "kernel", MAX_BYTES).close_after_each_line();
    let mut init = LogFile::new(dir, "init", MAX_BYTES).close_after_each_line();
    let mut buf = vec![0u8; 8192];
    loop {
        match kmsg.read(&mut buf) {
            Ok(0) => std::thread::sleep(Duration::from_millis(200)),
            Ok(n) => {
                let record = String::from_utf8_lossy(&buf[..n]);
                if let Some((t, message)) = parse(&record) {
                    let message = crate::boot::cmdline::redact_secrets(message);
                    let message = message.as_ref();
                    super::while_running(|| match message.strip_prefix("init: ") {
                        Some(ours) => init.line_at(t, strip_stamp(ours)),
                        None => kernel.line_at(t, message),
                    });
                }
            }
            // EPIPE: records were overwritten before we read them; the
            // next read goes on from the oldest one left.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {}
            Err(e) => {
                tracing::warn!("logs: read /dev/kmsg: {e}");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_give_their_time_and_first_line() {
        assert_eq!(
            parse("6,339,5140900,-;init: configuration: loaded\n SUBSYSTEM=x\n"),
            Some((
                Duration::from_micros(5_140_900),
                "init: configuration: loaded"
            ))
        );
        assert_eq!(parse("garbage"), None);
        assert_eq!(
            strip_stamp("[   22.693] error: unit proxy: failed"),
            "error: unit proxy: failed"
        );
        assert_eq!(
            strip_stamp("gateway: ready in 2495 ms"),
            "gateway: ready in 2495 ms"
        );
        assert_eq!(strip_stamp("[x] y"), "[x] y");
        assert_eq!(parse("6,1,notanumber,-;x"), None);
    }
}
