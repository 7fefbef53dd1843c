//! Servers the tests run on the host's loopback, which the guest reaches as
//! 10.0.2.2 (or through a `guestfwd`): origins, echo peers, upstream proxies.

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A server on a free loopback port; `reply` serves each connection in a
/// thread of its own. Stopped (its accept loop joined) when dropped.
pub struct HostServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HostServer {
    pub fn start(reply: impl Fn(TcpStream) + Send + Sync + 'static) -> HostServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let reply = Arc::new(reply);
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        let reply = reply.clone();
                        std::thread::spawn(move || reply(s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        HostServer {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for HostServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
