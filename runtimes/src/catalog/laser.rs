//! Laser-style executor providers: `NAME`, `RUNTIME` (a `;`-separated alias list), `IMAGE` and
//! `CMD`, read from a file or from `EXECUTOR_<n>_*` variables.

use std::collections::BTreeMap;

use hoist_core::catalog::{PhaseKind, Runtime, RuntimeName, RuntimePhase};
use hoist_core::input::{parse_json, parse_yaml};
use hoist_core::{Error, ErrorKind, Result};
use serde::Deserialize;

use super::kubeless::looks_like_json;

/// One executor provider, as Laser links it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorProvider {
    /// The provider's name (`python-executor`); unique across providers.
    #[serde(rename = "NAME")]
    pub name: String,
    /// The runtimes it serves, `;`-separated (`java;scala`); the first is the canonical name.
    #[serde(rename = "RUNTIME")]
    pub runtime: String,
    /// The image that runs the executor.
    #[serde(rename = "IMAGE")]
    pub image: String,
    /// The executor's command (`bin/gestalt-laser-executor-python`).
    #[serde(rename = "CMD")]
    pub cmd: String,
    /// Meta's id of the provider, when linked through Meta.
    #[serde(rename = "META_ID", default)]
    pub meta_id: Option<String>,
    /// Warm executors to keep per runtime.
    #[serde(rename = "MIN_COOL", default)]
    pub min_cool: Option<u32>,
}

impl ExecutorProvider {
    /// The runtime aliases, trimmed, in order.
    pub fn aliases(&self) -> Vec<String> {
        self.runtime
            .split(';')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn to_runtime(&self, at: &str) -> Result<Runtime> {
        for (field, value) in [
            ("NAME", &self.name),
            ("IMAGE", &self.image),
            ("CMD", &self.cmd),
        ] {
            if value.trim().is_empty() {
                return Err(Error::invalid(format!("{at}: `{field}` is empty"))
                    .with_context("provider", &self.name));
            }
        }
        let mut aliases = self.aliases();
        if aliases.is_empty() {
            return Err(Error::invalid(format!("{at}: `RUNTIME` names no runtime"))
                .with_context("provider", &self.name));
        }
        for alias in &aliases {
            RuntimeName::parse(alias).map_err(|e| {
                Error::invalid(format!("{at}: `RUNTIME` alias {}", e.message()))
                    .with_context("provider", &self.name)
            })?;
        }
        let name = aliases.remove(0);
        Ok(Runtime {
            name,
            aliases,
            phases: vec![RuntimePhase {
                phase: PhaseKind::Runtime,
                image: self.image.clone(),
                command: Some(self.cmd.clone()),
                env: BTreeMap::new(),
                secrets: Vec::new(),
            }],
            deps_file: None,
            file_suffix: None,
            compiled: false,
            probe: None,
        })
    }
}

/// Parses a list of providers from JSON or YAML; `origin` names the file in errors.
pub fn parse_providers(text: &str, origin: &str) -> Result<Vec<ExecutorProvider>> {
    let what = format!("executor providers {origin}");
    if looks_like_json(text) {
        parse_json(text, &what)
    } else {
        parse_yaml(text, &what)
    }
}

/// Reads providers from `EXECUTOR_<n>_NAME`, `_RUNTIME`, `_IMAGE`, `_CMD` (and optional
/// `_META_ID`, `_MIN_COOL`) variables, in index order. Other variables are ignored; an unknown
/// `EXECUTOR_<n>_` suffix or a missing required one is an error naming the variable.
pub fn providers_from_vars<I, K, V>(vars: I) -> Result<Vec<ExecutorProvider>>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut by_index: BTreeMap<u32, BTreeMap<String, String>> = BTreeMap::new();
    for (key, value) in vars {
        let key = key.as_ref();
        let Some(rest) = key.strip_prefix("EXECUTOR_") else {
            continue;
        };
        let Some((index, field)) = rest.split_once('_') else {
            continue;
        };
        let Ok(index) = index.parse::<u32>() else {
            continue;
        };
        if !matches!(
            field,
            "NAME" | "RUNTIME" | "IMAGE" | "CMD" | "META_ID" | "MIN_COOL"
        ) {
            return Err(Error::invalid(format!(
                "`{key}`: unknown executor variable (expected EXECUTOR_<n>_NAME, _RUNTIME, _IMAGE, _CMD, _META_ID or _MIN_COOL)"
            ))
            .with_context("variable", key));
        }
        by_index
            .entry(index)
            .or_default()
            .insert(field.to_owned(), value.as_ref().to_owned());
    }
    by_index
        .into_iter()
        .map(|(index, mut fields)| {
            let mut take = |field: &str| {
                fields.remove(field).ok_or_else(|| {
                    Error::invalid(format!("`EXECUTOR_{index}_{field}` is missing"))
                        .with_context("variable", format!("EXECUTOR_{index}_{field}"))
                })
            };
            let name = take("NAME")?;
            let runtime = take("RUNTIME")?;
            let image = take("IMAGE")?;
            let cmd = take("CMD")?;
            let min_cool = match fields.remove("MIN_COOL") {
                Some(text) => Some(text.trim().parse::<u32>().map_err(|_| {
                    Error::invalid(format!(
                        "`EXECUTOR_{index}_MIN_COOL` is not a count: `{text}`"
                    ))
                    .with_context("variable", format!("EXECUTOR_{index}_MIN_COOL"))
                })?),
                None => None,
            };
            Ok(ExecutorProvider {
                name,
                runtime,
                image,
                cmd,
                meta_id: fields.remove("META_ID"),
                min_cool,
            })
        })
        .collect()
}

