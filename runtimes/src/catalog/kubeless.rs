//! Kubeless catalog files (`runtime-images` of the `kubeless-config` configmap), in both schema
//! generations, as JSON or YAML.

use std::collections::BTreeMap;
use std::time::Duration;

use hoist_core::catalog::{PhaseKind, Runtime, RuntimeName, RuntimePhase};
use hoist_core::health::{HealthCheck, HttpProbe, Probe, Scheme};
use hoist_core::input::{parse_json, parse_yaml};
use hoist_core::{Error, Result};
use serde::Deserialize;

/// One language entry of a Kubeless catalog.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LanguageEntry {
    #[serde(rename = "ID")]
    id: String,
    #[serde(default)]
    compiled: bool,
    versions: Vec<VersionEntry>,
    #[serde(rename = "depName", default)]
    dep_name: Option<String>,
    #[serde(rename = "fileNameSuffix", default)]
    file_name_suffix: Option<String>,
    #[serde(rename = "livenessProbeInfo", default)]
    liveness_probe_info: Option<LivenessProbe>,
}

/// One version: either the first generation (`runtimeImage`, `initImage`) or the second
/// (ordered `images`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionEntry {
    name: String,
    version: String,
    #[serde(rename = "runtimeImage", default)]
    runtime_image: Option<String>,
    #[serde(rename = "initImage", default)]
    init_image: Option<String>,
    #[serde(default)]
    images: Option<Vec<PhaseImage>>,
    #[serde(rename = "imagePullSecrets", default)]
    image_pull_secrets: Vec<PullSecret>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PhaseImage {
    phase: PhaseKind,
    image: String,
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    secrets: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PullSecret {
    #[serde(rename = "imageSecret")]
    image_secret: String,
}

/// The Kubernetes probe subset Kubeless runtimes set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LivenessProbe {
    #[serde(rename = "httpGet")]
    http_get: HttpGet,
    #[serde(rename = "initialDelaySeconds", default)]
    initial_delay_seconds: Option<u64>,
    #[serde(rename = "periodSeconds", default)]
    period_seconds: Option<u64>,
    #[serde(rename = "timeoutSeconds", default)]
    timeout_seconds: Option<u64>,
    #[serde(rename = "failureThreshold", default)]
    failure_threshold: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpGet {
    #[serde(default = "default_probe_path")]
    path: String,
    port: u16,
}

fn default_probe_path() -> String {
    "/healthz".into()
}

/// The install command Kubeless used for first-generation entries, whose `initImage` carries no
/// command. `$HOIST_INSTALL_DIR` is the shared work directory.
fn default_install_command(id: &str) -> Option<&'static str> {
    match id {
        "python" => Some("pip install --prefix=\"$HOIST_INSTALL_DIR\" -r \"$HOIST_DEPS_FILE\""),
        "nodejs" | "node" => Some("npm install --production --prefix=\"$HOIST_INSTALL_DIR\""),
        "ruby" => {
            Some("bundle install --gemfile=\"$HOIST_DEPS_FILE\" --path=\"$HOIST_INSTALL_DIR\"")
        }
        "php" => Some("composer install -d \"$HOIST_INSTALL_DIR\""),
        _ => None,
    }
}

/// Parses a Kubeless catalog (a list of language entries) from JSON or YAML text into runtimes
/// named `ID + version` (`python3.11`). `origin` names the file in errors.
///
/// Rejected, with the entry named: unknown keys, a version with neither `runtimeImage` nor a
/// `runtime` phase in `images`, a version that mixes both generations, and names that are not
/// `letters + version`.
pub fn parse_kubeless(text: &str, origin: &str) -> Result<Vec<Runtime>> {
    let what = format!("Kubeless catalog {origin}");
    let entries: Vec<LanguageEntry> = if looks_like_json(text) {
        parse_json(text, &what)?
    } else {
        parse_yaml(text, &what)?
    };
    let mut runtimes = Vec::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let probe = entry.liveness_probe_info.as_ref().map(probe_of);
        for (j, version) in entry.versions.iter().enumerate() {
            let at = format!(
                "{origin}: [{i}] `{}` versions[{j}] `{}`",
                entry.id, version.name
            );
            let name = format!("{}{}", entry.id, version.version);
            RuntimeName::parse(&name).map_err(|e| {
                Error::invalid(format!("{at}: {}", e.message())).with_context("runtime", &name)
            })?;
            let phases = phases_of(&entry, version, &at)?;
            runtimes.push(Runtime {
                name,
                aliases: Vec::new(),
                phases,
                deps_file: entry.dep_name.clone(),
                file_suffix: entry.file_name_suffix.clone(),
                compiled: entry.compiled,
                probe: probe.clone(),
            });
        }
    }
    Ok(runtimes)
}

