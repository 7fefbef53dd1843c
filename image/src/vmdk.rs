//! VMDK sparse extents, after VMware's "Virtual Disk Format 5.0"
//! specification: the 512-byte sparse extent header, the embedded text
//! descriptor, and the stream-optimized layout that OVF packages carry
//! (vSphere refuses an OVA whose disk is not stream-optimized).
//!
//! A stream-optimized extent is written front to back, with no seeking:
//! header (grain directory "at end"), descriptor, then each non-zero grain
//! as a grain marker and its deflate (zlib) data, each grain table after its
//! grains behind a GT marker, the grain directory behind a GD marker, a
//! footer (the header again, now with the directory's offset) behind a
//! footer marker, and an end-of-stream marker. qemu-img 7.2 writes
//! stream-optimized extents with the directory at the front and no footer,
//! GT, GD or footer markers, so this module writes its own; `qemu-img`
//! still makes the monolithicSparse VMDK for users who create the VM
//! themselves, and [`check`] reads both.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use flate2::write::ZlibEncoder;
use flate2::Compression;
use thiserror::Error;

use crate::sparse;

/// One sector: every offset and size in a VMDK header counts these.
pub const SECTOR: u64 = 512;
/// "KDMV" read as a little-endian u32.
pub const MAGIC: u32 = 0x564d_444b;
/// The grain directory offset of a stream-optimized header: look in the footer.
pub const GD_AT_END: u64 = u64::MAX;
/// Flag bit 0: the newline-detection characters are valid.
pub const FLAG_VALID_NEWLINE_TEST: u32 = 1 << 0;
/// Flag bit 1: a redundant grain directory is present.
pub const FLAG_REDUNDANT_GD: u32 = 1 << 1;
/// Flag bit 16: grains are compressed.
pub const FLAG_COMPRESSED: u32 = 1 << 16;
/// Flag bit 17: grains and metadata are preceded by markers.
pub const FLAG_MARKERS: u32 = 1 << 17;
/// compressAlgorithm: none.
pub const COMPRESSION_NONE: u16 = 0;
/// compressAlgorithm: deflate (RFC 1951 in a zlib RFC 1950 stream).
pub const COMPRESSION_DEFLATE: u16 = 1;
/// Default grain: 128 sectors (64 KiB).
pub const GRAIN_SECTORS: u64 = 128;
/// Grain table entries per table: 512 (a table covers 32 MiB of 64 KiB grains).
pub const GTES_PER_GT: u32 = 512;

/// Metadata marker types.
pub const MARKER_EOS: u32 = 0;
pub const MARKER_GT: u32 = 1;
pub const MARKER_GD: u32 = 2;
pub const MARKER_FOOTER: u32 = 3;

/// Sectors reserved for the embedded descriptor (10 KiB, as qemu-img and
/// VMware's tools reserve).
const DESCRIPTOR_SECTORS: u64 = 20;
/// Header plus descriptor, rounded up to one grain.
const OVERHEAD_SECTORS: u64 = 128;

/// The sparse extent header (also the footer of a stream-optimized extent),
/// little-endian, 512 bytes on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SparseHeader {
    pub version: u32,
    pub flags: u32,
    /// Virtual size, in sectors.
    pub capacity: u64,
    /// Sectors per grain: a power of 2, at least 8.
    pub grain_size: u64,
    pub descriptor_offset: u64,
    pub descriptor_size: u64,
    pub num_gtes_per_gt: u32,
    pub rgd_offset: u64,
    pub gd_offset: u64,
    /// Sectors before the first grain.
    pub overhead: u64,
    pub unclean_shutdown: bool,
    pub compress_algorithm: u16,
}

impl SparseHeader {
    /// The header of a stream-optimized extent of `capacity` sectors.
    pub fn stream_optimized(capacity: u64, descriptor_size: u64) -> SparseHeader {
        SparseHeader {
            version: 3,
            flags: FLAG_VALID_NEWLINE_TEST | FLAG_COMPRESSED | FLAG_MARKERS,
            capacity,
            grain_size: GRAIN_SECTORS,
            descriptor_offset: 1,
            descriptor_size,
            num_gtes_per_gt: GTES_PER_GT,
            rgd_offset: 0,
            gd_offset: GD_AT_END,
            overhead: OVERHEAD_SECTORS,
            unclean_shutdown: false,
            compress_algorithm: COMPRESSION_DEFLATE,
        }
    }

