//! Label and field selectors, as the API server reads them from `labelSelector` and
//! `fieldSelector` (equality-based: `k=v`, `k==v`, `k!=v`, `k`, `!k`).

use k8s_openapi::api::core::v1::Pod;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector.
#[derive(Debug, Clone, Default)]
pub(crate) struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let requirement = if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some(k) = part.strip_prefix('!') {
                Requirement::NotExists(k.trim().into())
            } else if part.contains(' ') {
                return Err(format!(
                    "unable to parse requirement: set-based selector `{part}` is not supported"
                ));
            } else {
                Requirement::Exists(part.into())
            };
            requirements.push(requirement);
        }
        Ok(LabelSelector(requirements))
    }

    pub(crate) fn matches(&self, pod: &Pod) -> bool {
        let labels = pod.metadata.labels.as_ref();
        let get = |k: &str| labels.and_then(|l| l.get(k));
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v),
            Requirement::NotEquals(k, v) => get(k) != Some(v),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        })
    }
}

/// A parsed field selector over the fields the API server indexes for pods.
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, equal, value) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (k, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                ));
            };
            match field {
                "metadata.name" | "metadata.namespace" | "status.phase" | "spec.nodeName" => {}
                other => {
                    return Err(format!("field label not supported: {other}"));
                }
            }
            terms.push((field.to_owned(), equal, value.to_owned()));
        }
        Ok(FieldSelector(terms))
    }

    pub(crate) fn matches(&self, pod: &Pod) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let actual = match field.as_str() {
                "metadata.name" => pod.metadata.name.clone(),
                "metadata.namespace" => pod.metadata.namespace.clone(),
                "status.phase" => pod.status.as_ref().and_then(|s| s.phase.clone()),
                "spec.nodeName" => pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                _ => None,
            }
            .unwrap_or_default();
            (actual == *value) == *equal
        })
    }
}

/// Checks a name against RFC 1123 subdomain rules, as the API server does for pod names.
pub(crate) fn check_dns_subdomain(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case \
             alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn pod(labels: &[(&str, &str)]) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some("p".into());
        pod.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        );
        pod
    }

    #[test]
    fn label_selectors_match_like_the_api_server() {
        let p = pod(&[("app", "web"), ("tier", "front")]);
        assert!(LabelSelector::parse("app=web,tier").unwrap().matches(&p));
        assert!(
            LabelSelector::parse("app==web,!missing")
                .unwrap()
                .matches(&p)
        );
        assert!(!LabelSelector::parse("app!=web").unwrap().matches(&p));
        assert!(LabelSelector::parse("app in (web)").is_err());
        assert!(FieldSelector::parse("metadata.name=p").unwrap().matches(&p));
        assert!(FieldSelector::parse("spec.bogus=1").is_err());
        assert!(check_dns_subdomain("hoist-a.b").is_ok());
        assert!(check_dns_subdomain("Hoist_A").is_err());
    }
}
