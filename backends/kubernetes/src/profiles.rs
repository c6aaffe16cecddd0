//! Pod profiles: LocalStack's `LOCALSTACK_K8S_POD_CONFIG`, a JSON document of named profiles
//! (scheduling, resources and metadata for pods) and which service and architecture uses which.
//!
//! The document, its fields and the resolution order are LocalStack's, as its "Pod
//! Configuration" page describes them (docs.localstack.cloud, `aws/enterprise/kubernetes/
//! pod-configuration`; source `localstack/localstack-docs`,
//! `src/content/docs/aws/enterprise/kubernetes/pod-configuration.md`):
//!
//! ```json
//! {
//!   "profiles": {"default": {...}, "defaultArm64": {...}, "lambda-arm": {...}},
//!   "services": {"lambda": {"arm64": "lambda-arm"}, "ecs": {"profile": "ecs-tasks"}}
//! }
//! ```
//!
//! A pod's profile is, in order: its service's `profile`; its service's entry for its
//! architecture (`amd64`, `arm64`); the reserved profile `defaultAmd64` or `defaultArm64`; the
//! profile the top-level `default` names, else the reserved profile `default`; else none.
//!
//! Where hoist is stricter than LocalStack: a profile name referenced but not defined fails
//! start-up (LocalStack logs a warning per pod and applies no profile), a service other than
//! `lambda`, `ec2` and `ecs` (the ones hoist creates pods for) is refused, and unknown fields
//! are found inside Kubernetes objects too (a misspelt toleration `operator`). The top-level
//! `default` naming a profile is hoist's addition; LocalStack has only the reserved name.

use std::collections::BTreeMap;

use hoist_core::{Error, Result};
use k8s_openapi::api::core::v1::{
    Affinity, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::check_label;

/// The variable holding the pod profile document.
pub const POD_CONFIG_VARIABLE: &str = "LOCALSTACK_K8S_POD_CONFIG";

/// The services hoist creates pods for, as the document's `services` names them.
pub const SERVICES: [&str; 3] = ["lambda", "ec2", "ecs"];

/// The reserved profile used when no other applies.
pub const DEFAULT_PROFILE: &str = "default";
/// The reserved profile of `amd64` workloads no service entry covers.
pub const DEFAULT_AMD64_PROFILE: &str = "defaultAmd64";
/// The reserved profile of `arm64` workloads no service entry covers.
pub const DEFAULT_ARM64_PROFILE: &str = "defaultArm64";

/// A workload's CPU architecture, as Kubernetes names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Architecture {
    /// x86-64.
    Amd64,
    /// 64-bit ARM.
    Arm64,
}

impl Architecture {
    /// Normalises an architecture as AWS or Kubernetes writes it, as LocalStack does: `arm64`,
    /// `ARM64` and `aarch64` are [`Architecture::Arm64`]; `amd64`, `x86_64` and `X86_64` are
    /// [`Architecture::Amd64`]; anything else is unknown.
    ///
    /// ```
    /// use hoist_kube::Architecture;
    ///
    /// assert_eq!(Architecture::parse("X86_64"), Some(Architecture::Amd64));
    /// assert_eq!(Architecture::parse("ARM64"), Some(Architecture::Arm64));
    /// assert_eq!(Architecture::parse("riscv64"), None);
    /// ```
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "arm64" | "aarch64" => Some(Architecture::Arm64),
            "amd64" | "x86_64" => Some(Architecture::Amd64),
            _ => None,
        }
    }

    /// Kubernetes's name: `amd64` or `arm64`.
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::Amd64 => "amd64",
            Architecture::Arm64 => "arm64",
        }
    }
}

/// One profile: what it sets on the pods that use it. Every field is Kubernetes's own JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodProfile {
    /// Tolerations; replace the backend's ([`KubeConfig::tolerations`](crate::KubeConfig)).
    #[serde(default)]
    pub tolerations: Option<Vec<Toleration>>,
    /// Node selector; replaces the backend's.
    #[serde(default)]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Affinity; replaces the backend's.
    #[serde(default)]
    pub affinity: Option<Affinity>,
    /// Topology spread constraints.
    #[serde(default)]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
    /// The priority class.
    #[serde(default)]
    pub priority_class_name: Option<String>,
    /// Requests and limits of the pod's main container, replacing those the container spec
    /// gives; build steps (init containers) keep theirs, as LocalStack's do.
    #[serde(default)]
    pub resources: Option<ResourceRequirements>,
    /// Labels, over the backend's labels and the spec's; hoist's own (`io.hoist.*`) win.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations, over the backend's; hoist's ownership annotations win.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// Which profiles one service uses: one for all its pods, or one per architecture.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceProfiles {
    /// The profile of every pod of the service, whatever its architecture.
    #[serde(default)]
    pub profile: Option<String>,
    /// The profile of its `amd64` pods.
    #[serde(default)]
    pub amd64: Option<String>,
    /// The profile of its `arm64` pods.
    #[serde(default)]
    pub arm64: Option<String>,
}