    /// The on-disk bytes (spec: `SparseExtentHeader`, packed).
    pub fn to_bytes(&self) -> [u8; 512] {
        let mut b = [0u8; 512];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[4..8].copy_from_slice(&self.version.to_le_bytes());
        b[8..12].copy_from_slice(&self.flags.to_le_bytes());
        b[12..20].copy_from_slice(&self.capacity.to_le_bytes());
        b[20..28].copy_from_slice(&self.grain_size.to_le_bytes());
        b[28..36].copy_from_slice(&self.descriptor_offset.to_le_bytes());
        b[36..44].copy_from_slice(&self.descriptor_size.to_le_bytes());
        b[44..48].copy_from_slice(&self.num_gtes_per_gt.to_le_bytes());
        b[48..56].copy_from_slice(&self.rgd_offset.to_le_bytes());
        b[56..64].copy_from_slice(&self.gd_offset.to_le_bytes());
        b[64..72].copy_from_slice(&self.overhead.to_le_bytes());
        b[72] = self.unclean_shutdown as u8;
        // The newline-detection characters: a transfer that rewrote line
        // ends (FTP in text mode) shows here.
        b[73..77].copy_from_slice(b"\n \r\n");
        b[77..79].copy_from_slice(&self.compress_algorithm.to_le_bytes());
        b
    }

    /// Reads a header, checking the magic number and the newline test.
    pub fn parse(b: &[u8; 512]) -> Result<SparseHeader, VmdkError> {
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        if u32_at(0) != MAGIC {
            return Err(VmdkError::Header(format!(
                "magic number is {:#010x}, not \"KDMV\" ({MAGIC:#010x}): not a VMDK sparse extent",
                u32_at(0)
            )));
        }
        let h = SparseHeader {
            version: u32_at(4),
            flags: u32_at(8),
            capacity: u64_at(12),
            grain_size: u64_at(20),
            descriptor_offset: u64_at(28),
            descriptor_size: u64_at(36),
            num_gtes_per_gt: u32_at(44),
            rgd_offset: u64_at(48),
            gd_offset: u64_at(56),
            overhead: u64_at(64),
            unclean_shutdown: b[72] != 0,
            compress_algorithm: u16::from_le_bytes([b[77], b[78]]),
        };
        if h.flags & FLAG_VALID_NEWLINE_TEST != 0 && &b[73..77] != b"\n \r\n" {
            return Err(VmdkError::Header(
                "newline-detection characters altered: the file went through a text-mode transfer"
                    .into(),
            ));
        }
        Ok(h)
    }

    /// The header's own rules (spec: version 1 to 3, grain size a power of 2
    /// greater than 8 sectors, 512 GTEs per GT, compression only with
    /// markers).
    pub fn validate(&self) -> Result<(), VmdkError> {
        let bad = |m: String| Err(VmdkError::Header(m));
        if !(1..=3).contains(&self.version) {
            return bad(format!("version {} (expected 1, 2 or 3)", self.version));
        }
        if self.grain_size < 8 || !self.grain_size.is_power_of_two() {
            return bad(format!(
                "grain size {} sectors is not a power of 2 of at least 8",
                self.grain_size
            ));
        }
        if self.num_gtes_per_gt != GTES_PER_GT {
            return bad(format!(
                "{} grain table entries per table (expected {GTES_PER_GT})",
                self.num_gtes_per_gt
            ));
        }
        if self.capacity == 0 {
            return bad("capacity is 0".into());
        }
        if self.compressed() && self.compress_algorithm != COMPRESSION_DEFLATE {
            return bad(format!(
                "compressed grains with algorithm {} (only 1, deflate, exists)",
                self.compress_algorithm
            ));
        }
        if self.compressed() && self.flags & FLAG_MARKERS == 0 {
            return bad("compressed grains without markers".into());
        }
        if self.unclean_shutdown {
            return bad("uncleanShutdown is set: the extent was not closed".into());
        }
        Ok(())
    }

    pub fn compressed(&self) -> bool {
        self.flags & FLAG_COMPRESSED != 0
    }

    /// Entries in the grain directory: one per `num_gtes_per_gt` grains.
    pub fn gd_entries(&self) -> u64 {
        let grains = self.capacity.div_ceil(self.grain_size);
        grains.div_ceil(self.num_gtes_per_gt as u64)
    }
}

/// A stream-optimized marker sector: a grain marker (`lba`, compressed
/// `size`, then data) or, with size 0, a metadata marker (`lba` counts the
/// sectors of metadata that follow, `kind` says which).
fn metadata_marker(sectors: u64, kind: u32) -> [u8; 512] {
    let mut b = [0u8; 512];
    b[0..8].copy_from_slice(&sectors.to_le_bytes());
    b[12..16].copy_from_slice(&kind.to_le_bytes());
    b
}

