//! Reading and writing the Lambda records ([`crate::records`]): functions, published versions,
//! aliases, reserved concurrency and tags, as methods of [`Txn`].

use std::collections::{BTreeMap, HashSet};

use rusqlite::{OptionalExtension, Row, params};
use serde_json::Value;

use crate::Txn;
use crate::code::CodeRef;
use crate::error::{Result, StoreError};
use crate::records::{AliasRecord, FunctionRecord, State, UpdateStatus, VersionRecord};

fn parse_json(what: &'static str, name: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what,
        name: name.to_owned(),
        problem: format!("its configuration is not JSON: {e}"),
    })
}

fn code_of(sha: Option<String>, size: Option<i64>) -> Option<CodeRef> {
    sha.map(|sha256| CodeRef {
        sha256,
        size: size.unwrap_or(0).max(0) as u64,
    })
}

fn state_of(what: &'static str, name: &str, text: &str) -> Result<State> {
    State::parse(text).ok_or_else(|| StoreError::Corrupt {
        what,
        name: name.to_owned(),
        problem: format!("unknown state {text:?}"),
    })
}

/// A row read as plain values first, then checked (rusqlite's row closures cannot return our
/// error).
struct FunctionRow {
    name: String,
    configuration: String,
    code_sha256: Option<String>,
    code_size: Option<i64>,
    state: String,
    last_update_status: String,
    revision_id: String,
    reserved_concurrency: Option<i64>,
    last_version: i64,
}

const FUNCTION_COLUMNS: &str = "name, configuration, code_sha256, code_size, state, last_update_status, revision_id, reserved_concurrency, last_version";

impl FunctionRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(FunctionRow {
            name: row.get(0)?,
            configuration: row.get(1)?,
            code_sha256: row.get(2)?,
            code_size: row.get(3)?,
            state: row.get(4)?,
            last_update_status: row.get(5)?,
            revision_id: row.get(6)?,
            reserved_concurrency: row.get(7)?,
            last_version: row.get(8)?,
        })
    }

    fn check(self) -> Result<FunctionRecord> {
        let name = self.name;
        Ok(FunctionRecord {
            configuration: parse_json("function", &name, &self.configuration)?,
            code: code_of(self.code_sha256, self.code_size),
            state: state_of("function", &name, &self.state)?,
            last_update_status: UpdateStatus::parse(&self.last_update_status).ok_or_else(|| {
                StoreError::Corrupt {
                    what: "function",
                    name: name.clone(),
                    problem: format!("unknown update status {:?}", self.last_update_status),
                }
            })?,
            revision_id: self.revision_id,
            reserved_concurrency: self
                .reserved_concurrency
                .and_then(|n| u32::try_from(n).ok()),
            last_version: self.last_version.max(0) as u64,
            name,
        })
    }
}

struct VersionRow {
    function: String,
    version: i64,
    configuration: String,
    code_sha256: Option<String>,
    code_size: Option<i64>,
    state: String,
    revision_id: String,
}

const VERSION_COLUMNS: &str =
    "function, version, configuration, code_sha256, code_size, state, revision_id";

impl VersionRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(VersionRow {
            function: row.get(0)?,
            version: row.get(1)?,
            configuration: row.get(2)?,
            code_sha256: row.get(3)?,
            code_size: row.get(4)?,
            state: row.get(5)?,
            revision_id: row.get(6)?,
        })
    }

    fn check(self) -> Result<VersionRecord> {
        let name = format!("{}:{}", self.function, self.version);
        Ok(VersionRecord {
            configuration: parse_json("version", &name, &self.configuration)?,
            code: code_of(self.code_sha256, self.code_size),
            state: state_of("version", &name, &self.state)?,
            revision_id: self.revision_id,
            version: self.version.max(0) as u64,
            function: self.function,
        })
    }
}

