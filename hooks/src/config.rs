//! Reading a hook's configuration section, and the checks several hooks share.

use hoist_core::{Error, Result};
use serde::de::DeserializeOwned;

/// Deserializes the section of hook `hook` (`null` reads as an empty section). Errors name the
/// key with its section in their `field` context: `acl.chain`, `iptables.chains.forward`.
pub(crate) fn parse<T: DeserializeOwned>(hook: &str, value: &serde_json::Value) -> Result<T> {
    let empty = serde_json::Value::Object(serde_json::Map::new());
    let value = if value.is_null() { &empty } else { value };
    hoist_core::input::deserialize(value, "the hook configuration", Some(hook))
}

/// Checks a network interface name as Linux and `iptables -i` take it: 1 to 15 bytes, no
/// whitespace, `/` or `:`, not `.` or `..`. A trailing `+` (iptables' wildcard) is allowed.
pub(crate) fn check_interface(key: &str, name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c.is_whitespace() || c == '/' || c == ':' || c.is_control());
    if bad {
        return Err(Error::invalid_field(
            key,
            format!(
                "is `{name}`, which is not a valid interface name (1 to 15 characters, no spaces, `/` or `:`)"
            ),
        ));
    }
    Ok(())
}

/// Checks a chain name: 1 to 28 characters, no whitespace, not starting with `-` or `!`.
pub(crate) fn check_chain_name(key: &str, chain: &str) -> Result<()> {
    let bad = chain.is_empty()
        || chain.len() > 28
        || chain.starts_with(['-', '!'])
        || chain.chars().any(|c| c.is_whitespace() || c.is_control());
    if bad {
        return Err(Error::invalid_field(
            key,
            format!("is `{chain}`, which is not a valid chain name"),
        ));
    }
    Ok(())
}

/// The comment tag every rule of a task carries, so `iptables -S` shows whose rules they are.
pub(crate) fn rule_comment(hook: &str, task: &hoist_core::TaskId) -> String {
    let mut comment = format!("hoist {hook} {task}");
    // The comment match takes at most 255 bytes.
    if comment.len() > 255 {
        let mut end = 255;
        while !comment.is_char_boundary(end) {
            end -= 1;
        }
        comment.truncate(end);
    }
    comment
}

/// Serde default for switches that are on unless turned off.
pub(crate) fn yes() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Demo {
        chain: String,
        #[serde(default)]
        nested: Nested,
    }

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Nested {
        #[serde(default)]
        on: bool,
    }

    #[test]
    fn errors_name_the_key_with_its_section() {
        let err = parse::<Demo>(
            "acl",
            &serde_json::json!({"chain": "X", "nested": {"on": "yes"}}),
        )
        .unwrap_err();
        assert_eq!(err.context_value("field"), Some("acl.nested.on"));
        let err = parse::<Demo>("acl", &serde_json::json!({"chain": "X", "chian": 1})).unwrap_err();
        assert!(err.to_string().contains("chian"), "{err}");
        let err = parse::<Demo>("acl", &serde_json::Value::Null).unwrap_err();
        assert!(err.to_string().contains("missing field `chain`"), "{err}");
    }

    #[test]
    fn interface_and_chain_names_are_checked() {
        check_interface("k", "docker0").unwrap();
        check_interface("k", "veth+").unwrap();
        assert!(check_interface("k", "a very long interface name").is_err());
        assert!(check_interface("k", "eth0:1").is_err());
        assert!(check_interface("k", "").is_err());
        check_chain_name("k", "HOIST-ACL").unwrap();
        assert!(check_chain_name("k", "-A").is_err());
        assert!(check_chain_name("k", "TWO WORDS").is_err());
    }
}