/// What the descriptor says that matters for import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub create_type: String,
    /// `RW <sectors> SPARSE "<file>"` lines: (sectors, kind, file).
    pub extents: Vec<(u64, String, String)>,
    pub adapter_type: Option<String>,
    pub virtual_hw_version: Option<String>,
}

/// The embedded text descriptor of a single-extent sparse VMDK. The CID is
/// derived from the content so that two builds of the same disk match.
pub fn descriptor_text(
    create_type: &str,
    capacity_sectors: u64,
    file_name: &str,
    adapter: &str,
    cid: u32,
) -> String {
    // BIOS geometry for a SCSI disk: 255 heads, 63 sectors per track
    // (VMware's tools write the same for lsilogic).
    let cylinders = (capacity_sectors / (255 * 63)).min(65535);
    format!(
        "# Disk DescriptorFile\n\
         version=1\n\
         encoding=\"UTF-8\"\n\
         CID={cid:08x}\n\
         parentCID=ffffffff\n\
         createType=\"{create_type}\"\n\
         \n\
         # Extent description\n\
         RW {capacity_sectors} SPARSE \"{file_name}\"\n\
         \n\
         # The Disk Data Base\n\
         #DDB\n\
         \n\
         ddb.adapterType = \"{adapter}\"\n\
         ddb.geometry.cylinders = \"{cylinders}\"\n\
         ddb.geometry.heads = \"255\"\n\
         ddb.geometry.sectors = \"63\"\n\
         ddb.virtualHWVersion = \"4\"\n"
    )
}

/// Reads the fields of a descriptor (spec: "The Descriptor File").
pub fn parse_descriptor(text: &str) -> Result<Descriptor, VmdkError> {
    let mut d = Descriptor {
        create_type: String::new(),
        extents: Vec::new(),
        adapter_type: None,
        virtual_hw_version: None,
    };
    let unquote = |v: &str| v.trim().trim_matches('"').to_string();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line
            .strip_prefix("RW ")
            .or_else(|| line.strip_prefix("RDONLY "))
        {
            let mut parts = rest.splitn(3, ' ');
            let sectors = parts.next().and_then(|s| s.parse().ok());
            let (Some(sectors), Some(kind), Some(file)) = (sectors, parts.next(), parts.next())
            else {
                return Err(VmdkError::Descriptor(format!(
                    "extent line {line:?} is not `RW <sectors> <type> \"<file>\"`"
                )));
            };
            d.extents.push((
                sectors,
                kind.to_string(),
                unquote(file.split(' ').next().unwrap()),
            ));
        } else if let Some((key, value)) = line.split_once('=') {
            match key.trim() {
                "createType" => d.create_type = unquote(value),
                "ddb.adapterType" => d.adapter_type = Some(unquote(value)),
                "ddb.virtualHWVersion" => d.virtual_hw_version = Some(unquote(value)),
                _ => {}
            }
        }
    }
    if d.create_type.is_empty() {
        return Err(VmdkError::Descriptor("no createType".into()));
    }
    Ok(d)
}

/// What was written or found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmdkInfo {
    pub header: SparseHeader,
    pub descriptor: Descriptor,
    /// Virtual size in bytes.
    pub capacity: u64,
    /// Grains holding data.
    pub grains: u64,
    /// The file's size.
    pub file_size: u64,
}

