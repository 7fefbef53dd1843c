//! A terminal on the guest's serial console: what the guest writes there is
//! fed to a vt100 emulator (80x25, the size the console sets on ttyS0), so a
//! test reads the screen as a person would, and types keys to it.

use std::io::{Read, Write};
use std::num::NonZeroU16;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const ROWS: NonZeroU16 = NonZeroU16::new(25).unwrap();
pub const COLS: NonZeroU16 = NonZeroU16::new(80).unwrap();

/// Keys as a terminal sends them.
pub const UP: &str = "\x1b[A";
pub const DOWN: &str = "\x1b[B";
pub const RIGHT: &str = "\x1b[C";
pub const LEFT: &str = "\x1b[D";
pub const ENTER: &str = "\r";
pub const TAB: &str = "\t";
/// What a terminal's Backspace key sends (DEL).
pub const BACKSPACE: &str = "\x7f";

pub struct Screen {
    stream: UnixStream,
    parser: Arc<Mutex<vt100::Parser>>,
}

impl Screen {
    /// Starts reading `stream` on a thread of its own; it ends when the
    /// guest's side closes (QEMU exits).
    pub fn new(stream: UnixStream) -> std::io::Result<Screen> {
        let parser = Arc::new(Mutex::new(vt100::Parser::new(ROWS, COLS, 0)));
        let mut reader = stream.try_clone()?;
        let feed = parser.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut p) = feed.lock() {
                    p.process(&buf[..n]);
                }
            }
        });
        Ok(Screen { stream, parser })
    }

    /// The screen's text, a line per row.
    pub fn text(&self) -> String {
        self.parser
            .lock()
            .map(|p| p.screen().contents())
            .unwrap_or_default()
    }

    /// The colour `text` is drawn in where it first appears on the screen
    /// (that of its last character), or None when it is not there: a test
    /// so tells a dimmed placeholder from a value typed in a field.
    pub fn fg_color(&self, text: &str) -> Option<vt100::Color> {
        let parser = self.parser.lock().ok()?;
        let screen = parser.screen();
        let last = text.chars().count().checked_sub(1)?;
        let color = screen
            .rows(0, COLS.get())
            .enumerate()
            .find_map(|(row, line)| {
                let at = line.find(text)?;
                let col = line[..at].chars().count() + last;
                let cell = screen.cell(u16::try_from(row).ok()?, u16::try_from(col).ok()?)?;
                Some(cell.fgcolor())
            });
        color
    }

    /// Types `keys` (see the constants for the special ones) and waits a
    /// moment for the console to take them.
    pub fn keys(&mut self, keys: &[&str]) {
        for k in keys {
            self.stream.write_all(k.as_bytes()).expect("write to ttyS0");
            // A lone ESC is a key only when nothing follows it at once.
            std::thread::sleep(Duration::from_millis(if *k == "\x1b" { 400 } else { 60 }));
        }
    }

    pub fn esc(&mut self) {
        self.keys(&["\x1b"]);
    }

    /// Waits until every one of `texts` is on the screen at once; the
    /// screen then, or the last screen seen in the panic message.
    pub fn wait_for(&self, texts: &[&str], timeout: Duration) -> String {
        self.wait_until(texts, timeout, |_| true)
    }

    /// As [`Screen::wait_for`], and no line of PID 1's log (`[    2.941]
    /// unit agent: started`) written over the screen: PID 1 writes its log
    /// to every console, ttyS0 included, and a line that lands while a
    /// dialog is up scribbles over it (and scrolls it a row) until the
    /// console's next full redraw, at most 5 s later. A test that reads
    /// values off the screen waits for that redraw rather than read them
    /// shifted.
    pub fn wait_for_clean(&self, texts: &[&str], timeout: Duration) -> String {
        self.wait_until(texts, timeout, |screen| !has_log_line(screen))
    }

    fn wait_until(&self, texts: &[&str], timeout: Duration, also: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.text();
            if texts.iter().all(|t| screen.contains(t)) && also(&screen) {
                return screen;
            }
            if Instant::now() >= deadline {
                panic!("{texts:?} not on the screen within {timeout:?}; the screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Whether `screen` holds PID 1's uptime prefix, `[` then spaces, digits,
/// `.`, three digits and `]`, as console.rs in init writes it.
fn has_log_line(screen: &str) -> bool {
    screen.match_indices('[').any(|(at, _)| {
        let rest = screen[at + 1..].trim_start_matches(' ');
        let secs = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let rest = &rest[secs..];
        secs > 0
            && rest.len() >= 5
            && rest.as_bytes()[0] == b'.'
            && rest.as_bytes()[1..4].iter().all(u8::is_ascii_digit)
            && rest.as_bytes()[4] == b']'
    })
}

#[cfg(test)]
mod tests {
    use super::has_log_line;

    #[test]
    fn a_log_line_is_told_from_the_screen_s_own_text() {
        assert!(has_log_line("  │ Search [    2.941] unit agent: started"));
        assert!(has_log_line("[  123.004] DHCP lease renewed"));
        assert!(!has_log_line(
            "  │  NTP Servers     : 10.0.2.2 (set here)  │"
        ));
        assert!(!has_log_line("[ OK ] [2.5] [ 1.23] [x.123]"));
    }
}
