//! The proxy's settings file (`--config`), as init writes it from the
//! configuration store: the typed contract is
//! `gateway_unit_settings::ProxySettings` (JSON, unknown keys refused); its
//! reading as the running configuration ([`ToProxyConfig`], shared with the
//! cache) checks every value with an error naming its key. Re-read on
//! SIGHUP; a bad file leaves the running configuration untouched.

use std::path::Path;

use gateway_forward_proxy::config::ToProxyConfig;
pub use gateway_unit_settings::{ProxySettings, SettingsError, UpstreamSettings};

/// Reads and checks the settings file at `path`.
pub fn load(path: &Path) -> Result<ProxySettings, SettingsError> {
    gateway_unit_settings::load(path, parse)
}

/// Parses and checks settings text.
pub fn parse(text: &str) -> Result<ProxySettings, SettingsError> {
    let s = ProxySettings::parse(text)?;
    s.to_config()?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_forward_proxy::policy::Mode;

    #[test]
    fn a_resolv_conf_without_servers_leaves_the_hosts_map() {
        // An appliance whose network gave no DNS servers yet: the proxy
        // starts, with the hosts map alone.
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("resolv.conf");
        std::fs::write(&conf, "# no servers\n").unwrap();
        let text = format!(
            r#"{{"resolv_conf":{:?},"hosts":{{"a.example.com":"10.0.0.1"}}}}"#,
            conf
        );
        let s = parse(&text).unwrap();
        assert!(s.to_config().unwrap().resolver.is_mapped("a.example.com"));
    }

    /// The contract from the other side: what PID 1 writes from the
    /// configuration (its defaults, and every key the proxy reads) passes
    /// the proxy's checks.
    #[test]
    fn the_settings_pid1_writes_pass_the_checks() {
        use gateway_config::Config;
        let c = gateway_unit_settings::proxy::example_configuration();
        for c in [c, Config::default()] {
            let text = gateway_unit_settings::to_text(&ProxySettings::from_config(&c));
            parse(&text).unwrap().to_config().unwrap();
        }
    }

    #[test]
    fn an_empty_object_is_the_defaults() {
        let s = parse("{}").unwrap();
        assert_eq!(s.listen, "0.0.0.0:1080".parse().unwrap());
        let c = s.to_config().unwrap();
        assert_eq!(c.max_connections, 16_384);
        assert!(c.upstream.is_none());
    }

    #[test]
    fn a_full_file() {
        let s = parse(
            r#"{"listen": "127.0.0.1:3128", "allowed_domains": ["example.com:8443"],
                "hosts": {"Proxy.Corp": "10.0.0.5"}, "patch": true, "agent_networks": ["10.1.0.0/16"],
                "upstream": {"host": "proxy.corp", "port": 8080, "user": "gw", "password": "pw", "bypass": ["corp.example"]},
                "head_timeout_s": 5, "idle_timeout_s": 60, "max_connections": 100}"#,
        )
        .unwrap();
        let c = s.to_config().unwrap();
        assert_eq!(
            c.resolver.hosts().get("proxy.corp"),
            Some(&"10.0.0.5".parse().unwrap())
        );
        assert_eq!(
            c.upstream.as_ref().unwrap().authorization().as_deref(),
            Some("Basic Z3c6cHc=")
        );
        assert_eq!(c.policy.mode(), Mode::Patch);
        assert!(!format!("{s:?}").contains("\"pw\""), "{s:?}");
    }

    #[test]
    fn errors_name_the_key() {
        for (text, needle) in [
            (
                r#"{"allowed_domains": ["https://x.com"]}"#,
                "allowed_domains: ",
            ),
            (
                r#"{"listen": "0.0.0.0:0"}"#,
                "listen: the port must be 1-65535",
            ),
            (
                r#"{"idle_timeout_s": 0}"#,
                "idle_timeout_s: 0 is not between 1 and 86400 seconds",
            ),
            (
                r#"{"max_connections": 0}"#,
                "max_connections: must be at least 1",
            ),
            (
                r#"{"upstream": {"host": "p", "port": 3128, "password": "x"}}"#,
                "upstream.password: is set without upstream.user",
            ),
            (r#"{"listn": "0.0.0.0:1080"}"#, "unknown field `listn`"),
            (r#"{"hosts": {"a": "not-an-ip"}}"#, "invalid IP address"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