#[derive(Debug, Error)]
pub enum VmdkError {
    #[error("VMDK header: {0}")]
    Header(String),
    #[error("VMDK descriptor: {0}")]
    Descriptor(String),
    #[error("VMDK stream footer: {0}")]
    Footer(String),
    #[error("VMDK grain directory: {0}")]
    GrainDirectory(String),
    #[error("VMDK grain table {table}: {message}")]
    GrainTable { table: u64, message: String },
    #[error("VMDK grain {grain} (at sector {sector}): {message}")]
    Grain {
        grain: u64,
        sector: u64,
        message: String,
    },
    #[error("VMDK source {size} bytes is not a multiple of the 64 KiB grain")]
    Unaligned { size: u64 },
    #[error("VMDK: {0}")]
    Io(#[from] io::Error),
}

/// Writes `src` (a raw disk image) as a stream-optimized VMDK to `out`,
/// whose extent line names `file_name` (its name inside the OVF package).
/// Holes and all-zero grains of the source are left out.
pub fn write_stream_optimized(
    src: &File,
    out: &mut File,
    file_name: &str,
    adapter: &str,
) -> Result<VmdkInfo, VmdkError> {
    let size = src.metadata()?.len();
    let grain_bytes = GRAIN_SECTORS * SECTOR;
    if size == 0 || size % grain_bytes != 0 {
        return Err(VmdkError::Unaligned { size });
    }
    let capacity = size / SECTOR;
    // Content ID: any 32-bit value that changes with the content; the
    // size and name are enough to tell builds apart, and stay reproducible.
    let cid = crc32(format!("{capacity}:{file_name}").as_bytes());
    let descriptor = descriptor_text("streamOptimized", capacity, file_name, adapter, cid);
    if descriptor.len() as u64 > DESCRIPTOR_SECTORS * SECTOR {
        return Err(VmdkError::Descriptor("longer than its 20 sectors".into()));
    }
    let header = SparseHeader::stream_optimized(capacity, DESCRIPTOR_SECTORS);

    let mut w = SectorWriter::new(out);
    w.write(&header.to_bytes())?;
    w.write(descriptor.as_bytes())?;
    w.pad_to(OVERHEAD_SECTORS)?;

    let gd_len = header.gd_entries();
    let mut gd = vec![0u32; gd_len as usize];
    let mut gt = vec![0u32; GTES_PER_GT as usize];
    let mut gt_index: Option<u64> = None;
    let mut grains = 0u64;
    let mut buf = vec![0u8; grain_bytes as usize];
    let mut compressed = Vec::with_capacity(grain_bytes as usize + 1024);

    for grain in sparse::data_blocks(src, grain_bytes)? {
        let table = grain / GTES_PER_GT as u64;
        if gt_index != Some(table) {
            // A table whose grains were all zeros is left out (GD entry 0).
            if let Some(t) = gt_index.filter(|_| gt.iter().any(|&e| e != 0)) {
                gd[t as usize] = w.write_grain_table(&gt)?;
                gt.iter_mut().for_each(|e| *e = 0);
            }
            gt_index = Some(table);
        }
        src.read_exact_at(&mut buf, grain * grain_bytes)?;
        if buf.iter().all(|&b| b == 0) {
            continue;
        }
        compressed.clear();
        let mut z = ZlibEncoder::new(&mut compressed, Compression::best());
        z.write_all(&buf)?;
        z.finish()?;
        let at = w.sector();
        let mut marker = Vec::with_capacity(12 + compressed.len());
        marker.extend_from_slice(&(grain * GRAIN_SECTORS).to_le_bytes());
        marker.extend_from_slice(&(compressed.len() as u32).to_le_bytes());
        marker.extend_from_slice(&compressed);
        w.write(&marker)?;
        w.pad_sector()?;
        gt[(grain % GTES_PER_GT as u64) as usize] = sector32(at)?;
        grains += 1;
    }
    if let Some(t) = gt_index.filter(|_| gt.iter().any(|&e| e != 0)) {
        gd[t as usize] = w.write_grain_table(&gt)?;
    }

    let gd_bytes: Vec<u8> = gd.iter().flat_map(|e| e.to_le_bytes()).collect();
    let gd_sectors = (gd_bytes.len() as u64).div_ceil(SECTOR);
    w.write(&metadata_marker(gd_sectors, MARKER_GD))?;
    let gd_offset = w.sector();
    w.write(&gd_bytes)?;
    w.pad_sector()?;

    let footer = SparseHeader {
        gd_offset,
        ..header
    };
    w.write(&metadata_marker(1, MARKER_FOOTER))?;
    w.write(&footer.to_bytes())?;
    w.write(&metadata_marker(0, MARKER_EOS))?;
    w.out.flush()?;
    Ok(VmdkInfo {
        header: footer,
        descriptor: parse_descriptor(&descriptor)?,
        capacity: size,
        grains,
        file_size: w.pos,
    })
}

/// A sector offset as a grain table or directory entry (32 bits: extents
/// up to 2 TiB of file).
fn sector32(sector: u64) -> Result<u32, VmdkError> {
    u32::try_from(sector).map_err(|_| VmdkError::Unaligned {
        size: sector * SECTOR,
    })
}

/// Sequential writer that counts bytes, for sector offsets.
struct SectorWriter<'a> {
    out: io::BufWriter<&'a mut File>,
    pos: u64,
}

impl<'a> SectorWriter<'a> {
    fn new(out: &'a mut File) -> Self {
        SectorWriter {
            out: io::BufWriter::with_capacity(1 << 20, out),
            pos: 0,
        }
    }

    fn write(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.pos += b.len() as u64;
        Ok(())
    }

