//! Test files: written and hashed in 1 MiB pieces, so that neither side's
//! memory grows with the file's size.
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

const PIECE: usize = 1 << 20;

/// Write `len` pseudo-random bytes (xorshift64, from `seed`) to `path`;
/// returns their SHA-256.
pub fn write_random_file(path: &Path, len: u64, seed: u64) -> [u8; 32] {
    let mut out = BufWriter::new(File::create(path).expect("create test file"));
    let mut hash = Sha256::new();
    let mut state = seed | 1;
    let mut piece = vec![0u8; PIECE];
    let mut left = len;
    while left > 0 {
        for word in piece.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(PIECE as u64) as usize;
        hash.update(&piece[..n]);
        out.write_all(&piece[..n]).expect("write test file");
        left -= n as u64;
    }
    out.flush().expect("flush test file");
    hash.finalize().into()
}

/// The SHA-256 of the file at `path`.
pub fn sha256_file(path: &Path) -> [u8; 32] {
    let mut file = File::open(path).expect("open file to hash");
    let mut hash = Sha256::new();
    let mut piece = vec![0u8; PIECE];
    loop {
        let n = file.read(&mut piece).expect("read file to hash");
        if n == 0 {
            return hash.finalize().into();
        }
        hash.update(&piece[..n]);
    }
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`), on Linux.
pub fn proc_status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
