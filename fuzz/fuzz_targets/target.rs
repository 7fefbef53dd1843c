//! Fuzzes the cache's normalisation of a request target (RFC 3986 section
//! 6.2.2, `gateway_cache::rules::normalise_target`): the cache keys its
//! objects by it and asks the origin with it. The input is the target, as
//! text, after a byte choosing the scheme and port. Properties: no panic;
//! the output starts with '/'; normalising twice gives what normalising
//! once does; the key of the output is the key of the input.
#![no_main]

use gateway_cache::rules::{cache_key, normalise_target};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, target)) = data.split_first() else {
        return;
    };
    let target = String::from_utf8_lossy(target);
    let once = normalise_target(&target);
    assert!(once.starts_with('/'), "{target:?} gives {once:?}");
    let twice = normalise_target(&once);
    assert_eq!(twice, once, "{target:?}: not idempotent");
    let https = pick & 1 != 0;
    let port = [80, 443, 8080][usize::from(pick >> 1) % 3];
    assert_eq!(
        cache_key(https, "Example.COM", port, &once),
        cache_key(https, "Example.COM", port, &target)
    );
});