fn phases_of(entry: &LanguageEntry, version: &VersionEntry, at: &str) -> Result<Vec<RuntimePhase>> {
    let pull_secrets: Vec<String> = version
        .image_pull_secrets
        .iter()
        .map(|s| s.image_secret.clone())
        .collect();
    if version.images.is_some() && (version.runtime_image.is_some() || version.init_image.is_some())
    {
        return Err(Error::invalid(format!(
            "{at}: mixes `images` with `runtimeImage`/`initImage`; use one schema generation"
        ))
        .with_context("runtime", &version.name));
    }
    match (&version.images, &version.runtime_image) {
        (Some(images), _) => {
            let mut phases: Vec<RuntimePhase> = images
                .iter()
                .map(|image| RuntimePhase {
                    phase: image.phase,
                    image: image.image.clone(),
                    command: image.command.clone(),
                    env: image.env.clone(),
                    secrets: image.secrets.iter().chain(&pull_secrets).cloned().collect(),
                })
                .collect();
            phases.sort_by_key(|p| p.phase);
            if let Some(pair) = phases.windows(2).find(|w| w[0].phase == w[1].phase) {
                return Err(Error::invalid(format!(
                    "{at}: has more than one `{}` phase",
                    super::phase_name(pair[0].phase)
                ))
                .with_context("runtime", &version.name));
            }
            if !phases.iter().any(|p| p.phase == PhaseKind::Runtime) {
                return Err(no_runtime_image(at, &version.name));
            }
            Ok(phases)
        }
        (None, Some(runtime_image)) => {
            let mut phases = Vec::new();
            if let Some(init) = &version.init_image {
                let kind = if entry.compiled {
                    PhaseKind::Compilation
                } else {
                    PhaseKind::Installation
                };
                phases.push(RuntimePhase {
                    phase: kind,
                    image: init.clone(),
                    command: default_install_command(&entry.id)
                        .filter(|_| kind == PhaseKind::Installation)
                        .map(str::to_owned),
                    env: BTreeMap::new(),
                    secrets: pull_secrets.clone(),
                });
            }
            phases.push(RuntimePhase {
                phase: PhaseKind::Runtime,
                image: runtime_image.clone(),
                command: None,
                env: BTreeMap::new(),
                secrets: pull_secrets,
            });
            Ok(phases)
        }
        (None, None) => Err(no_runtime_image(at, &version.name)),
    }
}

fn no_runtime_image(at: &str, name: &str) -> Error {
    Error::invalid(format!(
        "{at}: has no runtime image (set `runtimeImage`, or an `images` entry with `phase: runtime`)"
    ))
    .with_context("runtime", name)
}

fn probe_of(info: &LivenessProbe) -> HealthCheck {
    let mut check = HealthCheck::new(Probe::Http(HttpProbe {
        scheme: Scheme::default(),
        port: info.http_get.port,
        path: info.http_get.path.clone(),
        statuses: Vec::new(),
    }));
    check.delay = Duration::from_secs(info.initial_delay_seconds.unwrap_or(3));
    check.interval = Duration::from_secs(info.period_seconds.unwrap_or(30));
    if let Some(timeout) = info.timeout_seconds {
        check.timeout = Duration::from_secs(timeout);
    }
    if let Some(failures) = info.failure_threshold {
        check.consecutive_failures = failures.max(1);
    }
    check
}

