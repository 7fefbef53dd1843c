//! Fuzzes the configuration's text forms, which come from the hypervisor
//! (the kernel command line, OVF properties), the console, gatewayctl and
//! the platform. The input is a list of `key=value` words, as a seed is.
//! Properties: no panic; a seed's configuration is valid; a value `set`
//! accepts reads back (`get`) as a text that `set` accepts again and that
//! gives the same configuration.
#![no_main]

use gateway_config::{Config, Seed, KEYS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let pairs: Vec<(&str, &str)> = text.split(' ').filter_map(|w| w.split_once('=')).collect();
    let seed = Seed::from_pairs(pairs.iter().copied());
    assert_eq!(seed.config.validate(), Ok(()));
    // Each value tried on each key (the key chosen by the value's length,
    // so one input reaches every key).
    for (i, (_, value)) in pairs.iter().enumerate() {
        let key = KEYS[(i + value.len()) % KEYS.len()];
        let mut c = Config::default();
        if c.set(key.name, value).is_ok() && !key.secret {
            let text = c.get(key.name).unwrap();
            let mut again = Config::default();
            again
                .set(key.name, &text)
                .expect("a value get wrote sets again");
            assert_eq!(again, c, "{}={value:?} read back as {text:?}", key.name);
        }
        let _ = Config::default().with_changes(&[(key.name, *value)]);
    }
});
