//! Fuzzes the two readers of PEM certificates that take them from outside:
//! the configuration's (`gateway_config::rules::pem_certificates`: the
//! cache's origin CA and the management agent's CA bundle, from the control
//! API, the command line or the OVF environment) and the cache's CA
//! (`gateway_cache::ca::validate`: the chain and key an administrator
//! installs, and what the cache loads at start). The first byte picks what
//! the rest is: the chain or the key as text (the chain after a valid
//! generated certificate, the key beside it), the DER of a certificate or a
//! key (PKCS#8, SEC1, PKCS#1) armoured as PEM, or bytes written over the
//! generated certificate's DER at an offset; its high bit puts the text between the certificate
//! markers. Properties: no panic; every body the configuration
//! accepts is base64 that decodes (as the agent decodes it); a CA the cache
//! accepts gives a chain PEM that the configuration accepts, that decodes to
//! the same certificates, and that the cache accepts again with the key.
#![no_main]

use std::sync::OnceLock;
use std::time::SystemTime;

use base64::Engine;
use gateway_cache::ca;
use gateway_config::rules::pem_certificates;
use libfuzzer_sys::fuzz_target;

fn generated() -> &'static (String, String) {
    static CA: OnceLock<(String, String)> = OnceLock::new();
    CA.get_or_init(|| ca::generate(SystemTime::now()).expect("a CA is generated"))
}

fn armour(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        pem += std::str::from_utf8(line).unwrap();
        pem += "\n";
    }
    pem + &format!("-----END {label}-----\n")
}

fn config_bodies(text: &str) -> Option<Vec<Vec<u8>>> {
    let bodies = pem_certificates(text).ok()?;
    assert!(!bodies.is_empty());
    Some(
        bodies
            .iter()
            .map(|body| {
                base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .unwrap_or_else(|e| panic!("accepted body {body:?} is not base64: {e}"))
            })
            .collect(),
    )
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let mut text = String::from_utf8_lossy(rest).into_owned();
    if pick & 0x80 != 0 {
        text = format!("-----BEGIN CERTIFICATE-----{text}-----END CERTIFICATE-----");
    }
    let _ = config_bodies(&text);

    let (chain, key) = generated();
    let (chain, key) = match (pick & 0x7f) % 7 {
        0 => (format!("{chain}{text}"), key.clone()),
        1 => (chain.clone(), text),
        2 => (armour("CERTIFICATE", rest), key.clone()),
        3 => (chain.clone(), armour("PRIVATE KEY", rest)),
        4 => (chain.clone(), armour("EC PRIVATE KEY", rest)),
        5 => (chain.clone(), armour("RSA PRIVATE KEY", rest)),
        _ => {
            // The generated certificate, bytes overwritten from an offset.
            let Some((at, bytes)) = rest.split_first_chunk::<2>() else {
                return;
            };
            let mut der = config_bodies(chain).unwrap().remove(0);
            let at = usize::from(u16::from_be_bytes(*at)) % der.len();
            let end = (at + bytes.len()).min(der.len());
            der[at..end].copy_from_slice(&bytes[..end - at]);
            (armour("CERTIFICATE", &der), key.clone())
        }
    };
    let now = SystemTime::now();
    let Ok(ca) = ca::validate(&chain, &key, now) else {
        return;
    };
    let ders = config_bodies(ca.chain_pem()).expect("the configuration takes a CA's chain");
    let chain_ders: Vec<&[u8]> = ca.chain().iter().map(|c| c.as_ref()).collect();
    assert_eq!(
        ders.iter().map(Vec::as_slice).collect::<Vec<_>>(),
        chain_ders
    );
    let again = ca::validate(ca.chain_pem(), &key, now).expect("a CA's own chain validates");
    assert_eq!(again.chain_pem(), ca.chain_pem());
});
