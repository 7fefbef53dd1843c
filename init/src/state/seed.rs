//! The configuration to boot with: the stored one, else (first boot) the
//! seed from the OVF environment and the kernel command line, saved at
//! once so that it applies only once. A stored file that cannot be read is
//! moved aside, and the boot goes on with the seed and the defaults.

use gateway_config::{key_info, Config, Seed, Store};
use tracing::{error, info, warn};

use crate::boot::cmdline::GatewayArgs;

/// `gateway.*` command-line words that are init's own, not configuration.
const INIT_ARGS: [&str; 2] = ["selftest", "selftest.ctl"];

/// The configuration to boot with: the stored one, else (first boot) the
/// seed, saved at once so that it applies only once. The seed is the OVF
/// environment's properties (`ovf_env`, asked only on a first boot: it may
/// mount a CD), then the kernel command line, which wins for a key both give.
pub fn load_or_seed(
    store: &Store,
    args: &GatewayArgs,
    ovf_env: impl FnOnce() -> Vec<(String, String)>,
) -> Config {
    match store.load() {
        Ok(Some(config)) => {
            info!("configuration: loaded {}", store.path().display());
            log_settings(&config);
            for (key, _) in args.0.iter().filter(|(k, _)| key_info(k).is_some()) {
                info!("configuration: gateway.{key} on the command line ignored (a configuration is stored; it seeds a first boot only)");
            }
            return config;
        }
        Ok(None) => info!("configuration: none stored, first boot"),
        Err(e) => {
            error!("configuration: {e}");
            match store.quarantine() {
                Ok(bad) => warn!(
                    "configuration: moved aside to {}; starting from the seed and defaults",
                    bad.display()
                ),
                Err(e) => error!("configuration: {e}"),
            }
        }
    }
    let ovf = ovf_env();
    if !ovf.is_empty() {
        info!(
            "configuration: {} settings from the OVF environment",
            ovf.len()
        );
    }
    let seed = Seed::from_pairs(
        ovf.iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(args.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
    );
    for key in &seed.applied {
        let value = seed.config.get(key).unwrap_or_default();
        info!("configuration: seeded {key}={value}");
    }
    for e in &seed.errors {
        error!("configuration: seed refused, default kept: {e}");
    }
    for other in seed
        .other
        .iter()
        .filter(|k| !INIT_ARGS.contains(&k.as_str()))
    {
        warn!("configuration: gateway.{other} on the command line is not a configuration key");
    }
    match store.save(&seed.config) {
        Ok(()) => info!("configuration: saved {}", store.path().display()),
        Err(e) => error!("configuration: {e}"),
    }
    seed.config
}

/// Logs the keys that differ from the defaults (secrets as placeholders),
/// so the console shows what the appliance runs with.
fn log_settings(config: &Config) {
    let defaults = Config::default();
    for key in defaults.changed_keys(config) {
        info!(
            "configuration: {key}={}",
            config.get(key).unwrap_or_default()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_applies_only_to_a_first_boot() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let args = GatewayArgs::parse("gateway.proxy.port=3128 gateway.selftest=orphans");
        assert_eq!(load_or_seed(&store, &args, Vec::new).proxy.port, 3128);
        let later = GatewayArgs::parse("gateway.proxy.port=4128");
        assert_eq!(load_or_seed(&store, &later, Vec::new).proxy.port, 3128);
        std::fs::write(store.path(), "not json").unwrap();
        let ovf = || {
            vec![
                ("proxy.port".to_owned(), "5128".to_owned()),
                ("cache.port".to_owned(), "9128".to_owned()),
            ]
        };
        // The command line wins over the OVF environment for a key both give.
        let c = load_or_seed(&Store::new(dir.path().join("other")), &later, ovf);
        assert_eq!((c.proxy.port, c.cache.port), (4128, 9128));
        assert_eq!(
            load_or_seed(&store, &later, Vec::new).proxy.port,
            4128,
            "a broken file is set aside"
        );
        assert!(dir.path().join("config.json.bad").exists());
    }
}
