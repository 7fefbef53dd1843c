//! The control API's front: what each request means. [`Appliance`]'s
//! [`Handler`] dispatches a request to its module here: the configuration
//! ([`config`]: get, set, keys, reset network), power and reset appliance
//! ([`power`]), the patch disk ([`disks`]), the appliance CA ([`ca`]), the
//! diagnostics report and status ([`diagnostics`]), the upstream capture
//! ([`capture`]), unit restarts ([`units`]), and the requests the management
//! agent answers, with the agent's own socket ([`agent`]). The state they
//! read and change is [`crate::state`]'s; the protocol is `gateway-control`'s.

pub mod agent;
pub mod ca;
pub mod capture;
pub mod config;
pub mod diagnostics;
pub mod disks;
pub mod power;
pub mod units;

use gateway_control::server::Handler;
use gateway_control::{Request, Response};

pub use agent::AgentControl;

use crate::pid1::signals;
use crate::state::Appliance;

impl Handler for Appliance {
    async fn handle(&self, request: Request) -> Response {
        let result = match request {
            Request::Status => return Response::ok(self.status()),
            Request::Get { keys } => return config::get(self, &keys),
            Request::Set { values } => config::set(self, values.into_iter().collect()).await,
            Request::Keys => Ok(config::keys()),
            Request::Reboot => Ok(power::power(self, signals::Request::Reboot)),
            Request::Poweroff => Ok(power::power(self, signals::Request::Poweroff)),
            Request::ResetAppliance => power::reset_appliance(self).await,
            Request::ResetNetwork => config::reset_network(self).await,
            Request::Logs {
                name,
                lines,
                search,
            } => diagnostics::logs(name, lines, search.as_deref()),
            Request::RestartUnit { name } => units::restart(self, &name).await,
            Request::Ping { target, count } => diagnostics::ping(&target, count).await,
            Request::Stats => Ok(Response::ok(self.stats.borrow().clone())),
            Request::FormatPatchDisk { erase } => disks::format_patch_disk(self, erase).await,
            Request::CaExport => ca::export().await,
            Request::CaInstall { chain, key } => ca::install(self, chain, key).await,
            request
            @ (Request::Register { .. } | Request::Platform { .. } | Request::ProxyTest) => {
                agent::forward(request).await
            }
            Request::DiagnosticsReport => diagnostics::report(self).await,
            Request::Diagnostics => Ok(diagnostics::status(self)),
            Request::CaptureStart { seconds } => capture::start(self, seconds),
            Request::CaptureStop => capture::stop(self).await,
        };
        result.unwrap_or_else(Response::error)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use gateway_config::{Config, Store};
    use gateway_control::protocol::{DiskStatus, SetResult, Status};
    use tokio::sync::mpsc;

    use super::*;
    use crate::disks::{self, patch};

    fn appliance(
        dir: &std::path::Path,
    ) -> (Arc<Appliance>, mpsc::UnboundedReceiver<signals::Request>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Appliance::new(Store::new(dir), Some(dir.to_owned()), Config::default(), tx),
            rx,
        )
    }

