//! Init's log: every message goes to each active console (VGA and serial) and
//! to the kernel log (/dev/kmsg), prefixed with the uptime.
//!
//! The kernel runs `quiet`, so our kmsg records (info level) are not echoed to
//! the consoles by the kernel; we write the consoles ourselves. That keeps one
//! copy of each line on each console, and `dmesg` still has them all.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

use crate::uptime::uptime;

struct Sinks {
    /// Each console's device path and open file.
    consoles: Vec<(String, File)>,
    kmsg: Option<File>,
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
            open_console(&path).map(|f| (path, f))
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
            for (path, c) in &mut sinks.consoles {
                if !write_console(c, console_line.as_bytes()) {
                    // Hung up: a console UI that had this terminal as its
                    // controlling terminal exited. A new open works again.
                    if let Some(f) = open_console(path) {
                        *c = f;
                        write_console(c, console_line.as_bytes());
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

/// A console whose output buffer is full (the console UI redrawing on a
/// serial line) gets up to 250 ms to drain; a stuck one loses the line
/// rather than stop PID 1. False when the file no longer works (EIO after
/// a hang-up).
fn write_console(c: &mut File, mut bytes: &[u8]) -> bool {
    for _ in 0..50 {
        match c.write(bytes) {
            Ok(n) if n == bytes.len() => return true,
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            Err(_) => return false,
        }
    }
    true
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
