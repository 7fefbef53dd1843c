//! GUID partition tables, without I/O: this crate owns the on-disk GPT format
//! (protective MBR, primary and backup headers, entry arrays, their CRCs). It
//! parses the first sectors of a disk the caller has read, and plans the
//! writes that move the backup GPT to the end of a grown disk and extend the
//! last partition. It never opens a file or a device: the image builder feeds
//! it bytes of a disk image, PID 1 feeds it bytes of a block device, and both
//! carry out the writes themselves.

mod grow;
mod guid;
mod table;

pub use grow::{plan_grow_last, GrowPlan};
pub use guid::{Guid, GuidError};
pub use table::{head_len, parse, Gpt, GptError, Partition};

/// The logical sector size this crate works in. GPT on 4 KiB-sector disks
/// exists, but the appliance's virtual disks all expose 512-byte sectors.
pub const SECTOR: u64 = 512;

/// A hand-built disk for tests: this crate's, and the fuzz targets' (the
/// `testutil` feature), which mutate a valid table rather than hope random
/// bytes pass its CRCs.
#[cfg(any(test, feature = "testutil"))]
pub mod testutil;
