//! The checks a function's configuration and code pass before the store takes them: runtime
//! identifiers, the model's numeric bounds, the environment's size and the code's sizes.

use std::collections::BTreeMap;
use std::io::Cursor;

use super::Limits;
use super::errors;
use crate::protocol::AwsError;

/// The AWS runtime identifiers a zip function may be created or updated with: the runtimes
/// AWS supports, in the order AWS lists them in its validation error. Source: LocalStack's
/// `localstack/services/lambda_/runtimes.py` (`VALID_RUNTIMES`, recorded from AWS's answers in
/// its `test_create_lambda_exceptions` snapshots), which follows AWS's "Lambda runtimes" page
/// (docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html).
pub const RUNTIMES: &[&str] = &[
    "nodejs20.x",
    "python3.14",
    "provided.al2023",
    "python3.12",
    "python3.13",
    "nodejs24.x",
    "nodejs22.x",
    "java17",
    "nodejs16.x",
    "java25",
    "dotnet8",
    "python3.10",
    "java11",
    "python3.11",
    "dotnet6",
    "java21",
    "nodejs18.x",
    "provided.al2",
    "ruby3.3",
    "ruby3.4",
    "java8.al2",
    "ruby3.2",
    "python3.8",
    "python3.9",
];

/// Runtimes AWS has deprecated and no longer accepts for creating or updating functions (same
/// source, `DEPRECATED_RUNTIMES_UPGRADES`).
pub const DEPRECATED_RUNTIMES: &[&str] = &[
    "java8",
    "go1.x",
    "provided",
    "ruby2.7",
    "nodejs14.x",
    "python3.7",
    "dotnetcore3.1",
    "nodejs12.x",
];

/// Checks a runtime identifier, with AWS's messages.
pub fn runtime(runtime: &str) -> Result<(), AwsError> {
    if RUNTIMES.contains(&runtime) {
        return Ok(());
    }
    if DEPRECATED_RUNTIMES.contains(&runtime) {
        return Err(errors::invalid_parameter(format!(
            "The runtime parameter of {runtime} is no longer supported for creating or updating AWS Lambda functions. We recommend you use a supported runtime while creating or updating functions."
        )));
    }
    Err(errors::invalid_parameter(format!(
        "Value {runtime} at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: [{}] or be a valid ARN",
        RUNTIMES.join(", ")
    )))
}

/// Checks an integer against its shape's bounds (botocore's model), with AWS's
/// `ValidationException` message.
pub fn bounded(value: i64, member: &str, min: i64, max: i64) -> Result<(), AwsError> {
    if value < min {
        return Err(errors::validation(
            value,
            member,
            &format!("Member must have value greater than or equal to {min}"),
        ));
    }
    if value > max {
        return Err(errors::validation(
            value,
            member,
            &format!("Member must have value less than or equal to {max}"),
        ));
    }
    Ok(())
}

/// Checks a string's length against its shape's bound.
pub fn max_len(value: &str, member: &str, max: usize) -> Result<(), AwsError> {
    if value.chars().count() > max {
        return Err(errors::validation(
            value,
            member,
            &format!("Member must have length less than or equal to {max}"),
        ));
    }
    Ok(())
}

/// Checks the environment: names of letters, digits and `_` starting with a letter (the
/// model's `EnvironmentVariableName` pattern, `[a-zA-Z]([a-zA-Z0-9_])+`, read as a search, so
/// one-letter names such as `A` pass as they do on AWS), and the whole map, as compact JSON, within the limit (4 KB by
/// default), with AWS's message (as LocalStack measures it: `provider.py`,
/// `_verify_env_variables`).
pub fn environment(vars: &BTreeMap<String, String>, limits: &Limits) -> Result<(), AwsError> {
    for name in vars.keys() {
        let mut bytes = name.bytes();
        let ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok {
            return Err(errors::validation(
                name,
                "environment.variables",
                "Map keys must satisfy constraint: [Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+]",
            ));
        }
    }
    let measured = serde_json::to_string(vars).unwrap_or_default();
    if measured.len() > limits.env_size {
        return Err(errors::invalid_parameter(format!(
            "Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit. String measured: {measured}"
        )));
    }
    Ok(())
}

/// Checks a zip archive: within the zipped limit (413 `RequestEntityTooLargeException`), a
/// readable zip, and its contents within the unzipped limit
/// (`InvalidParameterValueException`), with LocalStack's messages (`provider.py`
/// `create_function`, `lambda_service.py` `store_lambda_archive`).
pub fn zip(bytes: &[u8], limits: &Limits) -> Result<(), AwsError> {
    if bytes.len() as u64 > limits.code_size_zipped {
        return Err(errors::too_large(format!(
            "Zipped size must be smaller than {} bytes",
            limits.code_size_zipped
        )));
    }
    let unreadable = || {
        errors::invalid_parameter(
            "Could not unzip uploaded file. Please check your file, then try to upload again.",
        )
    };
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|_| unreadable())?;
    let mut unzipped: u64 = 0;
    for i in 0..archive.len() {
        let file = archive.by_index_raw(i).map_err(|_| unreadable())?;
        unzipped = unzipped.saturating_add(file.size());
    }
    if unzipped >= limits.code_size_unzipped {
        return Err(errors::invalid_parameter(format!(
            "Unzipped size must be smaller than {} bytes",
            limits.code_size_unzipped
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtimes_are_checked_with_aws_messages() {
        assert!(runtime("python3.12").is_ok());
        assert!(runtime("provided.al2023").is_ok());
        let old = runtime("python3.7").unwrap_err();
        assert!(old.message().contains("no longer supported"), "{old}");
        let bad = runtime("cobol").unwrap_err();
        assert_eq!(bad.code(), "InvalidParameterValueException");
        assert!(
            bad.message().starts_with("Value cobol at 'runtime'"),
            "{bad}"
        );
    }

    #[test]
    fn environment_size_and_names() {
        let limits = Limits::default();
        let ok = BTreeMap::from([("A_B".to_string(), "x".repeat(100))]);
        assert!(environment(&ok, &limits).is_ok());
        let big = BTreeMap::from([("BIG".to_string(), "x".repeat(4096))]);
        let err = environment(&big, &limits).unwrap_err();
        assert!(err.message().contains("exceeded the 4KB limit"), "{err}");
        let bad = BTreeMap::from([("1X".to_string(), String::new())]);
        assert_eq!(
            environment(&bad, &limits).unwrap_err().code(),
            "ValidationException"
        );
    }

    #[test]
    fn zips_are_read_and_measured() {
        let limits = Limits::default();
        assert_eq!(
            zip(b"not a zip", &limits).unwrap_err().code(),
            "InvalidParameterValueException"
        );
        let small = Limits {
            code_size_zipped: 4,
            ..Limits::default()
        };
        assert_eq!(zip(b"12345", &small).unwrap_err().status().as_u16(), 413);
    }
}
