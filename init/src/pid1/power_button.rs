//! The ACPI power button (what a hypervisor's "shut down guest" presses).
//!
//! With no acpid, the kernel's ACPI button driver reports the press as a
//! KEY_POWER event on an input device named "Power Button"; init reads it
//! from /dev/input/eventN.

use std::io::Read;
use std::path::{Path, PathBuf};

/// struct input_event on 64-bit Linux: timeval (16 bytes), type, code, value.
pub const EVENT_LEN: usize = 24;
const EV_KEY: u16 = 1;
const KEY_POWER: u16 = 116;

/// Whether these events hold a press (value 1) of KEY_POWER.
pub fn has_power_press(events: &[u8]) -> bool {
    events.chunks_exact(EVENT_LEN).any(|e| {
        let kind = u16::from_ne_bytes([e[16], e[17]]);
        let code = u16::from_ne_bytes([e[18], e[19]]);
        let value = i32::from_ne_bytes([e[20], e[21], e[22], e[23]]);
        kind == EV_KEY && code == KEY_POWER && value == 1
    })
}

/// The event devices whose name says they are a power button.
pub fn find(sys_class_input: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(sys_class_input) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("event"))
        .filter(|e| {
            std::fs::read_to_string(e.path().join("device/name"))
                .is_ok_and(|n| n.trim() == "Power Button")
        })
        .map(|e| Path::new("/dev/input").join(e.file_name()))
        .collect();
    found.sort();
    found
}

/// Watches each power button on its own thread and calls `on_press` for
/// every press. The devices are opened here, before returning: a press is
/// only queued for a reader that has the device open, so from the moment the
/// boot says "ready", no press is lost. Blocking reads on a thread keep this
/// independent of the async runtime.
pub fn watch(devices: Vec<PathBuf>, on_press: impl Fn() + Send + Clone + 'static) {
    for dev in devices {
        let mut f = match std::fs::File::open(&dev) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(
                    "cannot open {}: {e}: this power button is not watched",
                    dev.display()
                );
                continue;
            }
        };
        let on_press = on_press.clone();
        let spawned = std::thread::Builder::new()
            .name("power-button".into())
            .spawn(move || {
                let mut buf = [0u8; EVENT_LEN * 16];
                loop {
                    match f.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) if has_power_press(&buf[..n]) => on_press(),
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            tracing::warn!(
                                "read {}: {e}: the power button is no longer watched",
                                dev.display()
                            );
                            return;
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start the power button watcher: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: u16, code: u16, value: i32) -> Vec<u8> {
        let mut e = vec![0u8; 16];
        e.extend_from_slice(&kind.to_ne_bytes());
        e.extend_from_slice(&code.to_ne_bytes());
        e.extend_from_slice(&value.to_ne_bytes());
        e
    }

    #[test]
    fn press_is_found_among_other_events() {
        let mut buf = event(0, 0, 0); // EV_SYN
        buf.extend(event(EV_KEY, KEY_POWER, 1));
        buf.extend(event(0, 0, 0));
        assert!(has_power_press(&buf));
    }

    #[test]
    fn release_and_other_keys_are_not_a_press() {
        let mut buf = event(EV_KEY, KEY_POWER, 0);
        buf.extend(event(EV_KEY, 28, 1));
        buf.extend(event(2, KEY_POWER, 1));
        assert!(!has_power_press(&buf));
        assert!(!has_power_press(&buf[..EVENT_LEN - 1]));
    }

    #[test]
    fn finds_devices_by_name() {
        let t = tempfile::tempdir().unwrap();
        for (ev, name) in [
            ("event0", "AT Translated Set 2 keyboard"),
            ("event1", "Power Button"),
            ("event2", "Power Button"),
        ] {
            std::fs::create_dir_all(t.path().join(ev).join("device")).unwrap();
            std::fs::write(t.path().join(ev).join("device/name"), format!("{name}\n")).unwrap();
        }
        std::fs::create_dir_all(t.path().join("input3")).unwrap();
        assert_eq!(
            find(t.path()),
            [
                PathBuf::from("/dev/input/event1"),
                PathBuf::from("/dev/input/event2")
            ]
        );
    }
}
