//! Init's log: every message goes to each active console (VGA and serial) and
//! to the kernel log (/dev/kmsg), prefixed with the uptime.
//!
//! The kernel runs `quiet`, so our kmsg records (info level) are not echoed to
//! the consoles by the kernel; we write the consoles ourselves. That keeps one
//! copy of each line on each console, and `dmesg` still has them all.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

use crate::pid1::uptime::uptime;

struct Sinks {
    /// Each console's device path and open file.
    consoles: Vec<Console>,
    kmsg: Option<File>,
}

struct Console {
    path: String,
    file: File,
    /// The last line did not fit in [`PATIENCE`]: the next ones are written
    /// only as far as the terminal takes them at once, until one fits whole.
    stalled: bool,
}

static SINKS: Mutex<Option<Sinks>> = Mutex::new(None);

fn open_console(path: &str) -> Option<File> {
    OpenOptions::new()
        .write(true)
        // Never make a console our controlling terminal: a hang-up or ^C on
        // the serial line must not signal PID 1.
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)
        .ok()
}

/// Opens the consoles listed in /sys/class/tty/console/active and /dev/kmsg,
/// and installs the tracing subscriber. Until then (and if nothing opens),
/// lines go to stderr, which the kernel set to /dev/console.
pub fn init() {
    let names = std::fs::read_to_string("/sys/class/tty/console/active").unwrap_or_default();
    let consoles = names
        .split_whitespace()
        .filter_map(|name| {
            let path = format!("/dev/{name}");
            open_console(&path).map(|file| Console {
                path,
                file,
                stalled: false,
            })
        })
        .collect();
    // The kernel rate-limits /dev/kmsg writers to a burst of 10 records per
    // 5 s: without this, init.log (which is read back from the kernel log)
    // kept the first 10 lines of a boot and lost most of the rest. "on"
    // lifts the limit for every writer; only PID 1 and root can write there.
    // (Refused only when the command line pins printk.devkmsg.)
    let unlimited = std::fs::write("/proc/sys/kernel/printk_devkmsg", "on\n");
    let kmsg = OpenOptions::new().write(true).open("/dev/kmsg").ok();
    if let Ok(mut s) = SINKS.lock() {
        *s = Some(Sinks { consoles, kmsg });
    }
    let subscriber = tracing_subscriber::registry().with(ConsoleLayer);
    let _ = tracing::subscriber::set_global_default(subscriber);
    if let Err(e) = unlimited {
        tracing::warn!("kernel log: printk_devkmsg: {e}; init.log may miss lines of busy moments");
    }
}

/// Writes one line as it is (no uptime prefix) to the consoles and the kernel log.
pub fn announce(line: &str) {
    emit(Level::INFO, line);
}

fn emit(level: Level, line: &str) {
    let Ok(mut guard) = SINKS.lock() else { return };
    match guard.as_mut() {
        Some(sinks) if !sinks.consoles.is_empty() || sinks.kmsg.is_some() => {
            let console_line = format!("{line}\r\n");
            for c in &mut sinks.consoles {
                if c.write(console_line.as_bytes()) == Written::HungUp {
                    // Hung up: a console UI that had this terminal as its
                    // controlling terminal exited. A new open works again.
                    if let Some(f) = open_console(&c.path) {
                        c.file = f;
                        c.write(console_line.as_bytes());
                    }
                }
            }
            if let Some(k) = sinks.kmsg.as_mut() {
                // One write() is one kmsg record; the <N> prefix is its priority.
                let _ = k.write_all(format!("<{}>init: {line}\n", kmsg_priority(level)).as_bytes());
            }
        }
        _ => eprintln!("{line}"),
    }
}

/// How long a line waits for room on a console whose output buffer is full
/// (the console UI redrawing on a serial line, a slow reader at the other
/// end). Long enough that a busy moment loses no line; a console stuck for
/// good costs this once, then [`Console::stalled`] stops the waiting.
const PATIENCE: Duration = Duration::from_secs(2);

