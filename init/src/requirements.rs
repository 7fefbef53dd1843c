//! The VM against the appliance's documented minimums (docs/disks.md):
//! warnings for the Info screen, in the wording of QGS's, so an
//! administrator who knows that product reads them at once.

/// The least memory the appliance is documented to run with.
pub const MIN_RAM_MIB: u64 = 256;
/// The least boot disk: root A and B, the boot partition, and a state
/// partition with room for the logs' cap.
pub const MIN_DISK_GIB: u64 = 4;

/// The heading QGS shows above the warnings.
pub const MISMATCH: &str =
    "Requirements mismatch : This appliance does not meet the minimal requirements and may not function correctly.";
/// The line QGS closes the warnings with. The console's Info screen shows
/// it, and the heading, around the warnings of [`warnings`].
pub const REFER: &str = "Please refer to the CAMS setup instructions";

/// Memory as the VM was given it: the kernel's total lacks what it keeps
/// for itself, so it is rounded up to the 64 MiB steps hypervisors offer.
pub fn installed_mib(mem_total_bytes: u64) -> u64 {
    let mib = mem_total_bytes.div_ceil(1 << 20);
    mib.div_ceil(64) * 64
}

pub fn warnings(mem_total_bytes: u64, boot_disk_bytes: Option<u64>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(disk) = boot_disk_bytes {
        let gib = disk as f64 / (1u64 << 30) as f64;
        if disk < MIN_DISK_GIB << 30 {
            out.push(format!(
                "WARNING : Total disk space is {gib:.0} GB. Minimum disk space requirement of {MIN_DISK_GIB} GB is not matched"
            ));
        }
    }
    let installed = installed_mib(mem_total_bytes);
    if installed < MIN_RAM_MIB {
        out.push(format!(
            "WARNING : Found {installed} MB installed memory. Minimum RAM requirement of {MIN_RAM_MIB} MB is not matched"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_256_mib_vm_passes_though_the_kernel_reports_less() {
        // What a 256 MiB QEMU guest's MemTotal says.
        assert_eq!(installed_mib(226_000 << 10), 256);
        assert!(warnings(226_000 << 10, Some(40 << 30)).is_empty());
    }

    #[test]
    fn the_heading_and_the_closing_line_are_word_for_word_qgs() {
        // As the QGS user guide prints them under "Requirements mismatch";
        // the console shows these, so a change here is a change there.
        assert_eq!(
            MISMATCH,
            "Requirements mismatch : This appliance does not meet the minimal requirements and may not function correctly."
        );
        assert_eq!(REFER, "Please refer to the CAMS setup instructions");
    }

    #[test]
    fn each_shortfall_alone_gives_its_own_line() {
        assert_eq!(
            warnings(512 << 20, Some(3 << 30)),
            ["WARNING : Total disk space is 3 GB. Minimum disk space requirement of 4 GB is not matched"]
        );
        assert_eq!(
            warnings(192 << 20, None),
            ["WARNING : Found 192 MB installed memory. Minimum RAM requirement of 256 MB is not matched"]
        );
    }

    #[test]
    fn too_little_memory_and_disk_are_both_reported_in_qgs_words() {
        let w = warnings(100 << 20, Some(2 << 30));
        assert_eq!(
            w,
            [
                "WARNING : Total disk space is 2 GB. Minimum disk space requirement of 4 GB is not matched",
                "WARNING : Found 128 MB installed memory. Minimum RAM requirement of 256 MB is not matched",
            ]
        );
    }
}
