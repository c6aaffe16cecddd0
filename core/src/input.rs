//! Reading outside input (task files, catalogs, configuration files, wire objects) into typed
//! values. Every error is [`ErrorKind::InvalidInput`] and names the path of the first field that
//! does not fit, as the user wrote it (`tasks[1].container.ports[0].container_port`), in the
//! message and as the `field` context.

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer};

use crate::error::{Error, ErrorKind, Result};

/// Deserializes YAML into `T`; `what` names the input in errors (`"task file"`).
///
/// ```
/// use hoist_core::input::parse_yaml;
///
/// #[derive(serde::Deserialize, Debug)]
/// #[serde(deny_unknown_fields)]
/// struct Config { port: u16 }
///
/// let err = parse_yaml::<Config>("port: 99999", "config.yaml").unwrap_err();
/// assert!(err.to_string().contains("config.yaml at `port`"), "{err}");
/// assert_eq!(err.context_value("field"), Some("port"));
/// ```
pub fn parse_yaml<T: DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    let value: serde_json::Value = serde_saphyr::from_str(text).map_err(|e| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("{what} is not valid YAML: {e}"),
        )
    })?;
    deserialize(value, what, None)
}

/// Deserializes JSON into `T`; `what` names the input in errors (`"function spec"`).
pub fn parse_json<T: DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("{what} is not valid JSON: {e}"),
        )
    })?;
    deserialize(value, what, None)
}

/// Deserializes `T` from any serde deserializer (a `serde_json::Value`, a `&Value`), naming
/// the path of a bad field. With `prefix`, paths are reported under it: a section `acl` of a
/// configuration file reports `acl.chain`, not `chain`.
///
/// ```
/// use hoist_core::input::deserialize;
///
/// #[derive(serde::Deserialize, Debug)]
/// #[serde(deny_unknown_fields)]
/// struct Acl { chain: String }
///
/// let section = serde_json::json!({ "chain": 7 });
/// let err = deserialize::<Acl, _>(&section, "config.yaml", Some("acl")).unwrap_err();
/// assert_eq!(err.context_value("field"), Some("acl.chain"));
/// ```
pub fn deserialize<'de, T, D>(input: D, what: &str, prefix: Option<&str>) -> Result<T>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    serde_path_to_error::deserialize(input).map_err(|e| {
        let path = e.path().to_string();
        let path = match (prefix, path.as_str()) {
            (None, ".") => String::new(),
            (None, _) => path,
            (Some(prefix), ".") => prefix.to_owned(),
            (Some(prefix), _) => format!("{prefix}.{path}"),
        };
        let inner = e.into_inner();
        if path.is_empty() {
            Error::new(ErrorKind::InvalidInput, format!("{what}: {inner}"))
        } else {
            Error::new(
                ErrorKind::InvalidInput,
                format!("{what} at `{path}`: {inner}"),
            )
            .with_context("field", path)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        inner: Vec<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        port: u16,
    }

    #[test]
    fn errors_name_the_path_with_and_without_a_prefix() {
        let err = parse_json::<Outer>(r#"{"inner":[{"port":1},{"port":-1}]}"#, "spec").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(err.context_value("field"), Some("inner[1].port"));
        assert!(
            err.message().starts_with("spec at `inner[1].port`: "),
            "{err}"
        );

        let value = serde_json::json!({"inner": [{"prt": 1}]});
        let err = deserialize::<Outer, _>(&value, "config", Some("section")).unwrap_err();
        assert_eq!(err.context_value("field"), Some("section.inner[0].prt"));
    }

    #[test]
    fn a_document_of_the_wrong_shape_names_no_field() {
        let err = parse_yaml::<Outer>("just text", "task file").unwrap_err();
        assert_eq!(err.context_value("field"), None);
        assert!(err.message().starts_with("task file: "), "{err}");
        let err = parse_yaml::<Outer>("inner: [", "task file").unwrap_err();
        assert!(err.message().contains("not valid YAML"), "{err}");
    }
}