#[derive(Debug, PartialEq)]
enum Written {
    Whole,
    /// Cut short: no room in time, or the console is stalled.
    Partly,
    /// The file no longer works (EIO after a hang-up).
    HungUp,
}

impl Console {
    fn write(&mut self, bytes: &[u8]) -> Written {
        let patience = if self.stalled {
            Duration::ZERO
        } else {
            PATIENCE
        };
        let written = write_within(&mut self.file, bytes, patience);
        self.stalled = written == Written::Partly;
        written
    }
}

/// Writes `bytes` to a non-blocking terminal, waiting for room (poll(2),
/// so the kernel wakes us as it drains, in turn with a blocking writer such
/// as the console UI) for at most `patience`: PID 1 never blocks on a
/// console for longer.
fn write_within(file: &mut File, mut bytes: &[u8], patience: Duration) -> Written {
    let deadline = Instant::now() + patience;
    loop {
        match file.write(bytes) {
            Ok(n) if n == bytes.len() => return Written::Whole,
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Written::Partly;
                }
                let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLOUT)];
                let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
                // Room, the timeout or EINTR: the write says which (the
                // deadline still holds).
                let _ = poll(&mut fds, PollTimeout::from(ms));
            }
            Err(_) => return Written::HungUp,
        }
    }
}

fn kmsg_priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

struct ConsoleLayer;

impl<S: Subscriber> Layer<S> for ConsoleLayer {
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        *metadata.level() <= Level::INFO
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = *event.metadata().level();
        let tag = match level {
            Level::ERROR => "error: ",
            Level::WARN => "warning: ",
            _ => "",
        };
        let t = uptime();
        let line = format!(
            "[{:5}.{:03}] {tag}{}{}",
            t.as_secs(),
            t.subsec_millis(),
            fields.message,
            fields.rest
        );
        emit(level, &line);
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={:?}", field.name(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::OwnedFd;

    /// A pipe standing for a terminal: its write end non-blocking, as the
    /// consoles are opened, and filled up to the brim.
    fn full_pipe() -> (File, Console) {
        let (read, write): (OwnedFd, OwnedFd) = nix::unistd::pipe().expect("pipe");
        nix::fcntl::fcntl(
            &write,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .expect("O_NONBLOCK");
        let mut console = Console {
            path: String::new(),
            file: File::from(write),
            stalled: false,
        };
        while console.file.write(&[b'x'; 4096]).is_ok() {}
        (File::from(read), console)
    }

    #[test]
    fn a_line_waits_for_a_console_that_drains_late() {
        let (mut reader, mut console) = full_pipe();
        // The reader comes back after 600 ms (a redraw on a slow serial line).
        let drain = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(600));
            let mut all = Vec::new();
            reader.read_to_end(&mut all).map(|_| all)
        });
        let line = b"[  1.234] power-off: stopping the units\r\n";
        assert_eq!(console.write(line), Written::Whole);
        drop(console);
        let all = drain.join().unwrap().unwrap_or_default();
        assert!(
            all.ends_with(line),
            "the line arrived whole, after the backlog"
        );
    }

    #[test]
    fn a_stuck_console_costs_the_patience_once() {
        let (_reader, mut console) = full_pipe();
        let start = Instant::now();
        assert_eq!(console.write(b"first\r\n"), Written::Partly);
        assert!(start.elapsed() >= PATIENCE);
        let again = Instant::now();
        assert_eq!(console.write(b"second\r\n"), Written::Partly);
        assert!(again.elapsed() < PATIENCE / 4, "no second wait");
    }

    #[test]
    fn a_closed_console_is_reported_hung_up() {
        let (reader, mut console) = full_pipe();
        drop(reader);
        assert_eq!(console.write(b"line\r\n"), Written::HungUp);
    }
}
