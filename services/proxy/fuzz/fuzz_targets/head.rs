//! Fuzzes what faces the network in the proxy: the request-head parser, the
//! upstream's response parser, and the policy's reading of a host name.
//! Properties: no panic; a parsed head lies within the input and the limits;
//! parsing exactly the head's bytes again gives the same head.
#![no_main]

use gateway_proxy::head::{self, Limits};
use gateway_proxy::policy::{Method, Policy};
use gateway_proxy::upstream;
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
    }
    let _ = upstream::parse_response(data, 2048);
    let host = String::from_utf8_lossy(data);
    let _ = Policy::default().check_destination(Method::Connect, &host, 443);
});