/// The pod profile document (`LOCALSTACK_K8S_POD_CONFIG`), checked: every field known, every
/// service one hoist creates pods for, every profile referenced defined, every label valid.
///
/// ```
/// use hoist_kube::{Architecture, PodProfiles};
///
/// let profiles = PodProfiles::parse(r#"{
///     "profiles": {
///         "default": {"nodeSelector": {"pool": "general"}},
///         "lambda-arm": {"nodeSelector": {"pool": "arm"}, "priorityClassName": "high"}
///     },
///     "services": {"lambda": {"arm64": "lambda-arm"}}
/// }"#).unwrap();
/// let arm = profiles.resolve(Some("lambda"), Some(Architecture::Arm64)).unwrap();
/// assert_eq!(arm.priority_class_name.as_deref(), Some("high"));
/// let other = profiles.resolve(Some("ecs"), Some(Architecture::Arm64)).unwrap();
/// assert_eq!(other.node_selector.as_ref().unwrap()["pool"], "general");
///
/// let err = PodProfiles::parse(r#"{"profiles": {"p": {"nodeSelectr": {}}}}"#).unwrap_err();
/// assert!(err.to_string().contains("profiles.p.nodeSelectr"), "{err}");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PodProfiles {
    /// The profiles, by name.
    #[serde(default)]
    pub profiles: BTreeMap<String, PodProfile>,
    /// Per service (`lambda`, `ec2`, `ecs`), the profiles it uses.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceProfiles>,
    /// The profile used when nothing more specific applies, instead of the reserved
    /// `default` profile.
    #[serde(default)]
    pub default: Option<String>,
}

impl PodProfiles {
    /// Parses and checks the document. Errors are [`InvalidInput`](hoist_core::ErrorKind)
    /// with the `field` context [`POD_CONFIG_VARIABLE`], naming what is wrong: the JSON
    /// error, every unknown field by its path (`profiles.web.tolerations[0].opertor`), an
    /// unknown service, a profile referenced but not defined, a bad label.
    pub fn parse(text: &str) -> Result<Self> {
        let profiles: PodProfiles = parse_strict(POD_CONFIG_VARIABLE, text)?;
        profiles.check()?;
        Ok(profiles)
    }

    fn check(&self) -> Result<()> {
        let refuse = |problem: String| Error::invalid_field(POD_CONFIG_VARIABLE, problem);
        let defined = |path: String, name: &String| {
            if self.profiles.contains_key(name) {
                Ok(())
            } else {
                Err(refuse(format!(
                    "names the profile `{name}` at `{path}`, but `profiles` does not define it"
                )))
            }
        };
        for (service, entry) in &self.services {
            if !SERVICES.contains(&service.as_str()) {
                return Err(refuse(format!(
                    "has the service `services.{service}`: hoist creates pods for {} only",
                    SERVICES.join(", ")
                )));
            }
            let named = [
                ("profile", &entry.profile),
                ("amd64", &entry.amd64),
                ("arm64", &entry.arm64),
            ];
            for (key, name) in named {
                if let Some(name) = name {
                    defined(format!("services.{service}.{key}"), name)?;
                }
            }
        }
        if let Some(name) = &self.default {
            defined("default".into(), name)?;
        }
        for (name, profile) in &self.profiles {
            for (key, value) in &profile.labels {
                check_label(key, value).map_err(|problem| {
                    refuse(format!(
                        "has the label `profiles.{name}.labels.{key}={value}`, which {problem}"
                    ))
                })?;
            }
            for key in profile.annotations.keys() {
                check_label(key, "").map_err(|problem| {
                    refuse(format!(
                        "has the annotation key `profiles.{name}.annotations.{key}`, which {problem}"
                    ))
                })?;
            }
        }
        Ok(())
    }

