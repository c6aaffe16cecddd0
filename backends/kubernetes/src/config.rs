//! How the backend renders pods and how long it waits: [`KubeConfig`], and the `k=v,k2=v2` label
//! form ([`parse_labels`]).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use hoist_core::{Error, Result};
use k8s_openapi::api::core::v1::{Affinity, SecurityContext, Toleration};

use crate::profiles::{POD_CONFIG_VARIABLE, PodProfiles, parse_strict};

/// The variable naming the namespace of pods (LocalStack's).
pub const NAMESPACE_VARIABLE: &str = "LOCALSTACK_K8S_NAMESPACE";
/// The variable of labels on every pod, `k=v,k2=v2` (LocalStack's).
pub const LABELS_VARIABLE: &str = "LOCALSTACK_K8S_LABELS";
/// The older name of [`LABELS_VARIABLE`], which LocalStack still reads.
pub const OLD_LABELS_VARIABLE: &str = "LAMBDA_K8S_LABELS";
/// The variable of annotations on every pod, `k=v,k2=v2` (LocalStack's).
pub const ANNOTATIONS_VARIABLE: &str = "LOCALSTACK_K8S_ANNOTATIONS";
/// The variable holding the containers' security context as Kubernetes's JSON (LocalStack's).
pub const SECURITY_CONTEXT_VARIABLE: &str = "K8S_CONTAINER_SECURITY_CONTEXT";

/// DNS settings every pod gets, merged with the container spec's `dns` servers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsSettings {
    /// Name servers. When set (here or in the spec), the pod's DNS policy is `None` and only
    /// these servers are used, as LocalStack's `LAMBDA_DOCKER_DNS` does.
    pub nameservers: Vec<IpAddr>,
    /// Search domains.
    pub searches: Vec<String>,
    /// Resolver options (`ndots:2` is `("ndots", Some("2"))`).
    pub options: Vec<(String, Option<String>)>,
}

/// Backoff between attempts to re-establish a watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The longest delay; delays double up to it.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The delay before attempt `attempt` (0-based): `initial * 2^attempt`, capped at `max`.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.initial
            .checked_mul(1u32 << attempt.min(20))
            .unwrap_or(self.max)
            .min(self.max)
    }
}

/// How a container spec's host volumes reach its pod.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HostVolumes {
    /// A `hostPath` volume: the path must exist on the node the pod runs on (a one-node
    /// cluster, files shipped with the node image, or a shared mount).
    #[default]
    HostPath,
    /// The files are copied, when the pod starts, into one ConfigMap per volume owned by the
    /// pod (Kubernetes deletes it with the pod) and mounted from it, so the pod can run on any
    /// node. Such volumes are read-only, hold at most [`COPY_LIMIT`](crate::COPY_LIMIT)
    /// bytes each, and keep each file's permission bits; a writable volume, a bigger one or a
    /// special file is refused at `create`, naming the volume.
    Copy,
}

/// How the Kubernetes backend renders pods and bounds its waits.
///
/// ```
/// use hoist_kube::{KubeConfig, parse_labels};
///
/// let config = KubeConfig {
///     namespace: "functions".into(),
///     labels: parse_labels("team=payments,tier=lambda").unwrap(),
///     ..KubeConfig::default()
/// };
/// assert_eq!(config.labels["tier"], "lambda");
/// ```
#[derive(Debug, Clone)]
pub struct KubeConfig {
    /// The namespace pods are created in. Default `default`.
    pub namespace: String,
    /// Labels on every pod (LocalStack's `LOCALSTACK_K8S_LABELS`, formerly
    /// `LAMBDA_K8S_LABELS`), under the spec's own labels, the pod profile's and hoist's.
    pub labels: BTreeMap<String, String>,
    /// Annotations on every pod (LocalStack's `LOCALSTACK_K8S_ANNOTATIONS`), under the pod
    /// profile's and hoist's ownership annotations.
    pub annotations: BTreeMap<String, String>,
    /// Pod profiles (LocalStack's `LOCALSTACK_K8S_POD_CONFIG`): each pod gets the one its
    /// service and architecture resolve to, read from the spec's
    /// [`SERVICE`](hoist_core::labels::SERVICE) and
    /// [`ARCHITECTURE`](hoist_core::labels::ARCHITECTURE) labels.
    pub pod_profiles: PodProfiles,
    /// Names of secrets used to pull images (`imagePullSecrets`).
    pub image_pull_secrets: Vec<String>,
    /// DNS settings for every pod.
    pub dns: DnsSettings,
    /// The image used when a spec names none (Kubernetes always needs one).
    pub default_image: Option<String>,
    /// Node selector; empty leaves scheduling to the cluster's defaults. A pod profile's
    /// replaces it, as do its affinity and tolerations.
    pub node_selector: BTreeMap<String, String>,
    /// Affinity rules; `None` leaves scheduling to the cluster's defaults.
    pub affinity: Option<Affinity>,
    /// Tolerations.
    pub tolerations: Vec<Toleration>,
    /// The service account; with none, no service account token is mounted.
    pub service_account: Option<String>,
    /// The security context of every container (LocalStack's `K8S_CONTAINER_SECURITY_CONTEXT`).
    /// `None` gives the non-root default: `runAsNonRoot`, no privilege escalation, every
    /// capability dropped, the runtime's default seccomp profile.
    pub security_context: Option<SecurityContext>,
    /// The prefix of pod names (`<prefix>-<task>-<random>`).
    pub name_prefix: String,
    /// Where build steps and the main container share their `emptyDir` volume.
    pub build_mount: String,
    /// How host volumes reach pods. Default [`HostVolumes::HostPath`].
    pub host_volumes: HostVolumes,
    /// Deadline of each plain API request (create, get, delete, list).
    pub request_timeout: Duration,
    /// How long one watch request runs before the backend renews it.
    pub watch_timeout: Duration,
    /// Backoff between attempts to re-establish a failed or expired watch.
    pub backoff: Backoff,
    /// How long `stop` waits for the pod to go beyond its grace period.
    pub stop_slack: Duration,
}

