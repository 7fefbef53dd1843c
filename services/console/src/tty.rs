//! The terminal's size. A VT reports it; a serial line does not (0x0), so
//! the console sets the size it was told (`--cols`, `--rows`) on the tty
//! itself, and the kernel keeps it for the next reader.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

fn get(fd: BorrowedFd) -> io::Result<libc::winsize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into `ws`, which lives across
    // the call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(ws)
}

/// The size of the terminal on `fd`, after setting `cols` x `rows` when it
/// reports none (a serial port). Columns first.
pub fn ensure_size(fd: BorrowedFd, cols: u16, rows: u16) -> io::Result<(u16, u16)> {
    let ws = get(fd)?;
    if ws.ws_col != 0 && ws.ws_row != 0 {
        return Ok((ws.ws_col, ws.ws_row));
    }
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from `ws`, which lives across
    // the call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok((cols, rows))
}
