//! Function names as callers write them — a name, `name:qualifier`, a partial ARN
//! (`123456789012:function:name`) or a full ARN — and the ARNs the API returns.

use super::errors;
use crate::protocol::AwsError;

/// The `FunctionName` pattern of botocore's model (shape `NamespacedFunctionName`), quoted in
/// validation errors.
const FUNCTION_NAME_PATTERN: &str = r"(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?([a-zA-Z0-9-_\.]+)(:(\$LATEST(\.PUBLISHED)?|[a-zA-Z0-9-_]+))?";

/// What a qualifier names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Qualifier {
    /// `$LATEST`.
    Latest,
    /// A published version.
    Version(u64),
    /// An alias.
    Alias(String),
}

impl Qualifier {
    /// Classifies a qualifier; `None` if it is not a valid one.
    pub fn parse(text: &str) -> Option<Qualifier> {
        if text == "$LATEST" {
            return Some(Qualifier::Latest);
        }
        if text.is_empty() || text.len() > 128 || !text.bytes().all(is_name_byte) {
            return None;
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            return text.parse().ok().map(Qualifier::Version);
        }
        Some(Qualifier::Alias(text.to_owned()))
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Whether `name` is a valid function name (1–64 letters, digits, `-`, `_`).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(is_name_byte)
}

/// A function named in a request, with the qualifier it carried or was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The function's name.
    pub name: String,
    /// The qualifier, from the name (`name:3`) or the `Qualifier` parameter.
    pub qualifier: Option<Qualifier>,
}

/// Parses a `FunctionName` path parameter, merging the `Qualifier` parameter: a qualifier in
/// both that differs is AWS's `InvalidParameterValueException`.
pub fn parse_target(raw: &str, qualifier: Option<&str>) -> Result<Target, AwsError> {
    let invalid = || {
        errors::validation(
            raw,
            "functionName",
            &format!("Member must satisfy regular expression pattern: {FUNCTION_NAME_PATTERN}"),
        )
    };
    let parts: Vec<&str> = raw.split(':').collect();
    let (name, from_name) = match parts.as_slice() {
        [name] => (*name, None),
        [name, q] => (*name, Some(*q)),
        [_account, "function", name] => (*name, None),
        [_account, "function", name, q] => (*name, Some(*q)),
        [
            "arn",
            _partition,
            "lambda",
            _region,
            _account,
            "function",
            name,
        ] => (*name, None),
        [
            "arn",
            _partition,
            "lambda",
            _region,
            _account,
            "function",
            name,
            q,
        ] => (*name, Some(*q)),
        _ => return Err(invalid()),
    };
    if !valid_name(name) {
        return Err(invalid());
    }
    let qualifier = match (from_name, qualifier) {
        (Some(a), Some(b)) if a != b => {
            return Err(errors::invalid_parameter(
                "The derived qualifier from the function name does not match the specified qualifier.",
            ));
        }
        (Some(q), _) | (None, Some(q)) => Some(Qualifier::parse(q).ok_or_else(|| {
            errors::validation(
                q,
                "qualifier",
                r"Member must satisfy regular expression pattern: \$(LATEST(\.PUBLISHED)?)|[a-zA-Z0-9-_$]+",
            )
        })?),
        (None, None) => None,
    };
    Ok(Target {
        name: name.to_owned(),
        qualifier,
    })
}

/// Builds ARNs for one region and account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arns {
    /// The region (`us-east-1`).
    pub region: String,
    /// The account id (12 digits).
    pub account: String,
}

impl Arns {
    /// `arn:aws:lambda:<region>:<account>:function:<name>`.
    pub fn function(&self, name: &str) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{name}",
            self.region, self.account
        )
    }

    /// `arn:aws:lambda:<region>:<account>:function:<name>:<qualifier>`.
    pub fn qualified(&self, name: &str, qualifier: &str) -> String {
        format!("{}:{qualifier}", self.function(name))
    }

    /// The function a taggable resource ARN names (`TagResource`, `ListTags`): only
    /// unqualified function ARNs are tagged.
    pub fn tagged_function(&self, resource: &str) -> Result<String, AwsError> {
        let parts: Vec<&str> = resource.split(':').collect();
        match parts.as_slice() {
            ["arn", _, "lambda", _, _, "function", name] if valid_name(name) => {
                Ok((*name).to_owned())
            }
            ["arn", _, "lambda", _, _, "function", _, _] => Err(errors::invalid_parameter(
                "Tags on function aliases and versions are not supported. Please specify a function ARN.",
            )),
            _ => Err(errors::validation(
                resource,
                "resource",
                "Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*):lambda:(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:\\d{12}:(function:[a-zA-Z0-9-_]+(:(\\$LATEST|[a-zA-Z0-9-_]+))?|code-signing-config:csc-[a-z0-9]{17}|event-source-mapping:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_a_function_name_parses() {
        let t = |raw, q| parse_target(raw, q).unwrap();
        assert_eq!(
            t("f", None),
            Target {
                name: "f".into(),
                qualifier: None
            }
        );
        assert_eq!(t("f:3", None).qualifier, Some(Qualifier::Version(3)));
        assert_eq!(
            t("f", Some("live")).qualifier,
            Some(Qualifier::Alias("live".into()))
        );
        assert_eq!(
            t("000000000000:function:f:$LATEST", None).qualifier,
            Some(Qualifier::Latest)
        );
        assert_eq!(
            t("arn:aws:lambda:us-east-1:000000000000:function:f", None).name,
            "f"
        );
        assert_eq!(
            t(
                "arn:aws:lambda:us-east-1:000000000000:function:f:7",
                Some("7")
            )
            .qualifier,
            Some(Qualifier::Version(7))
        );
        let err = parse_target("f:1", Some("2")).unwrap_err();
        assert_eq!(err.code(), "InvalidParameterValueException");
        assert_eq!(
            parse_target("bad name", None).unwrap_err().code(),
            "ValidationException"
        );
        assert_eq!(
            parse_target("f", Some("a b")).unwrap_err().code(),
            "ValidationException"
        );
    }

    #[test]
    fn only_unqualified_function_arns_take_tags() {
        let arns = Arns {
            region: "us-east-1".into(),
            account: "000000000000".into(),
        };
        assert_eq!(arns.tagged_function(&arns.function("f")).unwrap(), "f");
        assert_eq!(
            arns.tagged_function(&arns.qualified("f", "1"))
                .unwrap_err()
                .code(),
            "InvalidParameterValueException"
        );
        assert_eq!(
            arns.tagged_function("f").unwrap_err().code(),
            "ValidationException"
        );
    }
}
