//! The control socket end to end: the server framing with a handler that
//! stands for PID 1, reached by the library client and by the `gatewayctl`
//! binary.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway_control::protocol::{SetResult, Status};
use gateway_control::server::{self, Handler};
use gateway_control::{ApiError, Client, ClientError, Request, Response};

/// Keeps key=value pairs; refuses proxy.port=22 the way PID 1 would.
#[derive(Default)]
struct Fake {
    values: Mutex<BTreeMap<String, String>>,
}

impl Handler for Fake {
    async fn handle(&self, request: Request) -> Response {
        match request {
            Request::Status => Response::ok(Status {
                version: "test".into(),
                ..Status::default()
            }),
            Request::Get { .. } => Response::ok(self.values.lock().unwrap().clone()),
            Request::Set { values } => {
                if values.get("proxy.port").map(String::as_str) == Some("22") {
                    return Response::error(ApiError::for_key("proxy.port", "22 is not allowed"));
                }
                let changed = values.keys().cloned().collect();
                self.values.lock().unwrap().extend(values);
                Response::ok(SetResult {
                    changed,
                    applied: vec![],
                })
            }
            _ => Response::error(ApiError::new("not in this test")),
        }
    }
}

struct Server {
    _dir: tempfile::TempDir,
    path: PathBuf,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run/control.sock");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime.block_on(async { server::bind(&path) }).unwrap();
    runtime.spawn(server::serve(listener, Arc::new(Fake::default())));
    Server {
        _dir: dir,
        path,
        runtime: Some(runtime),
    }
}

fn client(path: &Path) -> Client {
    Client::connect(path, Duration::from_secs(5)).unwrap()
}

#[test]
fn the_socket_is_private_and_answers_several_requests_per_connection() {
    let s = start();
    let mode = std::fs::metadata(&s.path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let mut c = client(&s.path);
    let status: Status = c.call_as(&Request::Status).unwrap();
    assert_eq!(status.version, "test");
    let set = Request::Set {
        values: [("dns.servers".into(), "10.0.0.53".into())].into(),
    };
    let r: SetResult = c.call_as(&set).unwrap();
    assert_eq!(r.changed, ["dns.servers"]);
    let values: BTreeMap<String, String> = c.call_as(&Request::Get { keys: vec![] }).unwrap();
    assert_eq!(values["dns.servers"], "10.0.0.53");
}

#[test]
fn a_refusal_reaches_the_client_with_its_key() {
    let s = start();
    let err = client(&s.path)
        .call(&Request::Set {
            values: [("proxy.port".into(), "22".into())].into(),
        })
        .unwrap_err();
    match err {
        ClientError::Refused(e) => assert_eq!(e.to_string(), "proxy.port: 22 is not allowed"),
        other => panic!("{other}"),
    }
}

#[test]
fn malformed_and_oversized_lines_get_an_error_not_a_hang() {
    use std::io::{BufRead, BufReader, Write};
    let s = start();
    let mut stream = std::os::unix::net::UnixStream::connect(&s.path).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    stream.write_all(b"{\"cmd\":\"nope\"}\n").unwrap();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(
        line.contains("\"ok\":false") && line.contains("malformed request"),
        "{line}"
    );
    // Still usable after a bad line.
    stream.write_all(b"{\"cmd\":\"status\"}\n").unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("{\"ok\":true"), "{line}");
    // The server answers once 64 KiB came without a newline and may close
    // before the rest is written: a broken pipe here is that answer
    // arriving early, not a failure (it is still read below).
    let _ = stream
        .write_all(&vec![b'x'; 70 * 1024])
        .and_then(|()| stream.write_all(b"\n"));
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert!(line.contains("longer than 65536 bytes"), "{line}");
}

fn gatewayctl(socket: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gatewayctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn gatewayctl_sets_gets_and_reports_refusals_with_exit_codes() {
    let s = start();
    let (code, out, _) = gatewayctl(
        &s.path,
        &["set", "ntp.servers=10.0.2.2", "dns.search=corp.example.com"],
    );
    assert_eq!(code, 0);
    assert_eq!(out, "changed: dns.search, ntp.servers\n");
    let (code, out, _) = gatewayctl(&s.path, &["get", "ntp.servers"]);
    assert_eq!((code, out.as_str()), (0, "ntp.servers=10.0.2.2\n"));
    let (code, _, err) = gatewayctl(&s.path, &["set", "proxy.port=22"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "gatewayctl: proxy.port: 22 is not allowed\n")
    );
    let (code, _, err) = gatewayctl(&s.path, &["set", "proxy.port"]);
    assert_eq!(code, 2);
    assert!(err.contains("not KEY=VALUE"), "{err}");
    let (code, _, err) = gatewayctl(&s.path, &["reset-appliance"]);
    assert_eq!(code, 2);
    assert!(err.contains("--yes"), "{err}");
    let (code, _, err) = gatewayctl(&s.path.with_file_name("absent.sock"), &["status"]);
    assert_eq!(code, 3);
    assert!(err.contains("cannot reach the control socket"), "{err}");
}
