//! How the backend renders pods and how long it waits: [`KubeConfig`], and the `k=v,k2=v2` label
//! form ([`parse_labels`]).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use hoist_core::{Error, Result};
use k8s_openapi::api::core::v1::{Affinity, SecurityContext, Toleration};

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
    /// Labels on every pod (LocalStack's `LAMBDA_K8S_LABELS`), besides the spec's own labels
    /// and the ownership labels.
    pub labels: BTreeMap<String, String>,
    /// Names of secrets used to pull images (`imagePullSecrets`).
    pub image_pull_secrets: Vec<String>,
    /// DNS settings for every pod.
    pub dns: DnsSettings,
    /// The image used when a spec names none (Kubernetes always needs one).
    pub default_image: Option<String>,
    /// Node selector; empty leaves scheduling to the cluster's defaults.
    pub node_selector: BTreeMap<String, String>,
    /// Affinity rules; `None` leaves scheduling to the cluster's defaults.
    pub affinity: Option<Affinity>,
    /// Tolerations.
    pub tolerations: Vec<Toleration>,
    /// The service account; with none, no service account token is mounted.
    pub service_account: Option<String>,
    /// The container security context. `None` gives the non-root default: `runAsNonRoot`, no
    /// privilege escalation, every capability dropped, the runtime's default seccomp profile.
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
