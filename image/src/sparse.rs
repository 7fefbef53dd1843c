//! Copying a filesystem image into the disk image without filling its holes:
//! only the data extents of the source are read (SEEK_DATA / SEEK_HOLE), and
//! of those only the 64 KiB blocks that are not all zeros are written. A
//! 40 GiB disk then costs only the few megabytes its filesystems use.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use nix::errno::Errno;
use nix::unistd::{lseek, Whence};

/// The copy granularity: large enough to be fast, small enough that a
/// mostly empty filesystem stays mostly holes.
pub const BLOCK: usize = 64 * 1024;

/// Copies all of `src` into `dst` at byte `offset`, leaving zero blocks
/// unwritten (`dst` must read as zeros there already, as a fresh sparse
/// file does). Returns the bytes actually written.
pub fn copy_sparse(src: &File, dst: &File, offset: u64) -> io::Result<u64> {
    let len = src.metadata()?.len();
    let mut buf = vec![0u8; BLOCK];
    let mut written = 0;
    let mut pos = 0u64;
    while pos < len {
        let Some((start, end)) = next_extent(src, pos, len)? else {
            break;
        };
        let mut at = start;
        while at < end {
            let n = (end - at).min(BLOCK as u64) as usize;
            let chunk = &mut buf[..n];
            src.read_exact_at(chunk, at)?;
            if chunk.iter().any(|&b| b != 0) {
                dst.write_all_at(chunk, offset + at)?;
                written += n as u64;
            }
            at += n as u64;
        }
        pos = end;
    }
    Ok(written)
}

/// The indices of the `block`-byte blocks of `src` that hold data extents
/// (holes are skipped without reading; blocks of zeros in data extents are
/// still listed), in increasing order.
pub fn data_blocks(src: &File, block: u64) -> io::Result<Vec<u64>> {
    let len = src.metadata()?.len();
    let mut blocks = Vec::new();
    let mut pos = 0u64;
    while pos < len {
        let Some((start, end)) = next_extent(src, pos, len)? else {
            break;
        };
        let first = (start / block).max(blocks.last().map_or(0, |b: &u64| b + 1));
        blocks.extend(first..end.div_ceil(block));
        pos = end;
    }
    Ok(blocks)
}

/// The next data extent at or after `pos`, as `[start, end)`, or `None` when
/// only holes remain. Filesystems without SEEK_DATA get one extent to the
/// end, which the zero-block check then thins out.
fn next_extent(src: &File, pos: u64, len: u64) -> io::Result<Option<(u64, u64)>> {
    let data = match lseek(src, to_off(pos)?, Whence::SeekData) {
        Ok(at) => at as u64,
        Err(Errno::ENXIO) => return Ok(None),
        Err(Errno::EINVAL) => return Ok(Some((pos, len))),
        Err(e) => return Err(e.into()),
    };
    let hole = match lseek(src, to_off(data)?, Whence::SeekHole) {
        Ok(at) => (at as u64).min(len),
        Err(e) => return Err(e.into()),
    };
    // Round the extent out to whole blocks so reads stay aligned.
    let start = data / BLOCK as u64 * BLOCK as u64;
    Ok(Some((start.max(pos), hole.max(data + 1).min(len))))
}

fn to_off(v: u64) -> io::Result<i64> {
    i64::try_from(v).map_err(|_| io::Error::other("offset beyond 2^63"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn copies_data_and_keeps_holes() {
        let t = tempfile::tempdir().unwrap();
        let src = File::create_new(t.path().join("src")).unwrap();
        src.set_len(64 << 20).unwrap();
        src.write_all_at(b"start", 0).unwrap();
        src.write_all_at(b"middle", 10 << 20).unwrap();
        src.write_all_at(&[0u8; 4096], 20 << 20).unwrap(); // data, but zeros
        src.write_all_at(b"end", (64 << 20) - 3).unwrap();
        let dst = File::create_new(t.path().join("dst")).unwrap();
        dst.set_len(128 << 20).unwrap();

        let written = copy_sparse(&src, &dst, 1 << 20).unwrap();
        assert!(written >= 11 && written <= 3 * BLOCK as u64, "{written}");
        let mut b = [0u8; 6];
        dst.read_exact_at(&mut b[..5], 1 << 20).unwrap();
        assert_eq!(&b[..5], b"start");
        dst.read_exact_at(&mut b, (1 << 20) + (10 << 20)).unwrap();
        assert_eq!(&b, b"middle");
        dst.read_exact_at(&mut b[..3], (65 << 20) - 3).unwrap();
        assert_eq!(&b[..3], b"end");
        assert!(dst.metadata().unwrap().blocks() * 512 < 1 << 20);
    }
}
