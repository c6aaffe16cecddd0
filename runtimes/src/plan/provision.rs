//! Writing a function's source and deps file into its work directory.

use std::io::{Cursor, Read};
use std::path::Path;

use hoist_core::{Error, ErrorKind, Result};

use crate::function::{Code, FunctionSpec, SourceContent, sha256_hex};

/// The file that records the checksum of the last successfully installed deps file.
pub(crate) const DEPS_MARKER: &str = ".hoist-deps.sha256";

fn io_error(what: String, path: &Path, e: std::io::Error) -> Error {
    Error::new(ErrorKind::Backend, format!("{what} {}", path.display()))
        .with_context("path", path.display())
        .with_source(e)
}

/// Writes the code into `dir`: a text or base64 source as `<module><suffix>`, an archive
/// unpacked (entries escaping `dir` are refused), a directory copied. Then the deps file, if
/// any.
pub(crate) fn write_source(
    spec: &FunctionSpec,
    module: &str,
    suffix: &str,
    deps_file: Option<&str>,
    dir: &Path,
) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| io_error("cannot create work directory".into(), dir, e))?;
    let source = match &spec.code {
        Code::Directory(from) => {
            copy_dir(from, dir)?;
            None
        }
        Code::Source(source) => Some(source),
    };
    if let Some(source) = source {
        let bytes = source
            .bytes()
            .map_err(|e| e.with_context("function", &spec.name))?;
        match &source.content {
            SourceContent::Text(_) | SourceContent::Base64(_) => {
                let path = dir.join(format!("{module}{suffix}"));
                std::fs::write(&path, &bytes)
                    .map_err(|e| io_error("cannot write the source".into(), &path, e))?;
            }
            SourceContent::Zip(_) => unzip(&bytes, dir, &spec.name)?,
            SourceContent::Tar(_) => untar(&bytes, dir, &spec.name)?,
        }
    }
    match (&spec.deps, deps_file) {
        (Some(deps), Some(file)) => {
            let path = dir.join(file);
            std::fs::write(&path, deps)
                .map_err(|e| io_error("cannot write the deps file".into(), &path, e))?;
        }
        (Some(_), None) => {
            return Err(Error::invalid(format!(
                "function `{}` has deps, but runtime `{}` names no deps file",
                spec.name, spec.runtime
            ))
            .with_context("function", &spec.name));
        }
        (None, _) => {}
    }
    Ok(())
}

/// Copies the files under `from` into `to`, following links.
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    let entries = std::fs::read_dir(from).map_err(|e| io_error("cannot read".into(), from, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error("cannot read".into(), from, e))?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        if source.is_dir() {
            std::fs::create_dir_all(&target)
                .map_err(|e| io_error("cannot create".into(), &target, e))?;
            copy_dir(&source, &target)?;
        } else {
            std::fs::copy(&source, &target)
                .map_err(|e| io_error("cannot copy".into(), &source, e))?;
        }
    }
    Ok(())
}

fn archive_error(function: &str, kind: &str, e: impl std::fmt::Display) -> Error {
    Error::invalid(format!(
        "the {kind} source of function `{function}` cannot be unpacked: {e}"
    ))
    .with_context("function", function)
}

pub(crate) fn unzip(bytes: &[u8], dir: &Path, function: &str) -> Result<()> {
    let mut archive =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| archive_error(function, "zip", e))?;
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| archive_error(function, "zip", e))?;
        let Some(relative) = entry.enclosed_name() else {
            return Err(archive_error(
                function,
                "zip",
                format!("entry `{}` escapes the work directory", entry.name()),
            ));
        };
        let path = dir.join(relative);
        if entry.is_dir() {
            std::fs::create_dir_all(&path)
                .map_err(|e| io_error("cannot create".into(), &path, e))?;
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| io_error("cannot create".into(), parent, e))?;
        }
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .map_err(|e| archive_error(function, "zip", e))?;
        std::fs::write(&path, data).map_err(|e| io_error("cannot write".into(), &path, e))?;
        // Keep the permission bits the archive records (a custom runtime's `bootstrap` must
        // stay executable).
        if let Some(mode) = entry.unix_mode() {
            use std::os::unix::fs::PermissionsExt as _;
            let permissions = std::fs::Permissions::from_mode(mode & 0o777);
            std::fs::set_permissions(&path, permissions)
                .map_err(|e| io_error("cannot set the permissions of".into(), &path, e))?;
        }
    }
    Ok(())
}

fn untar(bytes: &[u8], dir: &Path, function: &str) -> Result<()> {
    let gzipped = bytes.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read> = if gzipped {
        Box::new(flate2::read::GzDecoder::new(bytes))
    } else {
        Box::new(bytes)
    };
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| archive_error(function, "tar", e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| archive_error(function, "tar", e))?;
        let unpacked = entry
            .unpack_in(dir)
            .map_err(|e| archive_error(function, "tar", e))?;
        if !unpacked {
            let name = entry
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            return Err(archive_error(
                function,
                "tar",
                format!("entry `{name}` escapes the work directory"),
            ));
        }
    }
    Ok(())
}

/// Whether the deps file in `dir` differs from the one last installed there.
pub(crate) fn deps_changed(dir: &Path, deps: &str) -> bool {
    std::fs::read_to_string(dir.join(DEPS_MARKER))
        .map(|old| old.trim() != sha256_hex(deps.as_bytes()))
        .unwrap_or(true)
}

/// Records that `deps` is installed in `dir`.
pub(crate) fn mark_deps_installed(dir: &Path, deps: &str) -> Result<()> {
    let path = dir.join(DEPS_MARKER);
    std::fs::write(&path, sha256_hex(deps.as_bytes()))
        .map_err(|e| io_error("cannot write".into(), &path, e))
}
