//! Checks the parser and the growth plan against util-linux's sfdisk: sfdisk
//! writes a table on a file, this crate reads it and grows it, and sfdisk
//! must then find the grown table valid. sfdisk is a build-time tool here,
//! never needed at run time.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use gateway_gpt::{head_len, parse, plan_grow_last, Guid, SECTOR};

const DISK_ID: &str = "01234567-89AB-CDEF-0123-456789ABCDEF";
const STATE_UUID: &str = "AABBCCDD-EEFF-0011-2233-445566778899";
const ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";

/// A temporary disk file removed when the test ends, pass or fail.
struct TempDisk(PathBuf);

impl TempDisk {
    fn new(name: &str, bytes: u64) -> TempDisk {
        let path = std::env::temp_dir().join(format!("gw-gpt-{}-{name}.img", std::process::id()));
        let f = File::create(&path).expect("create temp disk");
        f.set_len(bytes).expect("size temp disk");
        TempDisk(path)
    }
}

impl Drop for TempDisk {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn sfdisk(disk: &Path, args: &[&str], script: Option<&str>) -> String {
    let mut child = Command::new("sfdisk")
        .args(args)
        .arg(disk)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sfdisk");
    if let Some(script) = script {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(script.as_bytes())
            .expect("feed sfdisk");
    }
    let out = child.wait_with_output().expect("wait for sfdisk");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "sfdisk {args:?} failed: {text}");
    text
}

/// A 64 MiB disk: an 8 MiB ESP and a Linux partition to the end, as sfdisk
/// lays it out.
fn make_disk(name: &str) -> TempDisk {
    let disk = TempDisk::new(name, 64 << 20);
    let script = format!(
        "label: gpt\nlabel-id: {DISK_ID}\nfirst-lba: 2048\n\
         start=2048, size=16384, type={ESP}, uuid=11111111-2222-3333-4444-555555555555, name=\"boot\", attrs=\"LegacyBIOSBootable\"\n\
         start=18432, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid={STATE_UUID}, name=\"state\"\n"
    );
    sfdisk(
        &disk.0,
        &["-q", "--no-reread", "--no-tell-kernel"],
        Some(&script),
    );
    disk
}

fn read_head(path: &Path) -> Vec<u8> {
    let mut head = vec![0; head_len()];
    File::open(path)
        .expect("open disk")
        .read_exact(&mut head)
        .expect("read head");
    head
}

/// The `"key": number` values of sfdisk's JSON, in order (enough for these
/// checks without a JSON parser).
fn json_numbers(json: &str, key: &str) -> Vec<u64> {
    let needle = format!("\"{key}\":");
    json.lines()
        .filter_map(|l| l.trim().strip_prefix(&needle))
        .filter_map(|v| v.trim().trim_end_matches(',').parse().ok())
        .collect()
}

#[test]
fn parse_agrees_with_sfdisk() {
    let disk = make_disk("parse");
    let gpt = parse(&read_head(&disk.0)).expect("sfdisk's table parses");
    assert_eq!(gpt.disk_guid.to_string(), DISK_ID.to_lowercase());
    assert_eq!(gpt.disk_guid, DISK_ID.parse::<Guid>().unwrap());
    assert_eq!(gpt.alternate_lba, (64 << 20) / SECTOR - 1);
    assert_eq!(gpt.partitions.len(), 2);
    let boot = &gpt.partitions[0];
    assert_eq!(boot.number, 1);
    assert_eq!(boot.name, "boot");
    assert_eq!(boot.type_guid.to_string(), ESP.to_lowercase());
    assert_eq!(boot.attributes, 1 << 2, "LegacyBIOSBootable is bit 2");
    assert_eq!((boot.byte_offset(), boot.byte_len()), (1 << 20, 8 << 20));

    let json = sfdisk(&disk.0, &["--json"], None);
    assert!(
        json.contains(&format!("\"uuid\": \"{STATE_UUID}\"")),
        "{json}"
    );
    let state = &gpt.partitions[1];
    assert_eq!(state.unique_guid.to_string().to_uppercase(), STATE_UUID);
    assert_eq!(json_numbers(&json, "start"), vec![2048, state.first_lba]);
    assert_eq!(
        json_numbers(&json, "size"),
        vec![16384, state.last_lba - state.first_lba + 1]
    );
}

#[test]
fn grown_disk_is_valid_for_sfdisk() {
    let disk = make_disk("grow");
    let head = read_head(&disk.0);
    let before = parse(&head).expect("parses");
    assert!(plan_grow_last(&head, 64 << 20).expect("plan").is_none());

    // Grow by 100.5 MiB: the partition can end only at a whole MiB.
    let new_len: u64 = (164 << 20) + (512 << 10);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&disk.0)
        .expect("open disk");
    file.set_len(new_len).expect("grow disk");
    let unfixed = sfdisk(&disk.0, &["--verify"], None);
    assert!(!unfixed.contains("No errors detected"), "{unfixed}");

    let plan = plan_grow_last(&head, new_len)
        .expect("plan")
        .expect("the disk grew");
    assert_eq!(plan.partition, 2);
    assert_eq!(plan.old_last_lba, before.partitions[1].last_lba);
    let expected_end = (164 << 20) / SECTOR - 1;
    assert_eq!(plan.new_last_lba, expected_end);
    for (at, bytes) in &plan.writes {
        file.write_all_at(bytes, *at).expect("apply write");
    }
    drop(file);

    let verify = sfdisk(&disk.0, &["--verify"], None);
    assert!(verify.contains("No errors detected"), "{verify}");
    let json = sfdisk(&disk.0, &["--json"], None);
    let sizes = json_numbers(&json, "size");
    let starts = json_numbers(&json, "start");
    assert_eq!(starts[1] + sizes[1] - 1, expected_end, "{json}");
    assert_eq!(
        json_numbers(&json, "lastlba"),
        vec![new_len / SECTOR - 34],
        "{json}"
    );

    let after = parse(&read_head(&disk.0)).expect("grown table parses");
    assert_eq!(after.alternate_lba, new_len / SECTOR - 1);
    assert_eq!(after.partitions[1].last_lba, expected_end);
    assert_eq!(after.partitions[0], before.partitions[0]);
    assert!(plan_grow_last(&read_head(&disk.0), new_len)
        .expect("plan")
        .is_none());
}

#[test]
fn shrunk_disk_is_an_error() {
    let disk = make_disk("shrink");
    let err = plan_grow_last(&read_head(&disk.0), 32 << 20).unwrap_err();
    assert!(err.to_string().contains("smaller"), "{err}");
}
