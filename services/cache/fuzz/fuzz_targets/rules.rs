//! The cache rules on header fields a client or an origin sent: nothing
//! panics, a range lies within the object, a freshness lifetime added to
//! the clock never overflows it, the Vary names are sorted and unique.
//!
//! Input: 8 bytes of object length, then `Name: value` lines.
#![no_main]

use std::time::{Duration, SystemTime};

use gateway_cache::rules::{self, RangeAnswer, RequestClass};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (len, rest) = data.split_at(8);
    let len = u64::from_le_bytes(len.try_into().unwrap_or([0; 8])) % (1 << 40);
    let fields: Vec<(String, Vec<u8>)> = rest
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            let name = String::from_utf8_lossy(&line[..colon]).into_owned();
            Some((name, line[colon + 1..].trim_ascii().to_vec()))
        })
        .collect();
    match rules::range(&fields, len) {
        RangeAnswer::Partial { start, end } => assert!(start <= end && end < len, "{start}-{end}/{len}"),
        RangeAnswer::Unsatisfiable | RangeAnswer::Full => {}
    }
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let fresh = rules::freshness(&fields, now);
    assert!(fresh <= rules::MAX_DELTA);
    let _ = SystemTime::now() + fresh;
    if let Some(names) = rules::vary_names(&fields) {
        assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
        let _ = rules::vary_key(&names, &fields);
    }
    let _ = rules::storable(200, &fields, Some(len), 1 << 33);
    let class = rules::classify_request("GET", &fields);
    assert!(matches!(class, RequestClass::Get | RequestClass::PassThrough(_)));
    let _ = rules::not_modified(&fields, Some("\"x\""), Some("Sun, 06 Nov 1994 08:49:37 GMT"));
    for (_, v) in &fields {
        if let Ok(s) = std::str::from_utf8(v) {
            if let Some(t) = rules::parse_http_date(s) {
                // A parsed date formats and parses back to itself (to the second).
                let again = rules::parse_http_date(&rules::format_http_date(t));
                assert!(again.is_some(), "{s}");
            }
        }
    }
});
