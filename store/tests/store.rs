//! The store as its users rely on it: what is committed survives a reopen, a writer that dies
//! between writing code and committing leaves nothing behind, a newer schema is refused, and
//! concurrent writers serialise.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use hoist_store::{
    AliasRecord, CODE_DIR, DATABASE_FILE, FunctionRecord, SCHEMA_VERSION, State, Store, StoreError,
    UpdateStatus, VersionRecord,
};
use serde_json::json;
use support::code_files;

fn function(name: &str) -> FunctionRecord {
    let mut f = FunctionRecord::new(
        name,
        json!({"FunctionName": name, "Handler": "app.handler"}),
    );
    f.revision_id = "r1".into();
    f
}

#[test]
fn reopening_keeps_functions_code_versions_aliases_concurrency_and_tags() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let zip_v1 = b"PK first code".to_vec();
    let zip_v2 = b"PK second code".to_vec();
    store
        .write(|tx| {
            let code = tx.put_code(&zip_v1)?;
            let mut f = function("hello");
            f.code = Some(code.clone());
            tx.insert_function(&f)?;
            f.state = State::Active;
            f.last_version = 1;
            f.reserved_concurrency = Some(7);
            tx.update_function(&f)?;
            tx.insert_version(&VersionRecord {
                function: "hello".into(),
                version: 1,
                configuration: json!({"Version": "1"}),
                code: Some(code),
                state: State::Active,
                revision_id: "v1".into(),
            })?;
            // $LATEST moves on to new code; version 1 keeps the old.
            f.code = Some(tx.put_code(&zip_v2)?);
            f.last_update_status = UpdateStatus::InProgress;
            tx.update_function(&f)?;
            tx.put_alias(&AliasRecord {
                function: "hello".into(),
                name: "live".into(),
                configuration: json!({"Name": "live", "FunctionVersion": "1"}),
                revision_id: "a1".into(),
            })?;
            tx.set_tags(
                "hello",
                &BTreeMap::from([("team".to_string(), "core".to_string())]),
            )?;
            tx.insert_function(&function("other"))
        })
        .unwrap();
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    let (f, versions, aliases, tags, all) = store
        .read(|tx| {
            Ok((
                tx.function("hello")?.unwrap(),
                tx.versions("hello")?,
                tx.aliases("hello")?,
                tx.tags("hello")?,
                tx.functions(None, 100)?,
            ))
        })
        .unwrap();
    assert_eq!(f.state, State::Active);
    assert_eq!(f.last_update_status, UpdateStatus::InProgress);
    assert_eq!(f.reserved_concurrency, Some(7));
    assert_eq!(f.last_version, 1);
    assert_eq!(f.configuration["Handler"], "app.handler");
    assert_eq!(store.read_code(f.code.as_ref().unwrap()).unwrap(), zip_v2);
    assert_eq!(versions.len(), 1);
    assert_eq!(
        store.read_code(versions[0].code.as_ref().unwrap()).unwrap(),
        zip_v1
    );
    assert_eq!(aliases[0].configuration["FunctionVersion"], "1");
    assert_eq!(tags["team"], "core");
    assert_eq!(
        all.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["hello", "other"]
    );
    assert_eq!(code_files(dir.path()).len(), 2, "both archives are kept");
    // Pagination: after "hello" comes only "other".
    let page = store.read(|tx| tx.functions(Some("hello"), 10)).unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].name, "other");

    // Deleting the function removes its versions, aliases, tags and, after the commit, the
    // code nothing names any more.
    store
        .write(|tx| tx.delete_function("hello").map(|_| ()))
        .unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(store.read(|tx| tx.function("hello")).unwrap().is_none());
    assert!(store.read(|tx| tx.versions("hello")).unwrap().is_empty());
    assert!(store.read(|tx| tx.tags("hello")).unwrap().is_empty());
    assert_eq!(code_files(dir.path()), Vec::<String>::new());
}

#[test]
fn a_failed_write_rolls_back_and_removes_the_code_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .write(|tx| tx.insert_function(&function("taken")))
        .unwrap();
    let err = store
        .write(|tx| {
            let code = tx.put_code(b"PK code of a function that never lands")?;
            let mut f = function("taken");
            f.code = Some(code);
            tx.insert_function(&f)
        })
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::AlreadyExists { what: "function", name } if name == "taken"),
        "{err}"
    );
    assert_eq!(err.to_string(), "function taken already exists");
    assert!(code_files(dir.path()).is_empty());
}

fn crash_after_writing_code(dir: &Path) {
    let store = Store::open(dir).unwrap();
    let _ = store.write(|tx| -> hoist_store::Result<()> {
        let code = tx.put_code(b"PK code written, record never committed")?;
        let mut f = function("half");
        f.code = Some(code);
        tx.insert_function(&f)?;
        // The process dies here, between the code reaching its final name and the commit.
        // SAFETY: _exit ends the process at once; nothing runs after it.
        unsafe { libc::_exit(3) }
    });
}

