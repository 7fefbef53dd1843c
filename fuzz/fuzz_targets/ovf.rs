//! Fuzzes what the hypervisor hands PID 1 as its OVF environment
//! (`gateway_init::boot::ovfenv`): the check of a CD's sector 16 for an
//! ISO 9660 volume descriptor (the filesystem itself is the kernel's
//! iso9660 driver's: PID 1 mounts it and reads one file) and the reader of
//! ovf-env.xml. The input is the sector and, as text, the document; after
//! a first byte of 0 the text goes inside an Environment's PropertySection,
//! so the reading of the properties is reached.
//! Properties: no panic; bounded work: the pairs are no more than the
//! document's elements and no larger, in all, than a fixed multiple of the
//! document (entity expansion must not blow up); every pair has a
//! non-empty key without the `gateway.` prefix and a non-empty, trimmed
//! value.
#![no_main]

use gateway_init::boot::ovfenv::{is_iso9660, parse, OE_NS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let sector = &data[..data.len().min(2048)];
    if is_iso9660(sector) {
        assert_eq!(&sector[1..6], b"CD001");
    }
    let mut xml = String::from_utf8_lossy(data).into_owned();
    if let Some(inner) = xml.strip_prefix('\0') {
        xml = format!(
            "<Environment xmlns=\"{OE_NS}\" xmlns:oe=\"{OE_NS}\"><PropertySection>{inner}\
             </PropertySection></Environment>"
        );
    }
    let pairs = parse(&xml);
    assert!(pairs.len() <= xml.matches('<').count());
    let size: usize = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert!(
        size <= 16 * xml.len() + 1024,
        "{size} bytes of pairs from {}",
        xml.len()
    );
    for (key, value) in &pairs {
        assert!(!key.is_empty() && !value.is_empty());
        assert_eq!(value.trim(), value);
    }
});
