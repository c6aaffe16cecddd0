//! Function code, stored content-addressed: `code/<sha256 hex>.zip` in the state directory.
//!
//! A file is written under a temporary name, flushed to disk, and renamed to its final name,
//! all inside the write transaction that commits the record naming it. A crash before the
//! rename leaves a temporary file; a crash between the rename and the commit leaves a file no
//! record names. Both are removed when the store is next opened ([`crate::Store::open`]), under
//! the database's write lock, so a live writer's file is never taken for an orphan.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::error::{Result, StoreError};

/// Names a stored code archive: the SHA-256 of its bytes (lowercase hex) and its size.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CodeRef {
    /// The SHA-256 of the archive, 64 lowercase hex digits.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

impl CodeRef {
    /// The raw 32-byte digest (AWS reports it base64-encoded as `CodeSha256`).
    pub fn digest(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = self
                .sha256
                .get(2 * i..2 * i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .unwrap_or(0);
        }
        out
    }
}

const TEMP_PREFIX: &str = ".tmp-";
const SUFFIX: &str = ".zip";

pub(crate) fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The code directory of a state directory.
#[derive(Debug)]
pub(crate) struct CodeDir {
    dir: PathBuf,
}

impl CodeDir {
    pub(crate) fn open(dir: PathBuf) -> Result<Self> {
        fs::create_dir_all(&dir).map_err(StoreError::io("create the code directory", &dir))?;
        Ok(CodeDir { dir })
    }

    pub(crate) fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}{SUFFIX}"))
    }

    /// Stores `bytes`; returns its reference and whether this call created the file.
    pub(crate) fn put(&self, bytes: &[u8]) -> Result<(CodeRef, bool)> {
        let sha256 = hex(&Sha256::digest(bytes));
        let code = CodeRef {
            sha256,
            size: bytes.len() as u64,
        };
        let path = self.path(&code.sha256);
        if path.is_file() {
            return Ok((code, false));
        }
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let temp = self.dir.join(format!(
            "{TEMP_PREFIX}{}-{}-{}",
            code.sha256,
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let write = || -> std::io::Result<()> {
            let mut file = fs::File::create(&temp)?;
            file.write_all(bytes)?;
            file.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&temp);
            return Err(StoreError::io("write code", &temp)(e));
        }
        fs::rename(&temp, &path).map_err(StoreError::io("rename code into place", &path))?;
        sync_dir(&self.dir)?;
        Ok((code, true))
    }

    pub(crate) fn read(&self, sha256: &str) -> Result<Vec<u8>> {
        if !is_sha256_hex(sha256) {
            return Err(StoreError::NotFound {
                what: "code",
                name: sha256.to_owned(),
            });
        }
        let path = self.path(sha256);
        fs::read(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                StoreError::NotFound {
                    what: "code",
                    name: sha256.to_owned(),
                }
            } else {
                StoreError::Io {
                    action: "read code",
                    path,
                    source,
                }
            }
        })
    }

    pub(crate) fn remove(&self, sha256: &str) -> Result<()> {
        let path = self.path(sha256);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("remove code", path)(e)),
        }
    }

    /// Removes temporary files and every archive whose digest is not in `referenced`; returns
    /// how many files it removed. The caller holds the database's write lock.
    pub(crate) fn sweep(&self, referenced: &HashSet<String>) -> Result<usize> {
        let entries = fs::read_dir(&self.dir)
            .map_err(StoreError::io("list the code directory", &self.dir))?;
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(StoreError::io("list the code directory", &self.dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let orphan = name.starts_with(TEMP_PREFIX)
                || name
                    .strip_suffix(SUFFIX)
                    .is_some_and(|sha| is_sha256_hex(sha) && !referenced.contains(sha));
            if orphan {
                let path = entry.path();
                fs::remove_file(&path).map_err(StoreError::io("remove orphaned code", &path))?;
                removed += 1;
            }
        }
        if removed > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    // A directory's entry changes (the rename) reach the disk when the directory is synced.
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io("sync the code directory", dir))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_round_trips_hex() {
        let dir = tempfile::tempdir().unwrap();
        let code = CodeDir::open(dir.path().join("code")).unwrap();
        let (r, created) = code.put(b"abc").unwrap();
        assert!(created);
        assert_eq!(
            r.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(hex(&r.digest()), r.sha256);
        let (_, again) = code.put(b"abc").unwrap();
        assert!(!again, "the same bytes are stored once");
        assert_eq!(code.read(&r.sha256).unwrap(), b"abc");
        assert!(matches!(
            code.read("../../etc/passwd"),
            Err(StoreError::NotFound { .. })
        ));
    }
}
