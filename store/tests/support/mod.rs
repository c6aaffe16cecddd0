//! What the store's tests share.

use std::path::Path;

use hoist_store::CODE_DIR;

/// The names of the files in the code directory of the state directory `dir`, sorted.
pub fn code_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join(CODE_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