/// Set in the child that [`a_crash_between_writing_code_and_committing_leaves_nothing_half_made`]
/// starts: the store directory it writes to before it dies.
const CRASH_CHILD: &str = "HOIST_STORE_CRASH_CHILD";

#[test]
fn a_crash_between_writing_code_and_committing_leaves_nothing_half_made() {
    if let Some(dir) = std::env::var_os(CRASH_CHILD) {
        crash_after_writing_code(Path::new(&dir));
        unreachable!("the writer ends the process");
    }
    let dir = tempfile::tempdir().unwrap();
    Store::open(dir.path())
        .unwrap()
        .write(|tx| tx.insert_function(&function("whole")))
        .unwrap();
    // The writer that dies is this test binary run again for this test alone (a fork of a
    // test binary running other tests on other threads could inherit their locks held).
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_crash_between_writing_code_and_committing_leaves_nothing_half_made",
            "--nocapture",
        ])
        .env(CRASH_CHILD, dir.path())
        .status()
        .unwrap();
    assert_eq!(
        status.code(),
        Some(3),
        "the writer died mid-commit: {status}"
    );
    // The crash left the archive under its final name, and a temporary file from a writer
    // that died even earlier is there too.
    let left = code_files(dir.path());
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].ends_with(".zip"));
    std::fs::write(
        dir.path().join(CODE_DIR).join(".tmp-deadbeef-1-0"),
        b"partial",
    )
    .unwrap();

    let store = Store::open(dir.path()).unwrap();
    assert!(store.read(|tx| tx.function("half")).unwrap().is_none());
    assert!(store.read(|tx| tx.function("whole")).unwrap().is_some());
    assert!(
        code_files(dir.path()).is_empty(),
        "{:?}",
        code_files(dir.path())
    );
}

#[test]
fn a_panicking_writer_commits_nothing_and_its_code_is_swept_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = store.write(|tx| -> hoist_store::Result<()> {
            let code = tx.put_code(b"PK panicking")?;
            let mut f = function("panicky");
            f.code = Some(code);
            tx.insert_function(&f)?;
            panic!("writer failed");
        });
    }));
    assert!(panicked.is_err());
    assert!(store.read(|tx| tx.function("panicky")).unwrap().is_none());
    assert_eq!(code_files(dir.path()).len(), 1);
    assert_eq!(store.sweep().unwrap(), 1);
    assert!(code_files(dir.path()).is_empty());
    // The connection still works after the panic.
    store
        .write(|tx| tx.insert_function(&function("after")))
        .unwrap();
}

#[test]
fn a_database_from_a_newer_hoist_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    Store::open(dir.path())
        .unwrap()
        .write(|tx| tx.insert_function(&function("kept")))
        .unwrap();
    let db = dir.path().join(DATABASE_FILE);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(found, SCHEMA_VERSION);
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 41)
        .unwrap();
    drop(conn);

    let err = Store::open(dir.path()).unwrap_err();
    match &err {
        StoreError::FutureSchema {
            path,
            found,
            supported,
        } => {
            assert_eq!(path, &db);
            assert_eq!(*found, SCHEMA_VERSION + 41);
            assert_eq!(*supported, SCHEMA_VERSION);
        }
        other => panic!("expected FutureSchema, got {other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&format!("schema version {}", SCHEMA_VERSION + 41)),
        "{text}"
    );
    assert!(text.contains("upgrade hoist"), "{text}");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let still: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        still,
        SCHEMA_VERSION + 41,
        "the newer database is not touched"
    );
}

#[test]
fn concurrent_writers_on_two_connections_serialise() {
    let dir = tempfile::tempdir().unwrap();
    let first = Store::open(dir.path()).unwrap();
    let second = Store::open(dir.path()).unwrap();
    first
        .write(|tx| tx.insert_function(&function("counter")))
        .unwrap();
    const PER_THREAD: u64 = 25;
    std::thread::scope(|scope| {
        for i in 0..4 {
            let store = if i % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            scope.spawn(move || {
                for _ in 0..PER_THREAD {
                    // Read-modify-write: a lost update would reuse a version number.
                    store
                        .write(|tx| {
                            let mut f = tx.function("counter")?.unwrap();
                            f.last_version += 1;
                            tx.insert_version(&VersionRecord {
                                function: f.name.clone(),
                                version: f.last_version,
                                configuration: json!({"Version": f.last_version.to_string()}),
                                code: None,
                                state: State::Active,
                                revision_id: format!("t{i}"),
                            })?;
                            tx.update_function(&f)
                        })
                        .unwrap();
                }
            });
        }
    });
    let (f, versions) = second
        .read(|tx| Ok((tx.function("counter")?.unwrap(), tx.versions("counter")?)))
        .unwrap();
    assert_eq!(f.last_version, 4 * PER_THREAD);
    let numbers: Vec<u64> = versions.iter().map(|v| v.version).collect();
    assert_eq!(numbers, (1..=4 * PER_THREAD).collect::<Vec<_>>());
}