impl Default for KubeConfig {
    fn default() -> Self {
        KubeConfig {
            namespace: "default".into(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            pod_profiles: PodProfiles::default(),
            image_pull_secrets: Vec::new(),
            dns: DnsSettings::default(),
            default_image: None,
            node_selector: BTreeMap::new(),
            affinity: None,
            tolerations: Vec::new(),
            service_account: None,
            security_context: None,
            name_prefix: "hoist".into(),
            build_mount: "/hoist/build".into(),
            host_volumes: HostVolumes::HostPath,
            request_timeout: Duration::from_secs(30),
            watch_timeout: Duration::from_secs(290),
            backoff: Backoff::default(),
            stop_slack: Duration::from_secs(30),
        }
    }
}

impl KubeConfig {
    /// The default configuration with LocalStack's variables of pods read from `vars` (a
    /// program passes its environment; unknown variables are ignored): `LOCALSTACK_K8S_NAMESPACE`,
    /// `LOCALSTACK_K8S_LABELS` (or its older name `LAMBDA_K8S_LABELS`; the newer wins a key
    /// both set), `LOCALSTACK_K8S_ANNOTATIONS`, `LOCALSTACK_K8S_POD_CONFIG` ([`PodProfiles`])
    /// and `K8S_CONTAINER_SECURITY_CONTEXT` (Kubernetes's `SecurityContext` JSON). These are
    /// the variables of LocalStack's Kubernetes configuration reference
    /// (`localstack/localstack-docs`, `src/content/docs/aws/enterprise/kubernetes/
    /// configuration.md`). A malformed value is an
    /// [`InvalidInput`](hoist_core::ErrorKind::InvalidInput) error whose `field` context is
    /// the variable; unknown fields of the JSON ones are named by their paths.
    ///
    /// ```
    /// use hoist_kube::KubeConfig;
    ///
    /// let config = KubeConfig::from_vars([
    ///     ("LOCALSTACK_K8S_NAMESPACE", "workloads"),
    ///     ("LOCALSTACK_K8S_ANNOTATIONS", "prometheus.io/scrape=true"),
    ///     ("K8S_CONTAINER_SECURITY_CONTEXT", r#"{"runAsUser": 1000}"#),
    /// ]).unwrap();
    /// assert_eq!(config.namespace, "workloads");
    /// assert_eq!(config.annotations["prometheus.io/scrape"], "true");
    /// assert_eq!(config.security_context.unwrap().run_as_user, Some(1000));
    ///
    /// let err = KubeConfig::from_vars([("K8S_CONTAINER_SECURITY_CONTEXT", r#"{"runAsUsr": 1}"#)]);
    /// assert!(err.unwrap_err().to_string().contains("runAsUsr"));
    /// ```
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut config = KubeConfig::default();
        let mut old_labels = BTreeMap::new();
        for (key, value) in vars {
            let (key, value) = (key.as_ref(), value.as_ref());
            let in_variable =
                |e: Error| Error::invalid_field(key, format!("is malformed: {}", e.message()));
            match key {
                NAMESPACE_VARIABLE => {
                    let namespace = value.trim();
                    if !is_dns_label(namespace) {
                        return Err(Error::invalid_field(
                            key,
                            format!(
                                "is `{value}`, not a namespace name (1-63 lowercase letters, digits and `-`, starting and ending with a letter or digit)"
                            ),
                        ));
                    }
                    config.namespace = namespace.to_owned();
                }
                LABELS_VARIABLE => config
                    .labels
                    .extend(parse_labels(value).map_err(in_variable)?),
                OLD_LABELS_VARIABLE => old_labels = parse_labels(value).map_err(in_variable)?,
                ANNOTATIONS_VARIABLE => {
                    config.annotations = parse_annotations(value).map_err(in_variable)?
                }
                POD_CONFIG_VARIABLE => config.pod_profiles = PodProfiles::parse(value)?,
                SECURITY_CONTEXT_VARIABLE => {
                    config.security_context = Some(parse_strict(key, value)?);
                }
                _ => {}
            }
        }
        for (key, value) in old_labels {
            config.labels.entry(key).or_insert(value);
        }
        Ok(config)
    }
}