/// Whether `text` is JSON rather than YAML (a catalog is a list or an object).
pub(crate) fn looks_like_json(text: &str) -> bool {
    matches!(text.trim_start().chars().next(), Some('[') | Some('{'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const V0: &str = r#"[
      {"ID": "python", "compiled": false, "depName": "requirements.txt", "fileNameSuffix": ".py",
       "versions": [
         {"name": "python36", "version": "3.6", "runtimeImage": "kubeless/python@sha256:abc",
          "initImage": "python:3.6", "imagePullSecrets": [{"imageSecret": "regcred"}]},
         {"name": "python311", "version": "3.11", "runtimeImage": "kubeless/python:3.11"}]},
      {"ID": "go", "compiled": true, "depName": "Gopkg.toml", "fileNameSuffix": ".go",
       "versions": [{"name": "go1.10", "version": "1.10", "runtimeImage": "andresmgot/go:1",
                     "initImage": "andresmgot/go-init:19"}]}
    ]"#;

    const V1: &str = r#"
- ID: python
  depName: requirements.txt
  fileNameSuffix: .py
  livenessProbeInfo:
    httpGet: {path: /healthz, port: 8080}
    initialDelaySeconds: 5
    periodSeconds: 10
  versions:
    - name: python311
      version: "3.11"
      images:
        - phase: runtime
          image: kubeless/python:3.11
          env: {PYTHONPATH: "$(KUBELESS_INSTALL_VOLUME)/lib/python3.11/site-packages"}
        - phase: installation
          image: python:3.11
          command: pip install --prefix=$KUBELESS_INSTALL_VOLUME -r $KUBELESS_DEPS_FILE
      imagePullSecrets: [{imageSecret: regcred}]
- ID: go
  compiled: true
  depName: go.mod
  versions:
    - name: go1.21
      version: "1.21"
      images:
        - {phase: compilation, image: golang:1.21, command: go build -o server ., secrets: [netrc]}
        - {phase: runtime, image: "gcr.io/distroless/base"}
"#;

    #[test]
    fn first_generation_maps_runtime_and_init_images() {
        let runtimes = parse_kubeless(V0, "v0.json").unwrap();
        let names: Vec<_> = runtimes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["python3.6", "python3.11", "go1.10"]);
        let py = &runtimes[0];
        assert_eq!(
            py.runtime_phase().unwrap().image,
            "kubeless/python@sha256:abc"
        );
        let install = py.phase(PhaseKind::Installation).unwrap();
        assert_eq!(install.image, "python:3.6");
        assert!(install.command.as_deref().unwrap().contains("pip install"));
        assert_eq!(install.secrets, ["regcred"]);
        assert_eq!(py.deps_file.as_deref(), Some("requirements.txt"));
        assert!(runtimes[1].phase(PhaseKind::Installation).is_none());
        let go = &runtimes[2];
        assert!(go.compiled);
        assert_eq!(
            go.phase(PhaseKind::Compilation).unwrap().image,
            "andresmgot/go-init:19"
        );
    }

    #[test]
    fn second_generation_orders_phases_and_keeps_env_and_probe() {
        let runtimes = parse_kubeless(V1, "v1.yaml").unwrap();
        let py = &runtimes[0];
        assert_eq!(py.name, "python3.11");
        let kinds: Vec<_> = py.phases.iter().map(|p| p.phase).collect();
        assert_eq!(kinds, [PhaseKind::Installation, PhaseKind::Runtime]);
        assert!(py.runtime_phase().unwrap().env["PYTHONPATH"].contains("site-packages"));
        assert_eq!(py.runtime_phase().unwrap().secrets, ["regcred"]);
        let probe = py.probe.as_ref().unwrap();
        assert_eq!(probe.delay, Duration::from_secs(5));
        assert!(matches!(&probe.probe, Probe::Http(h) if h.port == 8080 && h.path == "/healthz"));
        let go = &runtimes[1];
        assert_eq!(go.phase(PhaseKind::Compilation).unwrap().secrets, ["netrc"]);
        assert!(go.compiled);
    }

    #[test]
    fn a_version_without_runtime_image_is_named() {
        let text = r#"[{"ID":"ruby","versions":[{"name":"ruby24","version":"2.4","initImage":"ruby:2.4"}]}]"#;
        let err = parse_kubeless(text, "cat.json").unwrap_err();
        assert!(
            err.to_string()
                .contains("`ruby` versions[0] `ruby24`: has no runtime image"),
            "{err}"
        );
        let text = "- ID: ruby\n  versions:\n    - name: ruby3\n      version: '3'\n      images:\n        - {phase: installation, image: ruby:3}\n";
        let err = parse_kubeless(text, "cat.yaml").unwrap_err();
        assert!(
            err.to_string().contains("`ruby3`: has no runtime image"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_and_mixed_generations_are_rejected() {
        let text = r#"[{"ID":"python","versions":[],"deps":"x"}]"#;
        let err = parse_kubeless(text, "cat.json").unwrap_err();
        assert!(err.to_string().contains("unknown field `deps`"), "{err}");
        assert!(err.to_string().contains("[0]"), "{err}");
        let text = r#"[{"ID":"python","versions":[{"name":"p","version":"3","runtimeImage":"a","images":[{"phase":"runtime","image":"b"}]}]}]"#;
        let err = parse_kubeless(text, "cat.json").unwrap_err();
        assert!(err.to_string().contains("mixes `images`"), "{err}");
        let text = r#"[{"ID":"python","versions":[{"name":"p","version":"3","images":[{"phase":"runtime","image":"b","cmd":"x"}]}]}]"#;
        assert!(
            parse_kubeless(text, "cat.json")
                .unwrap_err()
                .to_string()
                .contains("unknown field `cmd`")
        );
    }
}