/// Turns providers into runtimes, rejecting duplicate provider names and runtime aliases
/// claimed by two providers (both named in the error).
pub fn providers_to_runtimes(providers: &[ExecutorProvider], origin: &str) -> Result<Vec<Runtime>> {
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut aliases: BTreeMap<String, &str> = BTreeMap::new();
    let mut runtimes = Vec::new();
    for (i, provider) in providers.iter().enumerate() {
        let at = format!("{origin}: executor [{i}] `{}`", provider.name);
        if let Some(first) = names.insert(&provider.name, i) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!(
                    "{origin}: executors [{first}] and [{i}] are both named `{}`",
                    provider.name
                ),
            )
            .with_context("provider", &provider.name));
        }
        let runtime = provider.to_runtime(&at)?;
        for alias in std::iter::once(&runtime.name).chain(&runtime.aliases) {
            if let Some(other) = aliases.insert(alias.clone(), &provider.name) {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "{origin}: runtime `{alias}` is claimed by executors `{other}` and `{}`",
                        provider.name
                    ),
                )
                .with_context("runtime", alias));
            }
        }
        runtimes.push(runtime);
    }
    Ok(runtimes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_make_providers_with_aliases() {
        let vars = [
            ("PATH", "/bin"),
            ("EXECUTOR_1_NAME", "jvm-executor"),
            ("EXECUTOR_1_RUNTIME", "java;scala"),
            ("EXECUTOR_1_IMAGE", "galacticfog/laser-java"),
            ("EXECUTOR_1_CMD", "bin/gestalt-laser-executor-java"),
            ("EXECUTOR_0_NAME", "python-executor"),
            ("EXECUTOR_0_RUNTIME", "python3.11"),
            ("EXECUTOR_0_IMAGE", "galacticfog/laser-python"),
            ("EXECUTOR_0_CMD", "bin/gestalt-laser-executor-python"),
            ("EXECUTOR_0_META_ID", "7b1c"),
        ];
        let providers = providers_from_vars(vars).unwrap();
        assert_eq!(providers[0].name, "python-executor");
        assert_eq!(providers[0].meta_id.as_deref(), Some("7b1c"));
        let runtimes = providers_to_runtimes(&providers, "env").unwrap();
        assert_eq!(runtimes[1].name, "java");
        assert_eq!(runtimes[1].aliases, ["scala"]);
        let phase = runtimes[1].runtime_phase().unwrap();
        assert_eq!(
            phase.command.as_deref(),
            Some("bin/gestalt-laser-executor-java")
        );
    }

    #[test]
    fn missing_and_unknown_variables_are_named() {
        let err = providers_from_vars([
            ("EXECUTOR_2_NAME", "x"),
            ("EXECUTOR_2_IMAGE", "i"),
            ("EXECUTOR_2_CMD", "c"),
        ])
        .unwrap_err();
        assert!(
            err.to_string().contains("`EXECUTOR_2_RUNTIME` is missing"),
            "{err}"
        );
        let err = providers_from_vars([("EXECUTOR_0_IMAGES", "x")]).unwrap_err();
        assert!(
            err.to_string().contains("`EXECUTOR_0_IMAGES`: unknown"),
            "{err}"
        );
    }

    #[test]
    fn clashing_aliases_and_names_name_both_providers() {
        let text = r#"[
          {"NAME": "jvm-executor", "RUNTIME": "java;scala", "IMAGE": "a", "CMD": "a"},
          {"NAME": "scala-executor", "RUNTIME": "scala2;scala", "IMAGE": "b", "CMD": "b"}]"#;
        let providers = parse_providers(text, "providers.json").unwrap();
        let err = providers_to_runtimes(&providers, "providers.json").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        assert!(
            err.to_string()
                .contains("`scala` is claimed by executors `jvm-executor` and `scala-executor`"),
            "{err}"
        );
        let text = "- {NAME: x, RUNTIME: go, IMAGE: a, CMD: a}\n- {NAME: x, RUNTIME: rust, IMAGE: b, CMD: b}\n";
        let providers = parse_providers(text, "p.yaml").unwrap();
        let err = providers_to_runtimes(&providers, "p.yaml").unwrap_err();
        assert!(
            err.to_string().contains("[0] and [1] are both named `x`"),
            "{err}"
        );
        let err = parse_providers(
            r#"[{"NAME":"x","RUNTIME":"go","IMAGE":"a","CMD":"a","PORT":1}]"#,
            "p.json",
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `PORT`"), "{err}");
    }
}
