//! Reading request bodies: the JSON object an operation takes, member by member, and the
//! configuration members `CreateFunction` and `UpdateFunctionConfiguration` share.

use std::collections::BTreeMap;

use hoist_store::FunctionRecord;
use serde_json::{Map, Value, json};

use super::{LambdaService, errors, validate};
use crate::protocol::AwsError;

/// A request's JSON members, taken one by one; what is left at the end was not understood.
pub(super) struct Members(Map<String, Value>);

impl Members {
    /// Reads a control-plane request's body (within the request size limit) and parses it.
    pub(super) async fn read(
        service: &LambdaService,
        body: axum::body::Body,
        operation: &str,
    ) -> Result<Members, AwsError> {
        let body =
            crate::protocol::read_body(body, service.config().limits.request_size, operation)
                .await?;
        Members::parse(&body)
    }

    /// Parses a body (an empty one is `{}`).
    pub(super) fn parse(body: &[u8]) -> Result<Members, AwsError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Members(Map::new()));
        }
        match serde_json::from_slice(body) {
            Ok(Value::Object(map)) => Ok(Members(map)),
            Ok(_) => Err(errors::serialization("it is not a JSON object")),
            Err(e) => Err(errors::serialization(e)),
        }
    }

    pub(super) fn has(&self, key: &str) -> bool {
        self.0.get(key).is_some_and(|v| !v.is_null())
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        self.0.remove(key).filter(|v| !v.is_null())
    }

    fn mismatch(key: &str, expected: &str) -> AwsError {
        errors::serialization(format!("`{key}` must be {expected}"))
    }

    pub(super) fn string(&mut self, key: &str) -> Result<Option<String>, AwsError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Self::mismatch(key, "a string")),
        }
    }

    pub(super) fn integer(&mut self, key: &str) -> Result<Option<i64>, AwsError> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| Self::mismatch(key, "an integer")),
        }
    }

    pub(super) fn boolean(&mut self, key: &str) -> Result<bool, AwsError> {
        match self.take(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(b),
            Some(_) => Err(Self::mismatch(key, "true or false")),
        }
    }

    pub(super) fn object(&mut self, key: &str) -> Result<Option<Members>, AwsError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Members(map))),
            Some(_) => Err(Self::mismatch(key, "an object")),
        }
    }

    pub(super) fn string_map(
        &mut self,
        key: &str,
    ) -> Result<Option<BTreeMap<String, String>>, AwsError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Object(map)) => map
                .into_iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k, s)),
                    _ => Err(Self::mismatch(key, "a map of strings")),
                })
                .collect::<Result<_, _>>()
                .map(Some),
            Some(_) => Err(Self::mismatch(key, "a map of strings")),
        }
    }

    pub(super) fn strings(&mut self, key: &str) -> Result<Option<Vec<String>>, AwsError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(Self::mismatch(key, "a list of strings")),
                })
                .collect::<Result<_, _>>()
                .map(Some),
            Some(_) => Err(Self::mismatch(key, "a list of strings")),
        }
    }

    /// The raw value of a member kept as given.
    pub(super) fn raw(&mut self, key: &str) -> Option<Value> {
        self.take(key)
    }

    /// Refuses any member left that carries a value: hoist does not support it, and says so
    /// rather than ignoring it. Empty values (`[]`, `{}`, `""`, `false`, objects of those) are
    /// what tools send for "none" and pass.
    pub(super) fn finish(self, operation: &str) -> Result<(), AwsError> {
        fn empty(v: &Value) -> bool {
            match v {
                Value::Null | Value::Bool(false) => true,
                Value::String(s) => s.is_empty(),
                Value::Array(a) => a.is_empty(),
                Value::Object(o) => o.values().all(empty),
                _ => false,
            }
        }
        match self.0.iter().find(|(_, v)| !empty(v)) {
            Some((key, _)) => Err(errors::invalid_parameter(format!(
                "hoist does not support `{key}` in {operation}"
            ))),
            None => Ok(()),
        }
    }
}

fn role(role: &str) -> Result<(), AwsError> {
    // arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+ (botocore's `RoleArn`).
    let ok = (|| {
        let rest = role.strip_prefix("arn:")?;
        let (partition, rest) = rest.split_once(":iam::")?;
        let partition_ok = partition.is_empty()
            || (partition.starts_with("aws")
                && partition
                    .bytes()
                    .all(|b| b.is_ascii_alphabetic() || b == b'-'));
        let (account, rest) = rest.split_once(':')?;
        let path = rest.strip_prefix("role")?;
        let path = path.strip_prefix('/').unwrap_or(path);
        let path_ok = !path.is_empty()
            && path
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-/".contains(&b));
        Some(
            partition_ok
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && path_ok,
        )
    })()
    .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(errors::validation(
            role,
            "role",
            r"Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+",
        ))
    }
}

