//! What a client's SFTP requests decide on our side, from arbitrary bytes:
//! the path (up to the first NUL) is classified, and no path with a `..`
//! component, nor any other name, may reach the report or the root; the
//! rest are reads (offset, length) whose merged coverage must match a plain
//! bitmap of the bytes returned, so a download counts as complete exactly
//! when every byte went out.

#![no_main]

use gateway_sftp::coverage::Coverage;
use gateway_sftp::view::{classify, Target};
use libfuzzer_sys::fuzz_target;

const FILE: &str = "gateway-diagnostics-gw-20261122T050000Z.tar.gz.age";

fuzz_target!(|data: &[u8]| {
    let cut = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let path = String::from_utf8_lossy(&data[..cut]);
    let named: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    match classify(&path, Some(FILE)) {
        Target::Root => assert!(named.is_empty(), "{path:?}"),
        Target::Report => assert_eq!(named, [FILE], "{path:?}"),
        Target::Outside => assert!(
            named.iter().any(|p| *p == "..") || !(named.is_empty() || named == [FILE]),
            "{path:?}"
        ),
    }

    let mut coverage = Coverage::new();
    let mut model = [false; 256];
    for read in data.get(cut + 1..).unwrap_or(&[]).chunks_exact(2) {
        let (start, len) = (u64::from(read[0]), u64::from(read[1] % 64));
        coverage.add(start, len);
        for i in start..(start + len).min(256) {
            model[i as usize] = true;
        }
        for pair in coverage.ranges().windows(2) {
            assert!(pair[0].1 < pair[1].0, "{:?}", coverage.ranges());
        }
    }
    for size in [1u64, 17, 64, 255] {
        let all = model[..size as usize].iter().all(|&b| b);
        assert_eq!(coverage.covers(size), all, "{:?}", coverage.ranges());
    }
});