    fn sector(&self) -> u64 {
        self.pos / SECTOR
    }

    fn pad_sector(&mut self) -> io::Result<()> {
        let pad = (SECTOR - self.pos % SECTOR) % SECTOR;
        self.write(&vec![0u8; pad as usize])
    }

    fn pad_to(&mut self, sector: u64) -> io::Result<()> {
        let pad = sector * SECTOR - self.pos;
        self.write(&vec![0u8; pad as usize])
    }

    /// A GT marker and the table; returns the table's sector.
    fn write_grain_table(&mut self, gt: &[u32]) -> Result<u32, VmdkError> {
        let bytes: Vec<u8> = gt.iter().flat_map(|e| e.to_le_bytes()).collect();
        self.write(&metadata_marker(bytes.len() as u64 / SECTOR, MARKER_GT))?;
        let at = self.sector();
        self.write(&bytes)?;
        sector32(at)
    }
}

/// CRC-32 (IEEE), for the descriptor's content ID.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// Checks a VMDK sparse extent file: header, descriptor, (stream-optimized)
/// footer and end-of-stream marker, every grain table entry, and every
/// compressed grain's marker and deflate data.
pub fn check(path: &Path) -> Result<VmdkInfo, VmdkError> {
    let mut f = File::open(path)?;
    let file_size = f.metadata()?.len();
    check_reader(&mut f, file_size)
}

/// [`check`] on an open file or a member of an archive.
pub fn check_reader<R: Read + Seek>(f: &mut R, file_size: u64) -> Result<VmdkInfo, VmdkError> {
    let read_at = |f: &mut R, offset: u64, buf: &mut [u8]| -> io::Result<()> {
        f.seek(SeekFrom::Start(offset))?;
        f.read_exact(buf)
    };
    if file_size < 4 * SECTOR {
        return Err(VmdkError::Header(format!(
            "file is {file_size} bytes: too short for a sparse extent"
        )));
    }
    let mut b = [0u8; 512];
    read_at(f, 0, &mut b)?;
    let mut header = SparseHeader::parse(&b)?;
    header.validate()?;
    let sectors = file_size.div_ceil(SECTOR);
    if header.descriptor_offset == 0
        || header.descriptor_offset + header.descriptor_size > sectors
        || header.descriptor_size > 2048
    {
        return Err(VmdkError::Header(format!(
            "descriptor at sector {} ({} sectors) lies outside the {sectors}-sector file",
            header.descriptor_offset, header.descriptor_size
        )));
    }
    let mut text = vec![0u8; (header.descriptor_size * SECTOR) as usize];
    read_at(f, header.descriptor_offset * SECTOR, &mut text)?;
    let end = text.iter().position(|&c| c == 0).unwrap_or(text.len());
    let text = std::str::from_utf8(&text[..end])
        .map_err(|_| VmdkError::Descriptor("not UTF-8 text".into()))?;
    let descriptor = parse_descriptor(text)?;
    check_descriptor(&descriptor, &header)?;

    if header.gd_offset == GD_AT_END {
        header = check_footer(f, file_size, &header)?;
    }
    let grains = check_grains(f, file_size, &header)?;
    Ok(VmdkInfo {
        capacity: header.capacity * SECTOR,
        header,
        descriptor,
        grains,
        file_size,
    })
}

fn check_descriptor(d: &Descriptor, h: &SparseHeader) -> Result<(), VmdkError> {
    let bad = |m: String| Err(VmdkError::Descriptor(m));
    let expected = match d.create_type.as_str() {
        "streamOptimized" => "SPARSE",
        "monolithicSparse" => "SPARSE",
        other => {
            return bad(format!(
                "createType {other:?} is not a single-file sparse VMDK"
            ))
        }
    };
    if d.create_type == "streamOptimized" && !(h.compressed() && h.flags & FLAG_MARKERS != 0) {
        return bad(
            "createType streamOptimized, but the header has no compressed grains or markers".into(),
        );
    }
    match d.extents.as_slice() {
        [(sectors, kind, _)] if kind == expected && *sectors == h.capacity => {}
        [(sectors, kind, _)] => {
            return bad(format!(
                "extent `{kind}` of {sectors} sectors, but the header's capacity is {} sectors",
                h.capacity
            ))
        }
        other => return bad(format!("{} extent lines (expected 1)", other.len())),
    }
    match d.adapter_type.as_deref() {
        Some("ide" | "buslogic" | "lsilogic" | "legacyESX") => {}
        Some(other) => return bad(format!("ddb.adapterType {other:?} is not one VMware knows")),
        None => return bad("no ddb.adapterType".into()),
    }
    if d.virtual_hw_version.is_none() {
        return bad("no ddb.virtualHWVersion".into());
    }
    Ok(())
}

