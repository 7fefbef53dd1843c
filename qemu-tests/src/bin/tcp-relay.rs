//! `tcp-relay HOST:PORT`: relays its stdin and stdout to a TCP connection
//! to HOST:PORT until the far end closes. QEMU's user networking runs it
//! for each guest connection to a `guestfwd=tcp:ADDR:PORT-cmd:...`
//! address, the connection on its stdin and stdout (and stderr: it writes
//! nothing else there). So a guest reaches a test's server on the host on
//! a port of the test's choosing as ADDR:80, without the host's port 80.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsFd;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(addr) = std::env::args().nth(1) else {
        return ExitCode::from(2);
    };
    let Ok(far) = TcpStream::connect(&addr) else {
        return ExitCode::FAILURE;
    };
    let Ok(mut up) = far.try_clone() else {
        return ExitCode::FAILURE;
    };
    // The guest's bytes to the far end; its end of input half-closes.
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut up);
        let _ = up.shutdown(Shutdown::Write);
    });
    // The far end's bytes to the guest, unbuffered (stdout's own buffer
    // flushes at every newline of a binary body).
    let Ok(out) = std::io::stdout().as_fd().try_clone_to_owned() else {
        return ExitCode::FAILURE;
    };
    let mut out = std::fs::File::from(out);
    let mut far = far;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match far.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if out.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    // Exiting closes the guest's connection (the stdin thread with it).
    ExitCode::SUCCESS
}
