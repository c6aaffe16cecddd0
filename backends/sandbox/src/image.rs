//! What `image` names: a root directory, an OCI image layout, or a `docker save` archive. The
//! layers of the last two are unpacked once each into a content-addressed cache, where every
//! container made from an image that has them shares them.
//!
//! ```text
//! <state dir>/images/sha256/<digest>/   one unpacked layer, named for its tar's digest
//! ```
//!
//! Whiteouts become overlayfs's own: `.wh.<name>` a character device 0/0 named `<name>`, and
//! `.wh..wh..opq` the `trusted.overlay.opaque` attribute on its directory.

use std::ffi::CString;
use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use hoist_core::{Error, ErrorKind, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The layer cache.
#[derive(Debug, Clone)]
pub(crate) struct LayerCache {
    cache: PathBuf,
}

/// A layer to unpack: its digest (`sha256:<hex>`) and how to read its tar.
struct Layer<'a> {
    digest: String,
    open: Box<dyn Fn() -> Result<Box<dyn Read + 'a>> + 'a>,
}

impl LayerCache {
    pub(crate) fn new(cache: PathBuf) -> Self {
        LayerCache { cache }
    }

    /// The overlay's lower directories for `image`, top first, unpacking what the cache lacks.
    /// Blocking: call it off the async workers.
    pub(crate) fn layers(&self, image: &str) -> Result<Vec<PathBuf>> {
        let path = Path::new(image);
        let layers = if path.join("oci-layout").is_file() {
            self.oci_layout(path)?
        } else if path.is_dir() {
            vec![path.to_owned()]
        } else if path.is_file() {
            self.archive(path)?
        } else {
            return Err(Error::invalid_field(
                "image",
                format!("{image} is neither a directory, an OCI image layout nor an archive"),
            ));
        };
        if let Some(odd) = layers.iter().find(|p| {
            p.as_os_str()
                .as_bytes()
                .iter()
                .any(|b| matches!(b, b':' | b','))
        }) {
            return Err(Error::invalid_field(
                "image",
                format!("{}: overlayfs takes no path with `:` or `,`", odd.display()),
            ));
        }
        Ok(layers)
    }