/// A stream-optimized extent ends with a footer marker, the footer (the
/// header with the real grain directory offset) and an end-of-stream marker.
fn check_footer<R: Read + Seek>(
    f: &mut R,
    file_size: u64,
    header: &SparseHeader,
) -> Result<SparseHeader, VmdkError> {
    if !file_size.is_multiple_of(SECTOR) {
        return Err(VmdkError::Footer(format!(
            "file size {file_size} is not a whole number of sectors"
        )));
    }
    let mut tail = [0u8; 1536];
    f.seek(SeekFrom::Start(file_size - 1536))?;
    f.read_exact(&mut tail)?;
    let marker: &[u8; 512] = tail[0..512].try_into().unwrap();
    if marker != &metadata_marker(1, MARKER_FOOTER) {
        return Err(VmdkError::Footer(
            "no footer marker 1536 bytes before the end (truncated download?)".into(),
        ));
    }
    if tail[1024..] != [0u8; 512] {
        return Err(VmdkError::Footer(
            "no end-of-stream marker in the last sector".into(),
        ));
    }
    let footer = SparseHeader::parse(tail[512..1024].try_into().unwrap())
        .map_err(|e| VmdkError::Footer(e.to_string()))?;
    if footer.gd_offset == GD_AT_END || footer.gd_offset == 0 {
        return Err(VmdkError::Footer(
            "the footer does not give the grain directory's offset".into(),
        ));
    }
    if (SparseHeader {
        gd_offset: header.gd_offset,
        ..footer
    }) != *header
    {
        return Err(VmdkError::Footer(format!(
            "differs from the header in more than the directory offset: {footer:?} vs {header:?}"
        )));
    }
    Ok(footer)
}

