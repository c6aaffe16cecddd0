//! The hooks a configuration can name, with go-mesos-executor's spellings, built from its keys.

use std::sync::Arc;

use hoist::Hook;

use super::config::Config;

/// A hook the configuration can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookName {
    RemoveContainer,
    Acl,
    Iptables,
    Netns,
    Network,
}

impl HookName {
    /// The names, as hoist spells them.
    pub const ALL: [&'static str; 5] = ["remove-container", "acl", "iptables", "netns", "network"];

    /// hoist's or go-mesos-executor's spelling of a hook.
    pub fn parse(name: &str) -> Option<HookName> {
        Some(match name {
            "remove-container" | "removeContainer" => HookName::RemoveContainer,
            "acl" => HookName::Acl,
            "iptables" => HookName::Iptables,
            "netns" => HookName::Netns,
            "network" => HookName::Network,
            _ => return None,
        })
    }
}

/// Builds each configured hook (the configuration is checked: every name is known). A hook
/// that refuses its section is an error naming its `hooks[i]` entry.
pub fn build(config: &Config) -> Result<Vec<Arc<dyn Hook>>, String> {
    let mut hooks: Vec<Arc<dyn Hook>> = vec![];
    for (i, name) in config.hooks.iter().enumerate() {
        let Some(hook) = HookName::parse(name) else {
            return Err(format!("`hooks[{i}]` names an unknown hook `{name}`"));
        };
        let section = match hook {
            HookName::RemoveContainer | HookName::Network => serde_json::Value::Null,
            HookName::Netns => serde_json::json!({
                "path": config.netns_path,
                "proc_path": config.proc_path,
            }),
            HookName::Acl => without_nulls(serde_json::json!({
                "chain": config.acl_chain,
                "external_interface": config.acl_external_interface,
                "default_allowed_cidr": config.acl_default_allowed_cidr,
            })),
            HookName::Iptables => {
                let [prerouting, forward, postrouting] = &config.iptables_chains;
                without_nulls(serde_json::json!({
                    "container_bridge_interface": config.iptables_container_bridge_interface,
                    "ip_forwarding": config.iptables_ip_forwarding,
                    "ip_masquerading": config.iptables_ip_masquerading,
                    "chains": without_nulls(serde_json::json!({
                        "prerouting": prerouting,
                        "forward": forward,
                        "postrouting": postrouting,
                    })),
                }))
            }
        };
        let built = hoist::hooks::from_config(name, &section)
            .map_err(|e| format!("`hooks[{i}]` (`{name}`): {}", e.message()))?;
        hooks.push(built);
    }
    Ok(hooks)
}

/// Drops the keys left unset, so each hook applies its own defaults.
fn without_nulls(mut value: serde_json::Value) -> serde_json::Value {
    if let Some(map) = value.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_are_built_in_order_from_either_spelling() {
        let config = Config {
            hooks: vec!["netns".into(), "network".into(), "removeContainer".into()],
            ..Config::default()
        };
        let names: Vec<_> = build(&config)
            .unwrap()
            .iter()
            .map(|h| h.name().to_owned())
            .collect();
        assert_eq!(names, ["netns", "network", "remove-container"]);
    }
}
