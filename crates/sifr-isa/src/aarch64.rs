//! AArch64: a cheap SVE / SVE2 use detector. Looks at 32-bit instruction words of executable
//! sections without a disassembler; it must stay a hint (it does no reachability analysis,
//! so its findings are only ever "uses when available").
//!
//! A64 puts all SVE and SVE2 encodings in the top-level group `op0 = 0b0010` (bits 28..25).
//! Nothing else is allocated there, but literal pools inside `.text` can contain any word, so
//! a file counts as using SVE only when at least [`MIN_WORDS`] words fall in that group.
//! SVE2 is not told apart from SVE: doing so needs a per-encoding table, which a SIGILL
//! warning does not justify yet.

use crate::elf::ElfInfo;

/// Words in the SVE group needed before a file counts as using SVE (literal-pool noise).
const MIN_WORDS: usize = 8;

/// Whether the file's code contains SVE (or SVE2) instructions.
pub(crate) fn uses_sve(info: &ElfInfo<'_>) -> bool {
    let mut n = 0usize;
    for section in &info.code {
        for w in section.bytes.chunks_exact(4) {
            let w = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            if (w >> 25) & 0xf == 0b0010 {
                n += 1;
                if n >= MIN_WORDS {
                    return true;
                }
            }
        }
    }
    false
}