/// Walks the grain directory and tables; with markers, checks that each
/// grain's marker names its own LBA and that its data inflates to a grain.
fn check_grains<R: Read + Seek>(
    f: &mut R,
    file_size: u64,
    h: &SparseHeader,
) -> Result<u64, VmdkError> {
    let sectors = file_size.div_ceil(SECTOR);
    let entries = h.gd_entries();
    let gd_bytes = entries * 4;
    if h.gd_offset == 0 || h.gd_offset + gd_bytes.div_ceil(SECTOR) > sectors {
        return Err(VmdkError::GrainDirectory(format!(
            "{entries} entries at sector {} lie outside the {sectors}-sector file",
            h.gd_offset
        )));
    }
    let mut gd = vec![0u8; gd_bytes as usize];
    f.seek(SeekFrom::Start(h.gd_offset * SECTOR))?;
    f.read_exact(&mut gd)?;
    let grain_bytes = h.grain_size * SECTOR;
    let gt_bytes = h.num_gtes_per_gt as u64 * 4;
    let total_grains = h.capacity.div_ceil(h.grain_size);
    let mut grains = 0;
    let mut gt = vec![0u8; gt_bytes as usize];
    let mut data = Vec::new();
    let mut inflated = Vec::with_capacity(grain_bytes as usize);
    for (table, e) in gd.chunks_exact(4).enumerate() {
        let table = table as u64;
        let gt_sector = u32::from_le_bytes(e.try_into().unwrap()) as u64;
        if gt_sector == 0 {
            continue;
        }
        if gt_sector < h.overhead.min(h.descriptor_offset + h.descriptor_size)
            || gt_sector + gt_bytes.div_ceil(SECTOR) > sectors
        {
            return Err(VmdkError::GrainTable {
                table,
                message: format!("at sector {gt_sector}, outside the file"),
            });
        }
        f.seek(SeekFrom::Start(gt_sector * SECTOR))?;
        f.read_exact(&mut gt)?;
        for (i, e) in gt.chunks_exact(4).enumerate() {
            let grain = table * h.num_gtes_per_gt as u64 + i as u64;
            let sector = u32::from_le_bytes(e.try_into().unwrap()) as u64;
            // 0: not allocated (reads as zeros); 1: a zeroed grain.
            if sector <= 1 {
                continue;
            }
            let bad = |message: String| VmdkError::Grain {
                grain,
                sector,
                message,
            };
            if grain >= total_grains {
                return Err(bad("beyond the disk's capacity".into()));
            }
            if sector < h.overhead {
                return Err(bad(format!("inside the {}-sector header area", h.overhead)));
            }
            if !h.compressed() {
                if sector + h.grain_size > sectors {
                    return Err(bad("outside the file".into()));
                }
                grains += 1;
                continue;
            }
            let mut m = [0u8; 12];
            if sector * SECTOR + 12 > file_size {
                return Err(bad("marker outside the file".into()));
            }
            f.seek(SeekFrom::Start(sector * SECTOR))?;
            f.read_exact(&mut m)?;
            let lba = u64::from_le_bytes(m[0..8].try_into().unwrap());
            let size = u32::from_le_bytes(m[8..12].try_into().unwrap()) as u64;
            if lba != grain * h.grain_size {
                return Err(bad(format!(
                    "marker says LBA {lba}, the grain table says {}",
                    grain * h.grain_size
                )));
            }
            if size == 0 || sector * SECTOR + 12 + size > file_size || size > 2 * grain_bytes {
                return Err(bad(format!("compressed size {size} is impossible here")));
            }
            data.resize(size as usize, 0);
            f.read_exact(&mut data)?;
            inflated.clear();
            flate2::read::ZlibDecoder::new(data.as_slice())
                .take(grain_bytes + 1)
                .read_to_end(&mut inflated)
                .map_err(|e| bad(format!("deflate data is corrupt: {e}")))?;
            let want = grain_bytes.min((h.capacity - lba) * SECTOR);
            if inflated.len() as u64 != want {
                return Err(bad(format!(
                    "inflates to {} bytes, not {want}",
                    inflated.len()
                )));
            }
            grains += 1;
        }
    }
    Ok(grains)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_matches_the_spec() {
        let h = SparseHeader::stream_optimized(83886080, 20);
        let b = h.to_bytes();
        assert_eq!(&b[0..4], b"KDMV");
        assert_eq!(u32::from_le_bytes(b[4..8].try_into().unwrap()), 3);
        // validNewLineDetection | compressed grains | markers
        assert_eq!(
            u32::from_le_bytes(b[8..12].try_into().unwrap()),
            0x0003_0001
        );
        assert_eq!(u64::from_le_bytes(b[12..20].try_into().unwrap()), 83886080);
        assert_eq!(u64::from_le_bytes(b[20..28].try_into().unwrap()), 128);
        assert_eq!(u64::from_le_bytes(b[28..36].try_into().unwrap()), 1);
        assert_eq!(u64::from_le_bytes(b[36..44].try_into().unwrap()), 20);
        assert_eq!(u32::from_le_bytes(b[44..48].try_into().unwrap()), 512);
        assert_eq!(u64::from_le_bytes(b[48..56].try_into().unwrap()), 0);
        assert_eq!(&b[56..64], &[0xff; 8], "GD_AT_END");
        assert_eq!(u64::from_le_bytes(b[64..72].try_into().unwrap()), 128);
        assert_eq!(b[72], 0);
        assert_eq!(&b[73..77], b"\n \r\n");
        assert_eq!(u16::from_le_bytes([b[77], b[78]]), 1, "deflate");
        assert!(b[79..].iter().all(|&x| x == 0), "433 bytes of padding");
        assert_eq!(SparseHeader::parse(&b).unwrap(), h);
        // 40 GiB: 640 tables of 512 grains of 64 KiB... 1280 for 40 GiB.
        assert_eq!(h.gd_entries(), 1280);
    }

    #[test]
    fn header_checks() {
        let mut b = SparseHeader::stream_optimized(2048, 20).to_bytes();
        b[0] = b'X';
        assert!(
            matches!(SparseHeader::parse(&b), Err(VmdkError::Header(m)) if m.contains("magic"))
        );
        let mut b = SparseHeader::stream_optimized(2048, 20).to_bytes();
        b[75] = b'\n'; // "\r\n" became "\n\n": a text-mode transfer
        assert!(SparseHeader::parse(&b).is_err());
        for (h, what) in [
            (
                SparseHeader {
                    grain_size: 100,
                    ..SparseHeader::stream_optimized(2048, 20)
                },
                "power of 2",
            ),
            (
                SparseHeader {
                    version: 4,
                    ..SparseHeader::stream_optimized(2048, 20)
                },
                "version",
            ),
            (
                SparseHeader {
                    flags: FLAG_COMPRESSED,
                    ..SparseHeader::stream_optimized(2048, 20)
                },
                "markers",
            ),
        ] {
            let e = h.validate().unwrap_err().to_string();
            assert!(e.contains(what), "{e}");
        }
    }

    #[test]
    fn descriptor_round_trip() {
        let text = descriptor_text("streamOptimized", 83886080, "disk1.vmdk", "lsilogic", 0xabc);
        assert!(text.contains("CID=00000abc\n"));
        assert!(text.contains("ddb.geometry.cylinders = \"5221\""));
        let d = parse_descriptor(&text).unwrap();
        assert_eq!(d.create_type, "streamOptimized");
        assert_eq!(
            d.extents,
            vec![(83886080, "SPARSE".into(), "disk1.vmdk".into())]
        );
        assert_eq!(d.adapter_type.as_deref(), Some("lsilogic"));
        let h = SparseHeader::stream_optimized(83886080, 20);
        check_descriptor(&d, &h).unwrap();
        let small = SparseHeader {
            capacity: 2048,
            ..h
        };
        let e = check_descriptor(&d, &small).unwrap_err().to_string();
        assert!(e.contains("capacity"), "{e}");
    }

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    fn raw_with_data(dir: &Path) -> File {
        let src = File::create_new(dir.join("src.raw")).unwrap();
        src.set_len(96 << 20).unwrap();
        src.write_all_at(b"boot sector", 0).unwrap();
        src.write_all_at(&[0x5a; 200_000], 40 << 20).unwrap();
        src.write_all_at(b"last", (96 << 20) - 4).unwrap();
        // A data extent of zeros: read, but no grain is written for it.
        src.write_all_at(&[0u8; 65536], 70 << 20).unwrap();
        src
    }

    #[test]
    fn stream_optimized_layout() {
        let t = tempfile::tempdir().unwrap();
        let src = raw_with_data(t.path());
        let mut out = File::create_new(t.path().join("d.vmdk")).unwrap();
        let info = write_stream_optimized(&src, &mut out, "d.vmdk", "lsilogic").unwrap();
        // grain 0; grains 640-643 (200,000 bytes from 40 MiB); the last grain
        assert_eq!(info.grains, 1 + 4 + 1);
        let bytes = std::fs::read(t.path().join("d.vmdk")).unwrap();
        assert_eq!(bytes.len() as u64, info.file_size);
        assert_eq!(bytes.len() % 512, 0);
        // The first grain marker follows the 128-sector overhead, LBA 0.
        assert_eq!(&bytes[65536..65544], &0u64.to_le_bytes());
        // The stream ends: footer marker, footer, EOS marker.
        let n = bytes.len();
        assert_eq!(
            &bytes[n - 1536..n - 1024],
            &metadata_marker(1, MARKER_FOOTER)
        );
        assert_eq!(&bytes[n - 1024..n - 1020], b"KDMV");
        assert!(bytes[n - 512..].iter().all(|&b| b == 0));
        // GD marker sector right before the GD the footer points to.
        let footer = SparseHeader::parse(bytes[n - 1024..n - 512].try_into().unwrap()).unwrap();
        let gd = footer.gd_offset as usize * 512;
        assert_eq!(&bytes[gd - 512..gd], &metadata_marker(1, MARKER_GD));
        // Tables 0, 1 and 2 (32 MiB each), each written after its grains.
        let entries: Vec<u32> = bytes[gd..gd + 12]
            .chunks(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert!(entries.iter().all(|&e| e > 128), "{entries:?}");
        let gt_markers = bytes
            .chunks(512)
            .filter(|c| *c == metadata_marker(4, MARKER_GT))
            .count();
        assert_eq!(gt_markers, 3);
        let checked = check(&t.path().join("d.vmdk")).unwrap();
        assert_eq!(checked.grains, 6);
        assert_eq!(checked.capacity, 96 << 20);
    }

    #[test]
    fn a_corrupt_grain_is_found() {
        let t = tempfile::tempdir().unwrap();
        let src = raw_with_data(t.path());
        let path = t.path().join("d.vmdk");
        let mut out = File::create_new(&path).unwrap();
        write_stream_optimized(&src, &mut out, "d.vmdk", "lsilogic").unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        // Inside the first grain's deflate data.
        f.write_all_at(&[0xff, 0xff, 0xff], 65536 + 20).unwrap();
        let e = check(&path).unwrap_err().to_string();
        assert!(e.contains("grain 0"), "{e}");
    }

    #[test]
    fn a_truncated_stream_is_found() {
        let t = tempfile::tempdir().unwrap();
        let src = raw_with_data(t.path());
        let path = t.path().join("d.vmdk");
        let mut out = File::create_new(&path).unwrap();
        let info = write_stream_optimized(&src, &mut out, "d.vmdk", "lsilogic").unwrap();
        out.set_len(info.file_size - 512).unwrap();
        let e = check(&path).unwrap_err().to_string();
        assert!(e.contains("footer"), "{e}");
    }
}
