//! The image-mapping overlay: replaces the runtime image of each runtime, from a pattern with
//! `<runtime>` or from a JSON map of runtime to image.

use std::collections::BTreeMap;

use hoist_core::catalog::{PhaseKind, Runtime};
use hoist_core::{Error, Result};

/// An image mapping, as LocalStack's `LAMBDA_RUNTIME_IMAGE_MAPPING` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageMapping {
    /// An image reference with `<runtime>` in it (`registry.local/lambda:<runtime>`).
    Pattern(String),
    /// An image per runtime name; runtimes not listed keep their image.
    Map(BTreeMap<String, String>),
}

impl ImageMapping {
    /// Parses a JSON object as a map, anything else as a pattern, which must contain
    /// `<runtime>`.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.starts_with('{') {
            let map: BTreeMap<String, String> = serde_json::from_str(text).map_err(|e| {
                Error::invalid(format!(
                    "the image mapping is not a JSON map of runtime to image: {e}"
                ))
            })?;
            if let Some((runtime, _)) = map.iter().find(|(_, image)| image.trim().is_empty()) {
                return Err(Error::invalid(format!(
                    "the image mapping gives runtime `{runtime}` an empty image"
                ))
                .with_context("runtime", runtime));
            }
            Ok(ImageMapping::Map(map))
        } else if text.contains("<runtime>") && !text.chars().any(char::is_whitespace) {
            Ok(ImageMapping::Pattern(text.to_owned()))
        } else {
            Err(Error::invalid(format!(
                "the image mapping `{text}` is neither a JSON map nor an image pattern containing `<runtime>`"
            )))
        }
    }

    /// Applies the mapping to `runtimes`. A map key naming no runtime (nor alias) is an error
    /// naming it, so a typo does not go unnoticed.
    pub fn apply(&self, runtimes: &mut [Runtime]) -> Result<()> {
        if let ImageMapping::Map(map) = self {
            for key in map.keys() {
                let known = runtimes
                    .iter()
                    .any(|r| &r.name == key || r.aliases.contains(key));
                if !known {
                    return Err(Error::invalid(format!(
                        "the image mapping names runtime `{key}`, which is not in the catalog"
                    ))
                    .with_context("runtime", key));
                }
            }
        }
        for runtime in runtimes {
            let image = match self {
                ImageMapping::Pattern(pattern) => Some(pattern.replace("<runtime>", &runtime.name)),
                ImageMapping::Map(map) => std::iter::once(&runtime.name)
                    .chain(&runtime.aliases)
                    .find_map(|name| map.get(name).cloned()),
            };
            if let Some(image) = image {
                for phase in runtime
                    .phases
                    .iter_mut()
                    .filter(|p| p.phase == PhaseKind::Runtime)
                {
                    phase.image = image.clone();
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoist_core::catalog::RuntimePhase;

    fn runtime(name: &str) -> Runtime {
        Runtime {
            name: name.into(),
            aliases: vec![format!("{name}-alias")],
            phases: vec![RuntimePhase {
                phase: PhaseKind::Runtime,
                image: "orig".into(),
                command: None,
                env: BTreeMap::new(),
                secrets: vec![],
            }],
            deps_file: None,
            file_suffix: None,
            compiled: false,
            probe: None,
        }
    }

    #[test]
    fn pattern_and_map_replace_runtime_images() {
        let mut runtimes = vec![runtime("python3.11"), runtime("nodejs20")];
        ImageMapping::parse("local/lambda:<runtime>")
            .unwrap()
            .apply(&mut runtimes)
            .unwrap();
        assert_eq!(runtimes[0].phases[0].image, "local/lambda:python3.11");
        let mapping = ImageMapping::parse(r#"{"nodejs20-alias": "node:20"}"#).unwrap();
        mapping.apply(&mut runtimes).unwrap();
        assert_eq!(runtimes[1].phases[0].image, "node:20");
        assert_eq!(runtimes[0].phases[0].image, "local/lambda:python3.11");
    }

    #[test]
    fn bad_mappings_are_explained() {
        let err = ImageMapping::parse("local/lambda:latest").unwrap_err();
        assert!(err.to_string().contains("<runtime>"), "{err}");
        let err = ImageMapping::parse("{\"python3.11\": 3}").unwrap_err();
        assert!(err.to_string().contains("JSON map"), "{err}");
        let mapping = ImageMapping::parse(r#"{"pyhton3.11": "x"}"#).unwrap();
        let err = mapping.apply(&mut [runtime("python3.11")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("`pyhton3.11`, which is not in the catalog"),
            "{err}"
        );
    }
}
