//! A disk object's body checked in blocks: the SHA-256 of each [`BLOCK`]
//! as a fill writes it ([`BlockHasher`]), and reads that return no byte of
//! a block unless all of it matched its hash ([`read_verified`]). Shared by
//! the disk tier's files (`disk`) and the objects that read them (`object`).

use std::os::unix::fs::FileExt;

use sha2::{Digest, Sha256};

/// The size of the blocks a body is checked in. Every read of a disk
/// object reads and hashes the whole blocks it touches: large enough that
/// the hashes of an 8 GiB object stay small (8,192, 256 KiB in memory),
/// small enough that a range costs little more than its bytes.
pub const BLOCK: u64 = 1 << 20;

/// The block hashes of a body as a fill writes it: one per [`BLOCK`]
/// bytes, the last over what is left.
#[derive(Default)]
pub struct BlockHasher {
    block: Sha256,
    in_block: u64,
    done: Vec<[u8; 32]>,
}

impl BlockHasher {
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let take = ((BLOCK - self.in_block) as usize).min(data.len());
            self.block.update(&data[..take]);
            self.in_block += take as u64;
            data = &data[take..];
            if self.in_block == BLOCK {
                self.done
                    .push(std::mem::take(&mut self.block).finalize().into());
                self.in_block = 0;
            }
        }
    }

    /// The hashes of the blocks completed since the last call.
    pub fn take_done(&mut self) -> Vec<[u8; 32]> {
        std::mem::take(&mut self.done)
    }

    /// The rest: the hashes not taken yet and the last, partial block's.
    pub fn finish(mut self) -> Vec<[u8; 32]> {
        if self.in_block > 0 {
            self.done.push(self.block.finalize().into());
        }
        self.done
    }
}

/// Why a read of checked blocks gave no bytes.
#[derive(Debug)]
pub enum BlockError {
    Io(std::io::Error),
    /// This block does not match its hash.
    Damaged(u64),
}

/// Reads blocks `first..first + hashes.len()` of a body of `length` bytes
/// whole, checks each against its hash, and returns bytes `offset..end`
/// (which lie in those blocks) out of them: nothing of a block is returned
/// unless all of it matched. Also returns how many blocks were checked.
pub fn read_verified(
    file: &std::fs::File,
    length: u64,
    first: u64,
    hashes: &[[u8; 32]],
    offset: u64,
    end: u64,
) -> Result<(Vec<u8>, u64), BlockError> {
    let start = first.saturating_mul(BLOCK);
    let stop = first
        .saturating_add(hashes.len() as u64)
        .saturating_mul(BLOCK)
        .min(length);
    if offset < start || end > stop || offset >= end {
        return Err(BlockError::Io(std::io::Error::other(format!(
            "bytes {offset}..{end} are not in blocks {first}..+{}",
            hashes.len()
        ))));
    }
    let mut buf = vec![0u8; (stop - start) as usize];
    file.read_exact_at(&mut buf, start).map_err(|e| {
        BlockError::Io(if e.kind() == std::io::ErrorKind::UnexpectedEof {
            std::io::Error::other("the file is shorter than its index says")
        } else {
            e
        })
    })?;
    for (i, (block, want)) in buf.chunks(BLOCK as usize).zip(hashes).enumerate() {
        if Sha256::digest(block).as_slice() != want.as_slice() {
            return Err(BlockError::Damaged(first + i as u64));
        }
    }
    // Aligned reads (the usual case) return the buffer as it is.
    buf.truncate((end - start) as usize);
    buf.drain(..(offset - start) as usize);
    Ok((buf, hashes.len() as u64))
}