    /// The profile of a pod of `service` (`lambda`, `ec2`, `ecs`; `None` when unknown) whose
    /// workload is built for `architecture` (`None` when unknown), in LocalStack's order:
    /// `services.<service>.profile`, `services.<service>.<architecture>`, `defaultAmd64` or
    /// `defaultArm64`, the top-level `default` (else the `default` profile); `None` when
    /// nothing applies.
    pub fn resolve(
        &self,
        service: Option<&str>,
        architecture: Option<Architecture>,
    ) -> Option<&PodProfile> {
        let entry = service.and_then(|s| self.services.get(s));
        let by_arch = |entry: &ServiceProfiles| match architecture? {
            Architecture::Amd64 => entry.amd64.clone(),
            Architecture::Arm64 => entry.arm64.clone(),
        };
        let reserved = architecture.map(|a| match a {
            Architecture::Amd64 => DEFAULT_AMD64_PROFILE,
            Architecture::Arm64 => DEFAULT_ARM64_PROFILE,
        });
        let name = entry
            .and_then(|e| e.profile.clone())
            .or_else(|| entry.and_then(by_arch))
            .or_else(|| {
                reserved
                    .filter(|r| self.profiles.contains_key(*r))
                    .map(str::to_owned)
            })
            .or_else(|| self.default.clone())
            .unwrap_or_else(|| DEFAULT_PROFILE.to_owned());
        self.profiles.get(&name)
    }

    /// Whether the document defines no profile at all.
    pub fn is_empty(&self) -> bool {
        self.profiles.is_empty()
    }
}