    /// An OCI image layout: `index.json`'s first manifest (through nested indexes), its layers.
    fn oci_layout(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let blob = |digest: &str| -> Result<PathBuf> {
            let (algorithm, hex) = digest
                .split_once(':')
                .ok_or_else(|| bad_image(dir, format!("`{digest}` is not a digest")))?;
            Ok(dir.join("blobs").join(algorithm).join(hex))
        };
        let mut document: Document = read_json(&dir.join("index.json"))?;
        let manifest = loop {
            let Some(first) = document.manifests.first() else {
                break document;
            };
            document = read_json(&blob(&first.digest)?)?;
        };
        if manifest.layers.is_empty() {
            return Err(bad_image(dir, "its manifest has no layers"));
        }
        let layers = manifest
            .layers
            .iter()
            .map(|layer| {
                let path = blob(&layer.digest)?;
                Ok(Layer {
                    digest: layer.digest.clone(),
                    open: Box::new(move || decompressed(open(&path)?)),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        self.unpack_all(layers)
    }

    /// A `docker save` archive: `manifest.json`'s first image, its layers read from the archive.
    fn archive(&self, file: &Path) -> Result<Vec<PathBuf>> {
        let manifest: Vec<SavedImage> =
            serde_json::from_slice(&entry_bytes(file, "manifest.json")?)
                .map_err(|e| bad_image(file, format!("its manifest.json cannot be read: {e}")))?;
        let image = manifest
            .first()
            .ok_or_else(|| bad_image(file, "its manifest.json names no image"))?;
        let layers = image
            .layers
            .iter()
            .map(|name| {
                // Newer archives name layers by digest; older ones must be hashed.
                let digest = match name.strip_prefix("blobs/sha256/") {
                    Some(hex) => format!("sha256:{hex}"),
                    None => {
                        let mut hasher = Sha256::new();
                        with_entry(file, name, |entry| {
                            std::io::copy(entry, &mut hasher)
                                .map(drop)
                                .map_err(|e| io_error("could not read", file, e))
                        })?;
                        format!("sha256:{:x}", hasher.finalize())
                    }
                };
                let name = name.clone();
                Ok(Layer {
                    digest,
                    open: Box::new(move || {
                        decompressed(Box::new(std::io::Cursor::new(entry_bytes(file, &name)?)))
                    }),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        self.unpack_all(layers)
    }

    /// Unpacks each layer the cache lacks; their directories, top first.
    fn unpack_all(&self, layers: Vec<Layer<'_>>) -> Result<Vec<PathBuf>> {
        let mut dirs = Vec::with_capacity(layers.len());
        for layer in layers {
            let hex = layer
                .digest
                .strip_prefix("sha256:")
                .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(|| {
                    Error::invalid_field(
                        "image",
                        format!("`{}` is not a sha256 digest", layer.digest),
                    )
                })?;
            let dir = self.cache.join("sha256").join(hex);
            if !dir.is_dir() {
                let partial = self
                    .cache
                    .join("partial")
                    .join(format!("{hex}-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&partial);
                std::fs::create_dir_all(&partial)
                    .map_err(|e| io_error("could not create", &partial, e))?;
                std::fs::create_dir_all(self.cache.join("sha256"))
                    .map_err(|e| io_error("could not create", &self.cache, e))?;
                let result = (layer.open)().and_then(|tar| unpack(tar, &partial));
                // Another container may have unpacked the same layer meanwhile: keep either.
                match result.map(|()| std::fs::rename(&partial, &dir)) {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) if dir.is_dir() => {
                        let _ = std::fs::remove_dir_all(&partial);
                    }
                    Ok(Err(e)) => return Err(io_error("could not move a layer to", &dir, e)),
                    Err(e) => {
                        let _ = std::fs::remove_dir_all(&partial);
                        return Err(e.with_context("layer", &layer.digest));
                    }
                }
            }
            dirs.push(dir);
        }
        dirs.reverse();
        Ok(dirs)
    }
}

/// An image index or manifest: the fields hoist reads.
#[derive(Deserialize)]
struct Document {
    #[serde(default)]
    manifests: Vec<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
}

/// One image of a `docker save` archive's `manifest.json`.
#[derive(Deserialize)]
struct SavedImage {
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// Unpacks the layer tar `reader` into `target`, whiteouts as overlayfs's.
fn unpack(reader: Box<dyn Read + '_>, target: &Path) -> Result<()> {
    let fail = |e: std::io::Error| {
        // The tar crate names the entry and keeps the cause as the source.
        let cause = std::error::Error::source(&e)
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        Error::new(
            ErrorKind::Backend,
            format!(
                "could not unpack a layer into {}: {e}{cause}",
                target.display()
            ),
        )
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);
    for entry in archive.entries().map_err(fail)? {
        let mut entry = entry.map_err(fail)?;
        let path = entry.path().map_err(fail)?.into_owned();
        let whiteout = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(".wh."))
            .map(str::to_owned);
        let Some(name) = whiteout else {
            entry.unpack_in(target).map_err(fail)?;
            continue;
        };
        let parent = path.parent().unwrap_or(Path::new(""));
        if parent
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(Error::invalid_field(
                "image",
                format!("the layer entry {} leaves the layer", path.display()),
            ));
        }
        let dir = target.join(parent);
        std::fs::create_dir_all(&dir).map_err(fail)?;
        if name == ".wh..opq" {
            set_opaque(&dir)?;
        } else {
            nix::sys::stat::mknod(
                &dir.join(&name),
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::empty(),
                nix::sys::stat::makedev(0, 0),
            )
            .map_err(|e| fail(e.into()))?;
        }
    }
    Ok(())
}

/// Marks `dir` opaque to overlayfs: nothing of the layers below shows through it.
fn set_opaque(dir: &Path) -> Result<()> {
    let path = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| Error::invalid(format!("{} has a NUL byte", dir.display())))?;
    let name = c"trusted.overlay.opaque";
    // SAFETY: both strings are NUL-terminated and outlive the call; the value is 1 byte long.
    let done = unsafe { libc::setxattr(path.as_ptr(), name.as_ptr(), b"y".as_ptr().cast(), 1, 0) };
    if done != 0 {
        return Err(io_error(
            "could not mark opaque",
            dir,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// `reader`, gunzipped when it starts with gzip's magic bytes.
fn decompressed<'a>(reader: Box<dyn Read + 'a>) -> Result<Box<dyn Read + 'a>> {
    let mut reader = BufReader::new(reader);
    let head = std::io::BufRead::fill_buf(&mut reader)
        .map_err(|e| Error::new(ErrorKind::Backend, format!("could not read a layer: {e}")))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::GzDecoder::new(reader)))
    } else {
        Ok(Box::new(reader))
    }
}

fn open(path: &Path) -> Result<Box<dyn Read>> {
    File::open(path)
        .map(|f| Box::new(f) as Box<dyn Read>)
        .map_err(|e| io_error("could not open", path, e))
}

/// Calls `f` on the entry `name` of the tar `file`.
fn with_entry(file: &Path, name: &str, f: impl FnOnce(&mut dyn Read) -> Result<()>) -> Result<()> {
    let fail = |e: std::io::Error| io_error("could not read", file, e);
    let mut archive = tar::Archive::new(BufReader::new(File::open(file).map_err(fail)?));
    for entry in archive.entries().map_err(fail)? {
        let mut entry = entry.map_err(fail)?;
        if entry.path().map_err(fail)?.as_ref() == Path::new(name) {
            return f(&mut entry);
        }
    }
    Err(bad_image(file, format!("it has no {name}")))
}

fn entry_bytes(file: &Path, name: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    with_entry(file, name, |entry| {
        entry
            .read_to_end(&mut bytes)
            .map(drop)
            .map_err(|e| io_error("could not read", file, e))
    })?;
    Ok(bytes)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| io_error("could not read", path, e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| bad_image(path, format!("it is not the JSON expected: {e}")))
}

fn bad_image(path: &Path, problem: impl std::fmt::Display) -> Error {
    Error::invalid_field("image", format!("{}: {problem}", path.display()))
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
    crate::bundle::io_error(what, path, e)
}
