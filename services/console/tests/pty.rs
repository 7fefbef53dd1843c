//! The real binary on a pseudo-terminal, against a fake control API on a
//! socket in a temporary directory: it sets the 80x25 size a serial line
//! does not report, draws the main menu, follows keys, and sends a `set`
//! only on OK; it repairs a screen something else wrote over (Ctrl-L, the
//! periodic redraw) and redraws at a new size after a resize. What it
//! writes is fed to a vt100 emulator, so a test reads the screen as a
//! person would. The child is killed when the test ends, pass or fail.

mod common;

use std::future::Future;
use std::io::{Read, Write};
use std::num::NonZeroU16;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway_control::protocol::{ApiError, Request, Response, SetResult};
use gateway_control::server::{self, Handler};

struct Fake {
    sets: Mutex<Vec<Request>>,
}

impl Handler for Fake {
    fn handle(&self, request: Request) -> impl Future<Output = Response> + Send {
        let response = match &request {
            Request::Status => Response::ok(common::status()),
            Request::Get { .. } => Response::ok(common::config()),
            Request::Set { values } => {
                let changed = values.keys().cloned().collect();
                self.sets.lock().unwrap().push(request.clone());
                Response::ok(SetResult {
                    changed,
                    applied: vec![],
                })
            }
            _ => Response::error(ApiError::new("not served by this fake")),
        };
        async move { response }
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn openpty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two descriptors into the integers; the name,
    // termios and size pointers may be null (no size: 0x0, like a serial
    // line).
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and are owned here only.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// The binary running on a pty, and what it drew.
struct Console {
    // First, so it is killed before its terminal closes.
    _child: Killed,
    fake: Arc<Fake>,
    /// The screen that what the console writes makes.
    screen: Arc<Mutex<vt100::Parser>>,
    master: OwnedFd,
    /// The terminal's other end, kept to write on it as the kernel does.
    slave: std::fs::File,
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl Console {
    /// Starts the binary with `--redraw redraw` seconds on a new pty that
    /// reports no size (like a serial line).
    fn start(redraw: u64) -> Console {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("control.sock");
        let fake = Arc::new(Fake {
            sets: Mutex::new(Vec::new()),
        });
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let listener = {
            let _enter = runtime.enter();
            server::bind(&socket).unwrap()
        };
        runtime.spawn(server::serve(listener, fake.clone()));

        let (master, slave) = openpty();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway-console"));
        cmd.arg("--socket")
            .arg(&socket)
            .args(["--redraw", &redraw.to_string()])
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave.try_clone().unwrap()));
        // SAFETY: setsid and ioctl only, between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() == -1 || libc::ioctl(0, libc::TIOCSCTTY, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = Killed(cmd.spawn().unwrap());
        let screen = Arc::new(Mutex::new(vt100::Parser::new(size(25), size(80), 0)));
        let mut reader = std::fs::File::from(master.try_clone().unwrap());
        let parser = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                parser.lock().unwrap().process(&buf[..n]);
            }
        });
        Console {
            _child: child,
            fake,
            screen,
            master,
            slave: std::fs::File::from(slave),
            _runtime: runtime,
            _dir: dir,
        }
    }

    /// Types `keys` and gives the console a moment to take them.
    fn press(&self, keys: &str) {
        (&std::fs::File::from(self.master.try_clone().unwrap()))
            .write_all(keys.as_bytes())
            .unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }

    /// The screen's text, a line per row.
    fn text(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    /// Waits until `text` is on the screen; the screen then. (Not in the
    /// bytes written: the console writes only the cells that change, so a
    /// text on the screen need not be in one piece in the output.)
    fn wait_for(&self, text: &str) -> String {
        self.wait_screen(&format!("{text:?}"), |t| t.contains(text))
    }

    /// Waits until `done` holds for the screen's text; the screen then.
    fn wait_screen(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.text();
            if done(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{what} never on the screen; the screen:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the main menu with the status read, all drawn.
    fn main_menu(&self) -> String {
        self.wait_screen("the main menu", |t| {
            t.contains("Registration") && t.contains("eth0 10.0.2.15/24") && t.contains("< OK >")
        })
    }

    /// Writes `bytes` on the terminal behind the console's back, as the
    /// kernel does with its messages on a VT.
    fn scribble(&self, bytes: &[u8]) {
        (&self.slave).write_all(bytes).unwrap();
    }

    /// Resizes the terminal, as a hypervisor's window or `stty` does: the
    /// kernel signals SIGWINCH to the console.
    fn resize(&self, cols: u16, rows: u16) {
        // The emulator first: what the console draws next is for the new size.
        self.screen
            .lock()
            .unwrap()
            .screen_mut()
            .set_size(size(rows), size(cols));
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        assert_eq!(
            // SAFETY: TIOCSWINSZ reads `ws`, which lives across the call.
            unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) },
            0,
            "TIOCSWINSZ: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// A terminal dimension, for the emulator.
fn size(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).expect("a terminal has rows and columns")
}

/// What a kernel writes on the console while the menu is up: lines where
/// the cursor is, which scroll the screen, and one somewhere in the middle.
const KERNEL_MESSAGES: &[u8] = b"\r\n[   12.345678] virtio_net virtio0 eth0: link down\r\n[   12.400001] random: crng init done\r\n\x1b[12;20H[   13.000000] EXT4-fs (vda4): mounted filesystem";

#[test]
fn the_binary_draws_on_a_terminal_without_a_size_and_sends_a_set_on_ok() {
    let console = Console::start(1);
    let (fake, master) = (&console.fake, &console.master);
    let press = |k: &str| console.press(k);

    console.wait_for("Registration");
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    assert_eq!(
        // SAFETY: TIOCGWINSZ fills `ws`, which lives across the call.
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) },
        0
    );
    assert_eq!((ws.ws_col, ws.ws_row), (80, 25));
    console.wait_for("eth0 10.0.2.15/24");

    // Info, then back.
    press("\x1b[B");
    press("\x1b[B");
    press("\r");
    console.wait_for("Appliance Name");
    press("\x1b");
    std::thread::sleep(Duration::from_millis(300));
    // System > POD Suffix: wrong first (nothing sent), then right.
    press("\x1b[A");
    press("\r");
    press("\x1b[B");
    press("\r");
    press("qg1..x");
    press("\r");
    console.wait_for("POD suffix:");
    // The rule under the field: the wrong value was checked, not sent.
    console.wait_for("^ ");
    assert!(
        fake.sets.lock().unwrap().is_empty(),
        "a wrong value was sent"
    );
    for _ in 0.."qg1..x".len() {
        press("\x7f");
    }
    press("qg1.apps.qualys.com\r");
    console.wait_for("Saved: platform.pod");
    assert_eq!(
        fake.sets.lock().unwrap().as_slice(),
        [Request::Set {
            values: [("platform.pod".to_owned(), "qg1.apps.qualys.com".to_owned())].into()
        }]
    );
}

