//! The first-boot seed: `gateway.<key>=<value>` words of the kernel command
//! line make the first configuration, so that a deployment tool (an OVF
//! property, a `-append`) configures the appliance without its console.
//!
//! A seed is best effort: a bad value is reported and left at its default,
//! and the rest of the seed still applies, because the alternative (no
//! configuration at all) leaves the appliance no better off.

use crate::keys::key_info;
use crate::rules::ConfigError;
use crate::schema::Config;

/// What a seed produced.
#[derive(Debug, Default)]
pub struct Seed {
    pub config: Config,
    /// The keys that were applied.
    pub applied: Vec<String>,
    /// Values refused; their keys kept their defaults.
    pub errors: Vec<ConfigError>,
    /// `gateway.*` words that are not configuration keys (init's own
    /// switches, or typos): the caller decides.
    pub other: Vec<String>,
}

impl Seed {
    /// Builds the first configuration from `(key, value)` pairs, keys
    /// without the `gateway.` prefix.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Seed {
        let mut seed = Seed::default();
        let mut config = Config::default();
        for (key, value) in pairs {
            if key_info(key).is_none() {
                seed.other.push(key.to_owned());
                continue;
            }
            match config.set(key, value) {
                // A key given twice (OVF environment, then command line):
                // the later value stands, listed once.
                Ok(()) if seed.applied.iter().any(|k| k == key) => {}
                Ok(()) => seed.applied.push(key.to_owned()),
                Err(e) => seed.errors.push(e),
            }
        }
        // Repair cross-key errors by resetting the key each error names,
        // once per key; the error says which key that is.
        for _ in 0..seed.applied.len() + 1 {
            let Err(e) = config.validate() else { break };
            if config.set(&e.key, "").is_err() {
                break;
            }
            seed.applied.retain(|k| *k != e.key);
            seed.errors.push(e);
        }
        if let Err(e) = config.validate() {
            seed.errors.push(e);
            seed.applied.clear();
            config = Config::default();
        }
        seed.config = config;
        seed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::NetMode;

    #[test]
    fn a_static_seed_configures_the_network() {
        let seed = Seed::from_pairs([
            ("net.mode", "static"),
            ("net.address", "10.0.2.50/24"),
            ("net.gateway", "10.0.2.2"),
            ("dns.servers", "10.0.2.3"),
            ("hosts", "api.example.com=10.0.2.2"),
            ("selftest", "orphans"),
        ]);
        assert!(seed.errors.is_empty(), "{:?}", seed.errors);
        assert_eq!(seed.other, ["selftest"]);
        assert_eq!(seed.config.net.mode, NetMode::Static);
        assert_eq!(seed.config.get("net.address").unwrap(), "10.0.2.50/24");
        assert_eq!(seed.applied.len(), 5);
    }

    #[test]
    fn bad_values_keep_their_defaults_and_the_rest_applies() {
        let seed = Seed::from_pairs([
            ("proxy.port", "22"),
            ("net.mode", "static"),
            ("ntp.servers", "10.0.2.2"),
            ("net.gateway", "nope"),
        ]);
        let keys: Vec<_> = seed.errors.iter().map(|e| e.key.as_str()).collect();
        assert!(keys.contains(&"net.gateway"), "{keys:?}");
        assert!(keys.contains(&"proxy.port"), "{keys:?}");
        // Static without an address falls back to DHCP.
        assert!(keys.contains(&"net.mode"), "{keys:?}");
        assert_eq!(seed.config.net.mode, NetMode::Dhcp);
        assert_eq!(seed.config.proxy.port, 1080);
        assert_eq!(seed.config.ntp.servers, ["10.0.2.2"]);
        seed.config.validate().unwrap();
    }
}