/// Applies the configuration members (`Handler`, `Runtime`, `Role`, `Description`, `Timeout`,
/// `MemorySize`, `Environment`, `TracingConfig`, `EphemeralStorage`, `LoggingConfig`,
/// `ImageConfig`) of a request to a function's stored configuration, checking each.
pub(super) fn apply_configuration(
    service: &LambdaService,
    function: &mut FunctionRecord,
    input: &mut Members,
) -> Result<(), AwsError> {
    let limits = &service.config().limits;
    let image = function.configuration["PackageType"] == "Image";
    let doc = &mut function.configuration;
    if let Some(handler) = input.string("Handler")? {
        validate::max_len(&handler, "handler", 128)?;
        if handler.is_empty() || handler.chars().any(char::is_whitespace) {
            return Err(errors::validation(
                &handler,
                "handler",
                r"Member must satisfy regular expression pattern: [^\s]+",
            ));
        }
        doc["Handler"] = json!(handler);
    }
    if let Some(runtime) = input.string("Runtime")? {
        validate::runtime(&runtime)?;
        doc["Runtime"] = json!(runtime);
    }
    if let Some(r) = input.string("Role")? {
        role(&r)?;
        doc["Role"] = json!(r);
    }
    if let Some(description) = input.string("Description")? {
        validate::max_len(&description, "description", 256)?;
        doc["Description"] = json!(description);
    }
    // Bounds of the model's `Timeout` and `MemorySize` shapes.
    if let Some(timeout) = input.integer("Timeout")? {
        validate::bounded(timeout, "timeout", 1, 5400)?;
        doc["Timeout"] = json!(timeout);
    }
    if let Some(memory) = input.integer("MemorySize")? {
        validate::bounded(memory, "memorySize", 128, 32768)?;
        doc["MemorySize"] = json!(memory);
    }
    if let Some(mut environment) = input.object("Environment")? {
        let vars = environment.string_map("Variables")?.unwrap_or_default();
        environment.finish("Environment")?;
        validate::environment(&vars, limits)?;
        if let Some(map) = doc.as_object_mut() {
            if vars.is_empty() {
                map.remove("Environment");
            } else {
                map.insert("Environment".into(), json!({ "Variables": vars }));
            }
        }
    }
    if let Some(mut tracing) = input.object("TracingConfig")? {
        let mode = tracing
            .string("Mode")?
            .unwrap_or_else(|| "PassThrough".into());
        tracing.finish("TracingConfig")?;
        if mode != "Active" && mode != "PassThrough" {
            return Err(errors::validation(
                &mode,
                "tracingConfig.mode",
                "Member must satisfy enum value set: [Active, PassThrough]",
            ));
        }
        doc["TracingConfig"] = json!({ "Mode": mode });
    }
    if let Some(mut storage) = input.object("EphemeralStorage")? {
        let size = storage.integer("Size")?.unwrap_or(512);
        storage.finish("EphemeralStorage")?;
        validate::bounded(size, "ephemeralStorage.size", 512, 10240)?;
        doc["EphemeralStorage"] = json!({ "Size": size });
    }
    if let Some(logging) = input.raw("LoggingConfig") {
        let Value::Object(given) = logging else {
            return Err(errors::serialization("`LoggingConfig` must be an object"));
        };
        let mut merged = doc["LoggingConfig"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        merged.extend(given);
        doc["LoggingConfig"] = Value::Object(merged);
    }
    if let Some(config) = input.raw("ImageConfig") {
        if !image {
            return Err(errors::invalid_parameter(
                "ImageConfig is only supported for functions with PackageType Image.",
            ));
        }
        doc["ImageConfigResponse"] = json!({ "ImageConfig": config });
    }
    Ok(())
}

/// A list operation's answer: `{key: items}`, and `NextMarker` when there are more.
pub(super) fn listing(
    key: &str,
    items: Vec<Value>,
    next: Option<String>,
) -> axum::response::Response {
    let mut body = Map::new();
    body.insert(key.to_owned(), Value::Array(items));
    if let Some(next) = next {
        body.insert("NextMarker".into(), json!(next));
    }
    crate::protocol::json_response(axum::http::StatusCode::OK, &Value::Object(body))
}