#[test]
fn ctrl_l_repairs_a_screen_the_kernel_wrote_over() {
    // No periodic redraw during the test: only Ctrl-L can repair it.
    let console = Console::start(3600);
    let clean = console.main_menu();
    console.scribble(KERNEL_MESSAGES);
    console.wait_screen("the kernel's messages", |t| t.contains("EXT4-fs (vda4)"));
    // The console draws only what changed in its own picture, so the
    // scribbles stay until it is told.
    std::thread::sleep(Duration::from_millis(1500));
    let scribbled = console.text();
    assert_ne!(scribbled, clean);
    assert!(scribbled.contains("EXT4-fs (vda4)"), "{scribbled}");
    console.press("\x0c");
    let repaired = console.wait_screen("the clean main menu", |t| t == clean);
    assert!(!repaired.contains("crng"), "{repaired}");
}

#[test]
fn the_periodic_redraw_repairs_a_screen_the_kernel_wrote_over() {
    let console = Console::start(1);
    let clean = console.main_menu();
    console.scribble(KERNEL_MESSAGES);
    console.wait_screen("the kernel's messages", |t| t.contains("EXT4-fs (vda4)"));
    // No key: the redraw every second puts the menu back.
    console.wait_screen("the clean main menu", |t| t == clean);
}

#[test]
fn a_resize_redraws_the_screen_at_the_new_size() {
    let console = Console::start(3600);
    let before = console.main_menu();
    let title = before.lines().next().unwrap().trim_end().to_owned();
    assert_eq!(title.chars().count(), 79, "{title:?}");
    console.resize(100, 30);
    // The title bar spans the new width, eth0's address at its right end,
    // and the menu is centred in the new size: its box starts further
    // right and lower than at 80x25.
    let corner = |text: &str| {
        text.lines()
            .enumerate()
            .find_map(|(row, l)| l.find('┌').map(|col| (row, l[..col].chars().count())))
    };
    let spans = |text: &str| {
        text.lines().next().is_some_and(|l| {
            let l = l.trim_end();
            l.chars().count() == 99 && l.ends_with("eth0 10.0.2.15/24")
        })
    };
    let after = console.wait_screen("the menu at 100x30", |t| {
        spans(t)
            && t.contains("Registration")
            && corner(t).is_some()
            && corner(t) != corner(&before)
    });
    let ((row_before, col_before), (row_after, col_after)) =
        (corner(&before).unwrap(), corner(&after).unwrap());
    assert_eq!(col_after, col_before + 10, "{after}");
    assert!(row_after > row_before, "{after}");
    // Nothing of the 80x25 picture is left: one box, the new one.
    assert_eq!(after.matches('┌').count(), 1, "{after}");
}