fn alias_of(row: &Row<'_>) -> rusqlite::Result<(String, String, String, String)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

fn check_alias(
    (function, name, configuration, revision_id): (String, String, String, String),
) -> Result<AliasRecord> {
    Ok(AliasRecord {
        configuration: parse_json("alias", &format!("{function}:{name}"), &configuration)?,
        function,
        name,
        revision_id,
    })
}

fn json_text(value: &Value) -> String {
    value.to_string()
}

/// Every code digest a committed function or version names.
pub(crate) fn referenced_code(tx: &rusqlite::Transaction<'_>) -> Result<HashSet<String>> {
    let mut stmt = tx
        .prepare(
            "SELECT code_sha256 FROM functions WHERE code_sha256 IS NOT NULL
             UNION SELECT code_sha256 FROM versions WHERE code_sha256 IS NOT NULL",
        )
        .map_err(StoreError::db("list referenced code"))?;
    let rows = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .map_err(StoreError::db("list referenced code"))?;
    rows.collect::<rusqlite::Result<HashSet<_>>>()
        .map_err(StoreError::db("list referenced code"))
}

/// The Lambda records' reads and writes.
impl Txn<'_> {
    /// The function `name`, if it exists.
    pub fn function(&self, name: &str) -> Result<Option<FunctionRecord>> {
        self.tx
            .query_row(
                &format!("SELECT {FUNCTION_COLUMNS} FROM functions WHERE name = ?1"),
                [name],
                FunctionRow::read,
            )
            .optional()
            .map_err(StoreError::db("read a function"))?
            .map(FunctionRow::check)
            .transpose()
    }

    /// The state of function `name`'s `$LATEST`, if it exists, read without its
    /// configuration (the invocation path asks only this).
    pub fn function_state(&self, name: &str) -> Result<Option<State>> {
        let text: Option<String> = self
            .tx
            .prepare_cached("SELECT state FROM functions WHERE name = ?1")
            .and_then(|mut stmt| stmt.query_row([name], |row| row.get(0)).optional())
            .map_err(StoreError::db("read a function's state"))?;
        text.map(|t| state_of("function", name, &t)).transpose()
    }

    /// The state of version `version` of `function`, if it exists, read without its
    /// configuration.
    pub fn version_state(&self, function: &str, version: u64) -> Result<Option<State>> {
        let text: Option<String> = self
            .tx
            .prepare_cached("SELECT state FROM versions WHERE function = ?1 AND version = ?2")
            .and_then(|mut stmt| {
                stmt.query_row(params![function, version as i64], |row| row.get(0))
                    .optional()
            })
            .map_err(StoreError::db("read a version's state"))?;
        text.map(|t| state_of("version", &format!("{function}:{version}"), &t))
            .transpose()
    }

    /// Up to `limit` functions in name order, starting after `after` (pagination).
    pub fn functions(&self, after: Option<&str>, limit: usize) -> Result<Vec<FunctionRecord>> {
        let mut stmt = self
            .tx
            .prepare(&format!(
                "SELECT {FUNCTION_COLUMNS} FROM functions WHERE name > ?1 ORDER BY name LIMIT ?2"
            ))
            .map_err(StoreError::db("list functions"))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![after.unwrap_or(""), limit], FunctionRow::read)
            .map_err(StoreError::db("list functions"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(StoreError::db("list functions"))?;
        rows.into_iter().map(FunctionRow::check).collect()
    }

    /// Adds a function; [`StoreError::AlreadyExists`] if one has its name.
    pub fn insert_function(&mut self, function: &FunctionRecord) -> Result<()> {
        if self.function(&function.name)?.is_some() {
            return Err(StoreError::AlreadyExists {
                what: "function",
                name: function.name.clone(),
            });
        }
        self.write_function(function, "insert a function")
    }

    /// Replaces a function's record; [`StoreError::NotFound`] if there is none.
    pub fn update_function(&mut self, function: &FunctionRecord) -> Result<()> {
        let old = self
            .function(&function.name)?
            .ok_or_else(|| StoreError::NotFound {
                what: "function",
                name: function.name.clone(),
            })?;
        self.write_function(function, "update a function")?;
        if old.code != function.code {
            self.release(old.code);
        }
        Ok(())
    }

    fn write_function(&mut self, function: &FunctionRecord, action: &'static str) -> Result<()> {
        self.tx
            .execute(
                &format!(
                    "INSERT INTO functions ({FUNCTION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (name) DO UPDATE SET configuration = excluded.configuration,
                         code_sha256 = excluded.code_sha256, code_size = excluded.code_size,
                         state = excluded.state, last_update_status = excluded.last_update_status,
                         revision_id = excluded.revision_id,
                         reserved_concurrency = excluded.reserved_concurrency,
                         last_version = excluded.last_version"
                ),
                params![
                    function.name,
                    json_text(&function.configuration),
                    function.code.as_ref().map(|c| &c.sha256),
                    function.code.as_ref().map(|c| c.size as i64),
                    function.state.as_str(),
                    function.last_update_status.as_str(),
                    function.revision_id,
                    function.reserved_concurrency.map(i64::from),
                    function.last_version as i64,
                ],
            )
            .map_err(StoreError::db(action))?;
        Ok(())
    }

    /// Deletes a function with its versions, aliases and tags; [`StoreError::NotFound`] if
    /// there is none. Code no other record names is removed after the commit.
    pub fn delete_function(&mut self, name: &str) -> Result<FunctionRecord> {
        let old = self.function(name)?.ok_or_else(|| StoreError::NotFound {
            what: "function",
            name: name.to_owned(),
        })?;
        for version in self.versions(name)? {
            self.release(version.code);
        }
        self.tx
            .execute("DELETE FROM functions WHERE name = ?1", [name])
            .map_err(StoreError::db("delete a function"))?;
        self.release(old.code.clone());
        Ok(old)
    }

    /// Version `version` of function `function`, if it exists.
    pub fn version(&self, function: &str, version: u64) -> Result<Option<VersionRecord>> {
        self.tx
            .query_row(
                &format!(
                    "SELECT {VERSION_COLUMNS} FROM versions WHERE function = ?1 AND version = ?2"
                ),
                params![function, version as i64],
                VersionRow::read,
            )
            .optional()
            .map_err(StoreError::db("read a version"))?
            .map(VersionRow::check)
            .transpose()
    }

    /// Every published version of `function`, in order.
    pub fn versions(&self, function: &str) -> Result<Vec<VersionRecord>> {
        let mut stmt = self
            .tx
            .prepare(&format!(
                "SELECT {VERSION_COLUMNS} FROM versions WHERE function = ?1 ORDER BY version"
            ))
            .map_err(StoreError::db("list versions"))?;
        let rows = stmt
            .query_map([function], VersionRow::read)
            .map_err(StoreError::db("list versions"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(StoreError::db("list versions"))?;
        rows.into_iter().map(VersionRow::check).collect()
    }

    /// Adds a published version; [`StoreError::NotFound`] if its function does not exist,
    /// [`StoreError::AlreadyExists`] if the number is taken.
    pub fn insert_version(&mut self, version: &VersionRecord) -> Result<()> {
        if self.function(&version.function)?.is_none() {
            return Err(StoreError::NotFound {
                what: "function",
                name: version.function.clone(),
            });
        }
        if self.version(&version.function, version.version)?.is_some() {
            return Err(StoreError::AlreadyExists {
                what: "version",
                name: format!("{}:{}", version.function, version.version),
            });
        }
        self.tx
            .execute(
                &format!(
                    "INSERT INTO versions ({VERSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                ),
                params![
                    version.function,
                    version.version as i64,
                    json_text(&version.configuration),
                    version.code.as_ref().map(|c| &c.sha256),
                    version.code.as_ref().map(|c| c.size as i64),
                    version.state.as_str(),
                    version.revision_id,
                ],
            )
            .map_err(StoreError::db("insert a version"))?;
        Ok(())
    }

    /// Replaces a version's configuration, state and revision (its code never changes);
    /// [`StoreError::NotFound`] if there is none.
    pub fn update_version(&mut self, version: &VersionRecord) -> Result<()> {
        let changed = self
            .tx
            .execute(
                "UPDATE versions SET configuration = ?3, state = ?4, revision_id = ?5
                 WHERE function = ?1 AND version = ?2",
                params![
                    version.function,
                    version.version as i64,
                    json_text(&version.configuration),
                    version.state.as_str(),
                    version.revision_id,
                ],
            )
            .map_err(StoreError::db("update a version"))?;
        if changed == 0 {
            return Err(StoreError::NotFound {
                what: "version",
                name: format!("{}:{}", version.function, version.version),
            });
        }
        Ok(())
    }

    /// Deletes a published version; [`StoreError::NotFound`] if there is none.
    pub fn delete_version(&mut self, function: &str, version: u64) -> Result<VersionRecord> {
        let old = self
            .version(function, version)?
            .ok_or_else(|| StoreError::NotFound {
                what: "version",
                name: format!("{function}:{version}"),
            })?;
        self.tx
            .execute(
                "DELETE FROM versions WHERE function = ?1 AND version = ?2",
                params![function, version as i64],
            )
            .map_err(StoreError::db("delete a version"))?;
        self.release(old.code.clone());
        Ok(old)
    }

    /// The alias `name` of `function`, if it exists.
    pub fn alias(&self, function: &str, name: &str) -> Result<Option<AliasRecord>> {
        self.tx
            .prepare_cached(
                "SELECT function, name, configuration, revision_id FROM aliases
                 WHERE function = ?1 AND name = ?2",
            )
            .and_then(|mut stmt| stmt.query_row(params![function, name], alias_of).optional())
            .map_err(StoreError::db("read an alias"))?
            .map(check_alias)
            .transpose()
    }

    /// Every alias of `function`, in name order.
    pub fn aliases(&self, function: &str) -> Result<Vec<AliasRecord>> {
        let mut stmt = self
            .tx
            .prepare(
                "SELECT function, name, configuration, revision_id FROM aliases
                 WHERE function = ?1 ORDER BY name",
            )
            .map_err(StoreError::db("list aliases"))?;
        let rows = stmt
            .query_map([function], alias_of)
            .map_err(StoreError::db("list aliases"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(StoreError::db("list aliases"))?;
        rows.into_iter().map(check_alias).collect()
    }

    /// Adds or replaces an alias; [`StoreError::NotFound`] if its function does not exist.
    pub fn put_alias(&mut self, alias: &AliasRecord) -> Result<()> {
        if self.function(&alias.function)?.is_none() {
            return Err(StoreError::NotFound {
                what: "function",
                name: alias.function.clone(),
            });
        }
        self.tx
            .execute(
                "INSERT INTO aliases (function, name, configuration, revision_id)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (function, name) DO UPDATE
                 SET configuration = excluded.configuration, revision_id = excluded.revision_id",
                params![
                    alias.function,
                    alias.name,
                    json_text(&alias.configuration),
                    alias.revision_id
                ],
            )
            .map_err(StoreError::db("write an alias"))?;
        Ok(())
    }

    /// Deletes an alias; [`StoreError::NotFound`] if there is none.
    pub fn delete_alias(&mut self, function: &str, name: &str) -> Result<()> {
        let changed = self
            .tx
            .execute(
                "DELETE FROM aliases WHERE function = ?1 AND name = ?2",
                params![function, name],
            )
            .map_err(StoreError::db("delete an alias"))?;
        if changed == 0 {
            return Err(StoreError::NotFound {
                what: "alias",
                name: format!("{function}:{name}"),
            });
        }
        Ok(())
    }

    /// The tags of `function`.
    pub fn tags(&self, function: &str) -> Result<BTreeMap<String, String>> {
        let mut stmt = self
            .tx
            .prepare("SELECT key, value FROM tags WHERE function = ?1")
            .map_err(StoreError::db("list tags"))?;
        stmt.query_map([function], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(StoreError::db("list tags"))?
            .collect::<rusqlite::Result<BTreeMap<_, _>>>()
            .map_err(StoreError::db("list tags"))
    }

    /// Adds or replaces tags of `function`; [`StoreError::NotFound`] if it does not exist.
    pub fn set_tags(&mut self, function: &str, tags: &BTreeMap<String, String>) -> Result<()> {
        if self.function(function)?.is_none() {
            return Err(StoreError::NotFound {
                what: "function",
                name: function.to_owned(),
            });
        }
        for (key, value) in tags {
            self.tx
                .execute(
                    "INSERT INTO tags (function, key, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT (function, key) DO UPDATE SET value = excluded.value",
                    params![function, key, value],
                )
                .map_err(StoreError::db("write a tag"))?;
        }
        Ok(())
    }

    /// Removes the tags `keys` of `function` (absent keys are ignored).
    pub fn remove_tags(&mut self, function: &str, keys: &[String]) -> Result<()> {
        for key in keys {
            self.tx
                .execute(
                    "DELETE FROM tags WHERE function = ?1 AND key = ?2",
                    params![function, key],
                )
                .map_err(StoreError::db("remove a tag"))?;
        }
        Ok(())
    }
}