fn is_dns_label(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

/// Parses annotations written as `k=v,k2=v2` (LocalStack's `LOCALSTACK_K8S_ANNOTATIONS`),
/// checking each key against Kubernetes's rules (values are free text without commas). Errors
/// name the bad pair.
///
/// ```
/// use hoist_kube::parse_annotations;
///
/// let annotations = parse_annotations("prometheus.io/scrape=true,note=a=b").unwrap();
/// assert_eq!(annotations["note"], "a=b");
/// assert!(parse_annotations("no-value").is_err());
/// ```
pub fn parse_annotations(text: &str) -> Result<BTreeMap<String, String>> {
    let mut annotations = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(annotation_error(pair, "is not of the form key=value"));
        };
        let key = key.trim();
        check_label(key, "").map_err(|problem| annotation_error(pair, &problem))?;
        if annotations
            .insert(key.to_owned(), value.trim().to_owned())
            .is_some()
        {
            return Err(annotation_error(pair, "repeats a key given earlier"));
        }
    }
    Ok(annotations)
}

fn annotation_error(pair: &str, problem: &str) -> Error {
    Error::invalid(format!("annotation `{pair}` {problem}")).with_context("annotation", pair)
}

/// Parses labels written as `k=v,k2=v2` (LocalStack's `LAMBDA_K8S_LABELS` form), checking each
/// key and value against Kubernetes's label rules. Errors name the bad pair.
///
/// ```
/// use hoist_kube::parse_labels;
///
/// let labels = parse_labels("app=fn, example.com/team=data").unwrap();
/// assert_eq!(labels["example.com/team"], "data");
/// let err = parse_labels("app=fn,oops").unwrap_err();
/// assert!(err.to_string().contains("`oops`"));
/// ```
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(label_error(pair, "is not of the form key=value"));
        };
        let (key, value) = (key.trim(), value.trim());
        check_label(key, value).map_err(|problem| label_error(pair, &problem))?;
        if labels.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(label_error(pair, "repeats a key given earlier"));
        }
    }
    Ok(labels)
}

fn label_error(pair: &str, problem: &str) -> Error {
    Error::invalid(format!("label `{pair}` {problem}")).with_context("label", pair)
}

