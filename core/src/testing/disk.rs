//! A small disk for tests of what a full disk does: a tmpfs of a given size.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};

/// A tmpfs of a fixed size mounted on a directory, unmounted (lazily, so open files do not
/// keep it) when dropped. Mounting needs `CAP_SYS_ADMIN` (root).
///
/// ```no_run
/// use hoist_core::testing::SmallDisk;
///
/// # fn main() -> hoist_core::Result<()> {
/// # let dir = std::env::temp_dir().join("small-disk-example");
/// # std::fs::create_dir_all(&dir).unwrap();
/// let disk = SmallDisk::mount(&dir, 1 << 20)?;
/// let filler = disk.fill()?;
/// assert!(std::fs::write(disk.path().join("more"), [0u8; 8192]).is_err());
/// std::fs::remove_file(filler).unwrap(); // space again
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct SmallDisk {
    mount_point: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` bytes (rounded up to whole pages) on the existing, empty
    /// directory `mount_point`.
    pub fn mount(mount_point: &Path, size: u64) -> Result<SmallDisk> {
        let options = format!("size={size},mode=0700");
        nix::mount::mount(
            Some("tmpfs"),
            mount_point,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(options.as_str()),
        )
        .map_err(|errno| {
            Error::new(
                ErrorKind::Backend,
                format!(
                    "could not mount a tmpfs on {}: {errno} (a small disk needs root, or CAP_SYS_ADMIN)",
                    mount_point.display()
                ),
            )
        })?;
        Ok(SmallDisk {
            mount_point: mount_point.to_owned(),
        })
    }

    /// Where the disk is mounted.
    pub fn path(&self) -> &Path {
        &self.mount_point
    }

    /// Writes a file (`filler`) until the disk has no room left; returns its path. Removing it
    /// frees the space.
    pub fn fill(&self) -> Result<PathBuf> {
        let path = self.mount_point.join("filler");
        let io = |e: std::io::Error| {
            Error::new(
                ErrorKind::Backend,
                format!("could not fill {}", path.display()),
            )
            .with_source(e)
        };
        let mut file = std::fs::File::create(&path).map_err(io)?;
        let chunk = [0xa5u8; 4096];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
                Err(e) => return Err(io(e)),
            }
        }
        Ok(path)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        if let Err(errno) = nix::mount::umount2(&self.mount_point, nix::mount::MntFlags::MNT_DETACH)
        {
            tracing::warn!(path = %self.mount_point.display(), %errno, "could not unmount a small disk");
        }
    }
}
