//! The menu tree, as QGS lays it out: Registration, System, Info,
//! Diagnostics, Commands, and what each entry opens.

use gateway_control::protocol::Status;

use crate::form::FormKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MenuId {
    Main,
    System,
    Network,
    Diagnostics,
    Commands,
    /// Which log to read: the units', init's, the kernel's.
    LogPick,
}

/// A question asked before an action that cannot be taken back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmKind {
    Reboot,
    Shutdown,
    ResetAppliance,
    ResetNetwork,
    RestartUnit(String),
    /// A new diagnostics report replaces the one waiting for download.
    ReplaceReport,
}

/// Where an entry leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Go {
    Menu(MenuId),
    NetMode,
    Form(FormKind),
    Ssh,
    Info,
    Units,
    Log(String),
    Stats,
    /// The appliance CA agents import for the cache port.
    Ca,
    /// The health of each platform service URL.
    Connectivity,
    /// The first platform URL through the upstream proxy, step by step.
    ProxyTest,
    /// The diagnostics report for support: the one waiting, a new one.
    Report,
    /// The upstream packet capture (PCAP) that goes into the report.
    Capture,
    Confirm(ConfirmKind),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub tag: String,
    pub help: String,
    pub go: Go,
}

fn item(tag: &str, help: &str, go: Go) -> Item {
    Item {
        tag: tag.to_owned(),
        help: help.to_owned(),
        go,
    }
}

impl MenuId {
    pub fn title(self) -> &'static str {
        match self {
            MenuId::Main => "Configuration",
            MenuId::System => "System Configuration",
            MenuId::Network => "Network Configuration",
            MenuId::Diagnostics => "Diagnostics",
            MenuId::Commands => "Commands",
            MenuId::LogPick => "Logs",
        }
    }

    /// The main menu is the root: it has no Back.
    pub fn has_back(self) -> bool {
        self != MenuId::Main
    }

    pub fn items(self, status: Option<&Status>) -> Vec<Item> {
        match self {
            MenuId::Main => vec![
                item(
                    "Registration",
                    "Register the Appliance with the platform",
                    Go::Form(FormKind::Register),
                ),
                item("System", "System Settings", Go::Menu(MenuId::System)),
                item("Info", "General Information", Go::Info),
                item("Diagnostics", "Information", Go::Menu(MenuId::Diagnostics)),
                item("Commands", "Various commands", Go::Menu(MenuId::Commands)),
            ],
            MenuId::System => vec![
                item("Network", "Network Settings", Go::Menu(MenuId::Network)),
                item("POD Suffix", "Platform URL Suffix", Go::Form(FormKind::Pod)),
                item("Time", "System Time Settings", Go::Form(FormKind::Time)),
                item("Disable SSH", "Disable SSH", Go::Ssh),
                item("Certificate", "Appliance CA for the cache port", Go::Ca),
            ],
            MenuId::Network => vec![
                item(
                    "First",
                    "First Network Interface Settings (eth0)",
                    Go::NetMode,
                ),
                item("DNS", "DNS Settings", Go::Form(FormKind::Dns)),
                item("Proxy", "Proxy Server", Go::Form(FormKind::Proxy)),
            ],
            MenuId::Diagnostics => vec![
                item("Units", "Services units", Go::Units),
                item("Logs", "Logs", Go::Menu(MenuId::LogPick)),
                item("Stats", "Stats", Go::Stats),
                item(
                    "Proxy",
                    "Test a connection through the upstream proxy",
                    Go::ProxyTest,
                ),
                item(
                    "Connectivity",
                    "Health of the platform services",
                    Go::Connectivity,
                ),
                item("Report", "Diagnostics report", Go::Report),
                item("Capture", "Generate upstream PCAP file", Go::Capture),
            ],
            MenuId::Commands => vec![
                item("Ping", "Perform IPv4 Ping", Go::Form(FormKind::Ping)),
                item("Reboot", "Reboot", Go::Confirm(ConfirmKind::Reboot)),
                item("Shutdown", "Shutdown", Go::Confirm(ConfirmKind::Shutdown)),
                item(
                    "Reset",
                    "Reset appliance",
                    Go::Confirm(ConfirmKind::ResetAppliance),
                ),
                item(
                    "Reset network",
                    "Reset network interface",
                    Go::Confirm(ConfirmKind::ResetNetwork),
                ),
            ],
            MenuId::LogPick => {
                let mut items: Vec<Item> = status
                    .map(|s| s.units.as_slice())
                    .unwrap_or_default()
                    .iter()
                    .map(|u| item(&u.name, "Unit output", Go::Log(u.name.clone())))
                    .collect();
                items.push(item(
                    "init",
                    "The appliance's own messages",
                    Go::Log("init".into()),
                ));
                items.push(item("kernel", "Kernel messages", Go::Log("kernel".into())));
                items
            }
        }
    }
}

impl ConfirmKind {
    pub fn title(&self) -> String {
        match self {
            ConfirmKind::Reboot => "Reboot".into(),
            ConfirmKind::Shutdown => "Shutdown".into(),
            ConfirmKind::ResetAppliance => "Reset appliance".into(),
            ConfirmKind::ResetNetwork => "Reset network interface".into(),
            ConfirmKind::RestartUnit(name) => format!("Restart {name}"),
            ConfirmKind::ReplaceReport => "Diagnostics report".into(),
        }
    }

    pub fn question(&self) -> Vec<String> {
        let lines: &[&str] = match self {
            ConfirmKind::Reboot => &["Reboot the appliance now?"],
            ConfirmKind::Shutdown => &[
                "Shut the appliance down now?",
                "",
                "It stays off until it is powered on from the hypervisor.",
            ],
            ConfirmKind::ResetAppliance => &[
                "Reset appliance?",
                "",
                "Warning : this action will reset appliance to its original state.",
                "All configuration and logs are deleted (network, DNS, time,",
                "proxy, POD, registration, appliance CA) and the appliance",
                "reboots as on its first boot. The patch disk is kept.",
                "",
                "Do you want to continue ?",
            ],
            ConfirmKind::ResetNetwork => &[
                "Reset network interface?",
                "",
                "eth0 returns to DHCP; the static address, gateway, DNS servers",
                "and search domain are cleared. Other settings are kept.",
            ],
            ConfirmKind::RestartUnit(name) => {
                return vec![format!("Restart the unit {name} now?")];
            }
            ConfirmKind::ReplaceReport => &[
                "A report is waiting for download.",
                "",
                "A new report replaces it: its file is deleted and its",
                "password stops working. Make a new report?",
            ],
        };
        lines.iter().map(|s| (*s).to_owned()).collect()
    }
}
