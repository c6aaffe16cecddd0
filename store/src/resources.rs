//! Compute resources (EC2 instances, ECS clusters, task definitions, tasks and services, ELBv2
//! target groups) as JSON documents keyed by kind and id, as methods of [`Txn`].
//!
//! Each API owns the shape of its documents; the store keeps them whole, in one table, in the
//! order they were first written (so listings are stable across restarts).

use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use crate::Txn;
use crate::error::{Result, StoreError};

fn parse(kind: &str, id: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what: "resource",
        name: format!("{kind}/{id}"),
        problem: format!("it is not JSON: {e}"),
    })
}

/// The compute resources' reads and writes.
impl Txn<'_> {
    /// The resource `id` of `kind`, if it exists.
    pub fn resource(&self, kind: &str, id: &str) -> Result<Option<Value>> {
        let text: Option<String> = self
            .tx
            .query_row(
                "SELECT body FROM resources WHERE kind = ?1 AND id = ?2",
                params![kind, id],
                |row| row.get(0),
            )
            .optional()
            .map_err(StoreError::db("read a resource"))?;
        text.map(|text| parse(kind, id, &text)).transpose()
    }

    /// Every resource of `kind` as `(id, document)`, in the order they were first written.
    pub fn resources(&self, kind: &str) -> Result<Vec<(String, Value)>> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT id, body FROM resources WHERE kind = ?1 ORDER BY seq")
            .map_err(StoreError::db("list resources"))?;
        let rows = stmt
            .query_map(params![kind], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(StoreError::db("list resources"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(StoreError::db("list resources"))?;
        rows.into_iter()
            .map(|(id, text)| parse(kind, &id, &text).map(|body| (id, body)))
            .collect()
    }

    /// Writes the resource `id` of `kind`, replacing its document if it exists (keeping its
    /// place in listings).
    pub fn put_resource(&mut self, kind: &str, id: &str, body: &Value) -> Result<()> {
        self.tx
            .execute(
                "INSERT INTO resources (kind, id, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body",
                params![kind, id, body.to_string()],
            )
            .map_err(StoreError::db("write a resource"))?;
        Ok(())
    }

    /// Removes the resource `id` of `kind`; whether it existed.
    pub fn delete_resource(&mut self, kind: &str, id: &str) -> Result<bool> {
        let n = self
            .tx
            .execute(
                "DELETE FROM resources WHERE kind = ?1 AND id = ?2",
                params![kind, id],
            )
            .map_err(StoreError::db("delete a resource"))?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::Store;

    #[test]
    fn resources_keep_their_order_replace_in_place_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .write(|tx| {
                tx.put_resource("ec2-instance", "i-2", &json!({"n": 1}))?;
                tx.put_resource("ec2-instance", "i-1", &json!({"n": 2}))?;
                tx.put_resource("ecs-cluster", "i-1", &json!({"other": true}))?;
                tx.put_resource("ec2-instance", "i-2", &json!({"n": 3}))
            })
            .unwrap();
        let store = Store::open(dir.path()).unwrap();
        let all = store.read(|tx| tx.resources("ec2-instance")).unwrap();
        assert_eq!(
            all,
            [
                ("i-2".to_string(), json!({"n": 3})),
                ("i-1".into(), json!({"n": 2}))
            ]
        );
        assert_eq!(
            store.read(|tx| tx.resource("ecs-cluster", "i-1")).unwrap(),
            Some(json!({"other": true}))
        );
        assert!(
            store
                .write(|tx| tx.delete_resource("ec2-instance", "i-2"))
                .unwrap()
        );
        assert!(
            !store
                .write(|tx| tx.delete_resource("ec2-instance", "i-2"))
                .unwrap()
        );
        assert_eq!(
            store.read(|tx| tx.resource("ec2-instance", "i-2")).unwrap(),
            None
        );
        // A failed write leaves nothing behind.
        let err = store.write(|tx| {
            tx.put_resource("ec2-instance", "i-9", &json!({}))?;
            Err::<(), _>(crate::StoreError::NotFound {
                what: "x",
                name: "y".into(),
            })
        });
        assert!(err.is_err());
        assert_eq!(
            store.read(|tx| tx.resource("ec2-instance", "i-9")).unwrap(),
            None
        );
    }
}
