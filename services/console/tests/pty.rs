//! The real binary on a pseudo-terminal, against a fake control API on a
//! socket in a temporary directory: it sets the 80x25 size a serial line
//! does not report, draws the main menu, follows keys, and sends a `set`
//! only on OK. The child is killed when the test ends, pass or fail.

mod common;

use std::future::Future;
use std::io::{Read, Write};
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

fn wait_for(output: &Mutex<Vec<u8>>, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = String::from_utf8_lossy(&output.lock().unwrap()).into_owned();
        if seen.contains(text) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{text:?} never drawn; output:\n{seen}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_binary_draws_on_a_terminal_without_a_size_and_sends_a_set_on_ok() {
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
        .args(["--redraw", "1"])
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave));
    // SAFETY: setsid and ioctl only, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 || libc::ioctl(0, libc::TIOCSCTTY, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let _child = Killed(cmd.spawn().unwrap());
    let output = Arc::new(Mutex::new(Vec::new()));
    let mut reader = std::fs::File::from(master.try_clone().unwrap());
    let feed = output.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            feed.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let mut keys = std::fs::File::from(master.try_clone().unwrap());
    let mut press = |k: &str| {
        keys.write_all(k.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(150));
    };

    wait_for(&output, "Registration");
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
    wait_for(&output, "eth0 10.0.2.15/24");

    // Info, then back.
    press("\x1b[B");
    press("\x1b[B");
    press("\r");
    wait_for(&output, "Appliance Name");
    press("\x1b");
    std::thread::sleep(Duration::from_millis(300));
    // System > POD Suffix: wrong first (nothing sent), then right.
    press("\x1b[A");
    press("\r");
    press("\x1b[B");
    press("\r");
    press("qg1..x");
    press("\r");
    wait_for(&output, "POD suffix:");
    assert!(
        fake.sets.lock().unwrap().is_empty(),
        "a wrong value was sent"
    );
    for _ in 0.."qg1..x".len() {
        press("\x7f");
    }
    press("qg1.apps.qualys.com\r");
    wait_for(&output, "Saved: platform.pod");
    assert_eq!(
        fake.sets.lock().unwrap().as_slice(),
        [Request::Set {
            values: [("platform.pod".to_owned(), "qg1.apps.qualys.com".to_owned())].into()
        }]
    );
}
