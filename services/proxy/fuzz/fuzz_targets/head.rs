//! Fuzzes what faces the network in the proxy: the request-head parser, the
//! upstream's response parser, an origin's response head and the framing
//! rules read from both heads, and the policy's reading of a host name.
//! Properties: no panic; a parsed head lies within the input and the limits;
//! parsing exactly the head's bytes again gives the same head; the head
//! written for the client parses again.
#![no_main]

use gateway_http::head::{self, Limits};
use gateway_http::response::{self, ClientConnection};
use gateway_http::{body, connect};
use gateway_forward_proxy::policy::{Method, Policy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_head: 2048, max_request_line: 1024, max_headers: 16 };
    if let Ok(Some(h)) = head::parse(data, &limits) {
        assert!(h.len <= data.len() && h.len <= limits.max_head);
        assert!(h.headers.len() <= limits.max_headers);
        let again = head::parse(&data[..h.len], &limits);
        assert_eq!(again, Ok(Some(h.clone())));
        let policy = Policy::default();
        let method = if h.is_connect() { Method::Connect } else { Method::Http };
        let _ = policy.check_destination(method, h.target.host(), h.target.port());
        let _ = body::request_body(h.version, &h.headers);
        let _ = body::client_persistent(h.version, &h.headers);
    }
    if let Ok(Some(r)) = response::parse(data) {
        assert!(r.len <= data.len() && r.len <= response::MAX_RESPONSE_HEAD);
        let _ = body::response_body(false, r.status, &r.headers);
        let out = response::client_head(&r, ClientConnection::Close, true);
        // Within the limits (the proxy's `Connection` field is one more).
        if r.headers.len() < response::MAX_RESPONSE_FIELDS && out.len() <= response::MAX_RESPONSE_HEAD {
            let again = response::parse(&out).unwrap().unwrap();
            assert_eq!((again.status, again.len), (r.status, out.len()));
        }
    }
    let _ = connect::parse_response(data, 2048);
    let host = String::from_utf8_lossy(data);
    let _ = Policy::default().check_destination(Method::Connect, &host, 443);
});
