//! The files under /run that the read-only root's /etc points to
//! (`/etc/hosts -> ../run/hosts`), rewritten atomically (the same writer as
//! resolv.conf's) whenever the keys they come from change, so every
//! program, ours or libc's, sees them.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use gateway_config::Config;
use tokio::sync::watch;
use tracing::{error, info};

pub const HOSTS: &str = "/run/hosts";

/// /etc/hosts: localhost, the appliance's own name, then the `hosts` map.
pub fn render_hosts(hostname: &str, map: &BTreeMap<String, Ipv4Addr>) -> String {
    let mut out =
        String::from("# Written by the appliance from the `hosts` setting; edits are lost.\n");
    out += "127.0.0.1\tlocalhost\n";
    if !hostname.is_empty() && hostname != "localhost" {
        out += &format!("127.0.1.1\t{hostname}\n");
    }
    for (name, addr) in map {
        out += &format!("{addr}\t{name}\n");
    }
    out
}

/// Keeps /run/hosts in step with the `hosts` key.
pub async fn follow_hosts(mut config: watch::Receiver<Config>) {
    let mut written: Option<String> = None;
    loop {
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        let text = render_hosts(&hostname, &config.borrow_and_update().hosts);
        if written.as_ref() != Some(&text) {
            match gateway_net::resolv::write_atomic(Path::new(HOSTS), &text) {
                Ok(()) => {
                    info!("hosts: {HOSTS} written");
                    written = Some(text);
                }
                Err(e) => error!("hosts: {HOSTS}: {e}"),
            }
        }
        if config.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lists_localhost_the_name_and_the_map() {
        let map = [("api.example.com".to_owned(), Ipv4Addr::new(10, 0, 0, 2))].into();
        let text = render_hosts("gateway", &map);
        assert!(
            text.contains("127.0.0.1\tlocalhost\n127.0.1.1\tgateway\n10.0.0.2\tapi.example.com\n"),
            "{text}"
        );
    }
}