    fn set(values: &[(&str, &str)]) -> Request {
        Request::Set {
            values: values
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_agent_socket_answers_what_a_check_in_needs_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let (a, mut rx) = appliance(dir.path());
        let agent = AgentControl(a.clone());
        let r = agent.handle(set(&[("proxy.port", "3128")])).await;
        assert!(r.ok, "{r:?}");
        let r = agent.handle(set(&[("proxy.port", "22")])).await;
        assert_eq!(r.error.unwrap().key.as_deref(), Some("proxy.port"));
        for refused in [
            Request::Reboot,
            Request::Poweroff,
            Request::ResetAppliance,
            Request::ResetNetwork,
            Request::FormatPatchDisk { erase: true },
            Request::RestartUnit {
                name: "proxy".into(),
            },
        ] {
            let r = agent.handle(refused.clone()).await;
            assert_eq!(
                r.error.unwrap().message,
                "not available to the management agent",
                "{refused:?}"
            );
        }
        assert!(rx.try_recv().is_err(), "no power request reached PID 1");
        assert_eq!(a.config().proxy.port, 3128);
        // A compromised agent: SSH on, its own upstream, a hosts entry, the
        // network; each refused by name, with nothing of the request applied.
        for (key, value) in [
            ("ssh.enabled", "true"),
            ("upstream.proxy", "evil.example.com:3128"),
            ("hosts", "qagpublic.example.com=10.6.6.6"),
            ("net.mode", "unconfigured"),
        ] {
            let r = agent
                .handle(set(&[("proxy.port", "3129"), (key, value)]))
                .await;
            let e = r.error.unwrap();
            assert_eq!(e.key.as_deref(), Some(key));
            assert!(
                e.message.contains("not settable by the management agent"),
                "{}",
                e.message
            );
        }
        let c = a.config();
        assert_eq!(
            (c.proxy.port, c.ssh.enabled, c.upstream.proxy.is_none()),
            (3128, false, true)
        );
        assert!(c.hosts.is_empty());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_change_is_saved_published_and_described() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _rx) = appliance(dir.path());
        let mut follower = a.subscribe();
        let r = a
            .handle(set(&[("dns.servers", "10.0.0.53"), ("proxy.port", "1080")]))
            .await;
        assert!(r.ok, "{r:?}");
        let result: SetResult = serde_json::from_value(r.result.unwrap()).unwrap();
        assert_eq!(result.changed, ["dns.servers"], "proxy.port kept its value");
        assert_eq!(result.applied, ["resolv.conf rewritten"]);
        assert!(follower.has_changed().unwrap());
        assert_eq!(follower.borrow_and_update().dns.servers.len(), 1);
        let stored = Store::new(dir.path()).load().unwrap().unwrap();
        assert_eq!(stored, a.config());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_refused_change_saves_and_publishes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _rx) = appliance(dir.path());
        let follower = a.subscribe();
        let r = a
            .handle(set(&[("dns.servers", "10.0.0.53"), ("cache.port", "1080")]))
            .await;
        assert_eq!(r.error.unwrap().key.as_deref(), Some("cache.port"));
        assert!(!follower.has_changed().unwrap());
        assert!(Store::new(dir.path()).load().unwrap().is_none());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn patch_mode_is_refused_without_a_usable_patch_disk() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _rx) = appliance(dir.path());
        let r = a.handle(set(&[("patch.enabled", "true")])).await;
        let e = r.error.unwrap();
        assert_eq!(e.key.as_deref(), Some("patch.enabled"));
        assert!(e.message.starts_with("no patch disk"), "{e}");
        let disk = |gib: u64| DiskStatus {
            role: "patch".into(),
            device: "vdb".into(),
            size_bytes: gib << 30,
            mount: Some(patch::MOUNT_POINT.into()),
            ..Default::default()
        };
        a.disks.send_replace(vec![disk(2)]);
        let r = a
            .handle(set(&[
                ("patch.enabled", "true"),
                ("patch.min_disk_gib", "3"),
            ]))
            .await;
        assert!(r.error.unwrap().message.contains("too small: 2.0 GiB"));
        assert!(!a.config().patch.enabled, "nothing applied");
        let r = a
            .handle(set(&[
                ("patch.enabled", "true"),
                ("patch.min_disk_gib", "2"),
            ]))
            .await;
        assert!(r.ok, "{r:?}");
        assert!(a.config().patch.enabled);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_third_disk_is_noted_in_the_status_the_info_screen_shows() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _rx) = appliance(dir.path());
        let disk = |role: &str, device: &str| DiskStatus {
            role: role.into(),
            device: device.into(),
            size_bytes: 40 << 30,
            ..Default::default()
        };
        a.set_disks(disks::Found {
            statuses: vec![disk("boot", "vda"), disk("patch", "vdb")],
            patch: None,
        });
        let status = |r: Response| -> Status { serde_json::from_value(r.result.unwrap()).unwrap() };
        let before = status(a.handle(Request::Status).await);
        assert!(
            !before.notes.iter().any(|w| w.contains("disk")),
            "{:?}",
            before.notes
        );
        a.set_disks(disks::Found {
            statuses: vec![
                disk("boot", "vda"),
                disk("patch", "vdb"),
                disk("ignored", "vdc"),
            ],
            patch: None,
        });
        let after = status(a.handle(Request::Status).await);
        assert!(
            after.notes.contains(
                &"WARNING : Found a third disk vdc. The appliance uses one patch disk (vdb): the third disk is ignored".to_owned()
            ),
            "{:?}",
            after.notes
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn reset_network_returns_the_network_keys_to_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _rx) = appliance(dir.path());
        let r = a
            .handle(set(&[
                ("net.mode", "static"),
                ("net.address", "10.0.0.5/24"),
                ("proxy.port", "3128"),
            ]))
            .await;
        assert!(r.ok);
        let r = a.handle(Request::ResetNetwork).await;
        assert!(r.ok, "{r:?}");
        let c = a.config();
        assert_eq!(c.get("net.mode").unwrap(), "dhcp");
        assert_eq!(c.get("net.address").unwrap(), "");
        assert_eq!(c.proxy.port, 3128, "other keys stay");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn reset_appliance_erases_the_store_and_asks_for_a_reboot() {
        let dir = tempfile::tempdir().unwrap();
        let (a, mut rx) = appliance(dir.path());
        assert!(a.handle(set(&[("proxy.port", "3128")])).await.ok);
        assert!(a.handle(Request::ResetAppliance).await.ok);
        assert!(Store::new(dir.path()).load().unwrap().is_none());
        assert!(dir.path().join(crate::boot::factory_reset::MARKER).exists());
        assert_eq!(rx.recv().await, Some(signals::Request::Reboot));
    }
}