/// Checks a label key and value against Kubernetes's rules; the error says what is wrong.
pub(crate) fn check_label(key: &str, value: &str) -> std::result::Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        let ok = !prefix.is_empty()
            && prefix.len() <= 253
            && prefix.split('.').all(|p| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !p.starts_with('-')
                    && !p.ends_with('-')
            });
        if !ok {
            return Err(format!(
                "has a key prefix `{prefix}` that is not a lowercase DNS subdomain"
            ));
        }
    }
    if !is_label_word(name) || name.is_empty() {
        return Err(format!(
            "has a key name `{name}` that is not 1-63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit"
        ));
    }
    if !value.is_empty() && !is_label_word(value) {
        return Err(format!(
            "has a value `{value}` that is not at most 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

fn is_label_word(text: &str) -> bool {
    let bytes = text.as_bytes();
    text.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes.first().is_none_or(u8::is_ascii_alphanumeric)
        && bytes.last().is_none_or(u8::is_ascii_alphanumeric)
}

/// Turns any text into a valid label value: bad characters become `-`, and when the text had to
/// change (or was too long) a hash of the original keeps distinct inputs distinct.
pub(crate) fn label_value(text: &str) -> String {
    if is_label_word(text) {
        return text.to_owned();
    }
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let hash = fnv(text);
    let head: String = cleaned.chars().take(54).collect();
    let head = head.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if head.is_empty() {
        format!("h{hash:08x}")
    } else {
        format!("{head}-{hash:08x}")
    }
}

/// A small stable hash (FNV-1a, 32 bits) for names.
pub(crate) fn fnv(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_and_name_the_bad_pair() {
        let labels = parse_labels("a=1,b=two").unwrap();
        assert_eq!(labels.len(), 2);
        assert!(parse_labels("").unwrap().is_empty());
        for (text, bad) in [
            ("a=1,b", "`b`"),
            ("a=1,b=has space", "`b=has space`"),
            ("-a=1", "`-a=1`"),
            ("Bad_Prefix/x=1", "`Bad_Prefix/x=1`"),
            ("a=1,a=2", "`a=2`"),
        ] {
            let err = parse_labels(text).unwrap_err();
            assert_eq!(err.kind(), hoist_core::ErrorKind::InvalidInput);
            assert!(err.to_string().contains(bad), "{text}: {err}");
        }
    }

    #[test]
    fn label_values_are_made_valid_and_stay_distinct() {
        assert_eq!(label_value("web.1"), "web.1");
        let a = label_value("task one");
        let b = label_value("task/one");
        assert_ne!(a, b);
        assert!(check_label("k", &a).is_ok(), "{a}");
        assert!(check_label("k", &label_value(&"x".repeat(100))).is_ok());
        assert!(check_label("k", &label_value("///")).is_ok());
    }

    #[test]
    fn localstack_variables_shape_the_config() {
        let config = KubeConfig::from_vars([
            (OLD_LABELS_VARIABLE, "team=old,tier=fn"),
            (LABELS_VARIABLE, "team=new"),
            (ANNOTATIONS_VARIABLE, "a.example.com/x=1, b=two"),
            (NAMESPACE_VARIABLE, "workloads"),
            (
                SECURITY_CONTEXT_VARIABLE,
                r#"{"runAsNonRoot": true, "runAsUser": 1000, "allowPrivilegeEscalation": false}"#,
            ),
            (
                POD_CONFIG_VARIABLE,
                r#"{"profiles": {"default": {"priorityClassName": "low"}}}"#,
            ),
            ("UNRELATED", "{"),
        ])
        .unwrap();
        assert_eq!(config.namespace, "workloads");
        assert_eq!(config.labels["team"], "new", "the newer name wins");
        assert_eq!(config.labels["tier"], "fn");
        assert_eq!(config.annotations["a.example.com/x"], "1");
        assert_eq!(config.annotations["b"], "two");
        let context = config.security_context.unwrap();
        assert_eq!(context.run_as_user, Some(1000));
        assert_eq!(context.allow_privilege_escalation, Some(false));
        let profile = config.pod_profiles.resolve(None, None).unwrap();
        assert_eq!(profile.priority_class_name.as_deref(), Some("low"));
    }

    #[test]
    fn bad_variables_are_named() {
        for (variable, value, named) in [
            (NAMESPACE_VARIABLE, "Not_A_Namespace", "Not_A_Namespace"),
            (LABELS_VARIABLE, "a=1,b", "`b`"),
            (OLD_LABELS_VARIABLE, "x", "`x`"),
            (ANNOTATIONS_VARIABLE, "-bad=1", "-bad"),
            (
                SECURITY_CONTEXT_VARIABLE,
                r#"{"runAsUser": "me"}"#,
                "runAsUser",
            ),
            (
                SECURITY_CONTEXT_VARIABLE,
                r#"{"capabilities": {"dorp": ["ALL"]}}"#,
                "capabilities.dorp",
            ),
            (
                POD_CONFIG_VARIABLE,
                r#"{"profiles": {"p": {"lables": {}}}}"#,
                "profiles.p.lables",
            ),
        ] {
            let err = KubeConfig::from_vars([(variable, value)]).unwrap_err();
            assert_eq!(err.kind(), hoist_core::ErrorKind::InvalidInput);
            assert_eq!(err.context_value("field"), Some(variable), "{err}");
            assert!(err.to_string().contains(named), "{variable}: {err}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        assert_eq!(b.delay(0), Duration::from_millis(100));
        assert_eq!(b.delay(3), Duration::from_millis(800));
        assert_eq!(b.delay(4), Duration::from_secs(1));
        assert_eq!(b.delay(60), Duration::from_secs(1));
    }
}
