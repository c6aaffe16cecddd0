//! The state directory's disk fills up: a write fails with a typed error naming what it was
//! doing, leaves nothing half-made (no record, no code file, no temporary file), and the store
//! works again once space is freed. The disk is a small tmpfs the test mounts (it runs as root)
//! and unmounts on every path.

mod support;

use std::path::PathBuf;

use hoist_core::testing::SmallDisk;
use hoist_store::{CODE_DIR, FunctionRecord, Store, StoreError};
use serde_json::json;
use support::code_files;

fn is_enospc(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.raw_os_error() == Some(libc::ENOSPC)
        {
            return true;
        }
        if let Some(rusqlite::Error::SqliteFailure(f, _)) = e.downcast_ref::<rusqlite::Error>()
            && f.code == rusqlite::ErrorCode::DiskFull
        {
            return true;
        }
        next = e.source();
    }
    false
}

fn function_with_code(store_code: hoist_store::CodeRef, config_bytes: usize) -> FunctionRecord {
    let mut f = FunctionRecord::new(
        "big",
        json!({"FunctionName": "big", "Padding": "x".repeat(config_bytes)}),
    );
    f.code = Some(store_code);
    f
}

/// A store on a small disk of its own, holding one function `before`.
fn store_on_a_small_disk() -> (tempfile::TempDir, SmallDisk, PathBuf, Store) {
    let mount_point = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(mount_point.path(), 2 << 20).unwrap();
    let dir = disk.path().join("state");
    let store = Store::open(&dir).unwrap();
    store
        .write(|tx| tx.insert_function(&FunctionRecord::new("before", json!({}))))
        .unwrap();
    (mount_point, disk, dir, store)
}

#[test]
fn a_full_disk_fails_code_writes_with_a_typed_error_and_leaves_nothing() {
    let (_mount_point, disk, dir, store) = store_on_a_small_disk();
    let filler = disk.fill().unwrap();

    let code = vec![7u8; 256 << 10];
    let err = store
        .write(|tx| {
            let code = tx.put_code(&code)?;
            tx.insert_function(&function_with_code(code, 16))
        })
        .unwrap_err();
    match &err {
        StoreError::Io { action, path, .. } => {
            assert_eq!(*action, "write code", "{err}");
            assert!(path.starts_with(dir.join(CODE_DIR)), "{err}");
        }
        other => panic!("expected the code write to fail, got {other:?}"),
    }
    assert!(is_enospc(&err), "{err:?}");
    assert!(
        err.to_string().starts_with("could not write code "),
        "{err}"
    );
    // Nothing half-made: no temporary file, no archive, no record.
    assert_eq!(code_files(&dir), Vec::<String>::new());
    assert!(store.read(|tx| tx.function("big")).unwrap().is_none());
    assert!(store.read(|tx| tx.function("before")).unwrap().is_some());

    // Space comes back: the same write succeeds, on this store and after a reopen.
    std::fs::remove_file(filler).unwrap();
    let stored = store
        .write(|tx| {
            let code = tx.put_code(&code)?;
            tx.insert_function(&function_with_code(code.clone(), 16))?;
            Ok(code)
        })
        .unwrap();
    drop(store);
    let store = Store::open(&dir).unwrap();
    assert_eq!(store.read_code(&stored).unwrap(), code);
    assert!(store.read(|tx| tx.function("big")).unwrap().is_some());
    assert_eq!(code_files(&dir), [format!("{}.zip", stored.sha256)]);
}

#[test]
fn a_full_disk_fails_a_record_write_in_the_database_and_rolls_it_back() {
    let (_mount_point, disk, dir, store) = store_on_a_small_disk();
    let filler = disk.fill().unwrap();

    // A record larger than anything the database's files have room for.
    let big = || FunctionRecord::new("big", json!({"Padding": "x".repeat(512 << 10)}));
    let err = store.write(|tx| tx.insert_function(&big())).unwrap_err();
    assert!(is_enospc(&err), "{err:?}");
    let StoreError::Database { action, .. } = &err else {
        panic!("expected the database to fail, got {err:?}");
    };
    assert_eq!(
        err.to_string(),
        format!("the state database failed to {action}")
    );
    // Rolled back: the store still reads, and holds only what was committed before.
    let names = |store: &Store| {
        store
            .read(|tx| {
                Ok(tx
                    .functions(None, 100)?
                    .into_iter()
                    .map(|f| f.name)
                    .collect::<Vec<_>>())
            })
            .unwrap()
    };
    assert_eq!(names(&store), ["before"]);

    std::fs::remove_file(filler).unwrap();
    store.write(|tx| tx.insert_function(&big())).unwrap();
    drop(store);
    let store = Store::open(&dir).unwrap();
    assert_eq!(names(&store), ["before", "big"]);
    assert_eq!(code_files(&dir), Vec::<String>::new());
}