/// Parses `text` (the value of the variable `variable`) as a `T`, refusing every field `T`
/// does not know, wherever it is: the parsed value is written back as JSON and any member of
/// the input the round trip lost is reported by its path. (Kubernetes's types skip unknown
/// fields silently, as the API server does by default.)
pub(crate) fn parse_strict<T>(variable: &str, text: &str) -> Result<T>
where
    T: serde::de::DeserializeOwned + Serialize,
{
    let input: Value = serde_json::from_str(text)
        .map_err(|e| Error::invalid_field(variable, format!("is not valid JSON: {e}")))?;
    let parsed: T = serde_path_to_error::deserialize(&input).map_err(|e| {
        let path = e.path().to_string();
        Error::invalid_field(
            variable,
            format!("has a bad value at `{path}`: {}", e.inner()),
        )
    })?;
    let written = serde_json::to_value(&parsed).map_err(|e| {
        Error::invalid_field(variable, format!("cannot be written back as JSON: {e}"))
    })?;
    let mut unknown = Vec::new();
    lost_members(&input, &written, String::new(), &mut unknown);
    if !unknown.is_empty() {
        let list = unknown
            .iter()
            .map(|p| format!("`{p}`"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(
            Error::invalid_field(variable, format!("has unknown fields: {list}"))
                .with_context("unknown", unknown.join(",")),
        );
    }
    Ok(parsed)
}

/// Collects into `out` the paths of the members of `input` (other than `null`s) that `written`
/// lacks.
fn lost_members(input: &Value, written: &Value, path: String, out: &mut Vec<String>) {
    match (input, written) {
        (Value::Object(input), Value::Object(written)) => {
            for (key, value) in input {
                let here = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match written.get(key) {
                    Some(kept) => lost_members(value, kept, here, out),
                    None if value.is_null() => {}
                    None => out.push(here),
                }
            }
        }
        (Value::Array(input), Value::Array(written)) => {
            for (i, (value, kept)) in input.iter().zip(written).enumerate() {
                lost_members(value, kept, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCUMENT: &str = r#"{
        "profiles": {
            "default": {"nodeSelector": {"pool": "general"}},
            "defaultAmd64": {"nodeSelector": {"pool": "amd"}},
            "defaultArm64": {"nodeSelector": {"pool": "arm"}},
            "lambda-arm": {"nodeSelector": {"pool": "lambda-arm"}},
            "ecs-tasks": {"nodeSelector": {"pool": "ecs"}},
            "fallback": {"nodeSelector": {"pool": "fallback"}}
        },
        "services": {
            "lambda": {"arm64": "lambda-arm"},
            "ecs": {"profile": "ecs-tasks", "arm64": "lambda-arm"}
        }
    }"#;

    fn pool(profiles: &PodProfiles, service: Option<&str>, arch: Option<Architecture>) -> String {
        profiles
            .resolve(service, arch)
            .and_then(|p| p.node_selector.as_ref())
            .map(|s| s["pool"].clone())
            .unwrap_or_default()
    }

    #[test]
    fn profiles_resolve_service_then_architecture_then_default() {
        use Architecture::{Amd64, Arm64};
        let profiles = PodProfiles::parse(DOCUMENT).unwrap();
        // The service's `profile` wins over its architecture entry.
        assert_eq!(pool(&profiles, Some("ecs"), Some(Arm64)), "ecs");
        assert_eq!(pool(&profiles, Some("ecs"), None), "ecs");
        // Then the service's architecture entry.
        assert_eq!(pool(&profiles, Some("lambda"), Some(Arm64)), "lambda-arm");
        // Then the reserved architecture defaults.
        assert_eq!(pool(&profiles, Some("lambda"), Some(Amd64)), "amd");
        assert_eq!(pool(&profiles, Some("ec2"), Some(Arm64)), "arm");
        // Then `default`.
        assert_eq!(pool(&profiles, Some("lambda"), None), "general");
        assert_eq!(pool(&profiles, None, None), "general");

        // The top-level `default` names the last resort instead of the reserved profile.
        let mut named: Value = serde_json::from_str(DOCUMENT).unwrap();
        named["default"] = "fallback".into();
        let named = PodProfiles::parse(&named.to_string()).unwrap();
        assert_eq!(pool(&named, Some("ec2"), None), "fallback");
        assert_eq!(pool(&named, Some("ec2"), Some(Amd64)), "amd");

        // Nothing applies: no profile.
        let bare = PodProfiles::parse(r#"{"profiles": {"x": {}}}"#).unwrap();
        assert!(bare.resolve(Some("lambda"), Some(Arm64)).is_none());
        assert!(PodProfiles::parse("{}").unwrap().is_empty());
    }

    #[test]
    fn unknown_fields_are_named_wherever_they_are() {
        for (text, paths) in [
            (r#"{"profile": {}}"#, vec!["profile"]),
            (
                r#"{"profiles": {"p": {"nodeSelectr": {"a": "b"}, "labels": {"a": "b"}}}}"#,
                vec!["profiles.p.nodeSelectr"],
            ),
            (
                r#"{"profiles": {"p": {"tolerations": [{"key": "k", "opertor": "Equal"}]}}}"#,
                vec!["profiles.p.tolerations[0].opertor"],
            ),
            (
                r#"{"profiles": {"p": {"affinity": {"nodeAfinity": {}}}}, "services": {"ecs": {"profile": "p", "x86": "p"}}}"#,
                vec!["profiles.p.affinity.nodeAfinity", "services.ecs.x86"],
            ),
        ] {
            let err = PodProfiles::parse(text).unwrap_err();
            assert_eq!(err.kind(), hoist_core::ErrorKind::InvalidInput);
            assert_eq!(err.context_value("field"), Some(POD_CONFIG_VARIABLE));
            assert_eq!(err.context_value("unknown"), Some(paths.join(",").as_str()));
            for path in paths {
                assert!(err.to_string().contains(&format!("`{path}`")), "{err}");
            }
        }
    }

    #[test]
    fn bad_documents_are_refused_naming_the_problem() {
        for (text, named) in [
            ("{nope", "not valid JSON"),
            (
                r#"{"profiles": {"p": {"tolerations": {}}}}"#,
                "profiles.p.tolerations",
            ),
            (r#"{"services": {"lambda": {"profile": "gone"}}}"#, "`gone`"),
            (r#"{"default": "gone"}"#, "`gone`"),
            (
                r#"{"profiles": {"p": {}}, "services": {"lamda": {"profile": "p"}}}"#,
                "`services.lamda`",
            ),
            (
                r#"{"profiles": {"p": {"labels": {"bad key": "v"}}}}"#,
                "bad key",
            ),
            (r#"{"profiles": {"p": {"annotations": {"-x": "v"}}}}"#, "-x"),
        ] {
            let err = PodProfiles::parse(text).unwrap_err();
            assert_eq!(err.kind(), hoist_core::ErrorKind::InvalidInput, "{text}");
            assert_eq!(err.context_value("field"), Some(POD_CONFIG_VARIABLE));
            assert!(err.to_string().contains(named), "{text}: {err}");
        }
    }

    #[test]
    fn architectures_are_normalised() {
        assert_eq!(Architecture::parse("x86_64"), Some(Architecture::Amd64));
        assert_eq!(Architecture::parse("x86-64"), Some(Architecture::Amd64));
        assert_eq!(Architecture::parse("aarch64"), Some(Architecture::Arm64));
        assert_eq!(Architecture::Arm64.as_str(), "arm64");
    }
}
