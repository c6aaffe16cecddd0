//! hoist's bundled hooks: remove-container, acl, iptables, netns, network.
//!
//! | hook | phases | what it does |
//! |---|---|---|
//! | [`RemoveContainerHook`] (`remove-container`) | post-stop | removes the stopped container |
//! | [`AclHook`] (`acl`) | post-run adds, pre-stop removes | only the sources in `EXECUTOR_<n>_ACL` labels reach port mapping `n` |
//! | [`IptablesHook`] (`iptables`) | post-run adds, pre-stop removes | Docker-style DNAT, forwarding and masquerading for the task's ports |
//! | [`NetnsHook`] (`netns`) | post-run links, post-stop unlinks | `ip netns exec <task id> ...` enters the task's network |
//! | [`NetworkHook`] (`network`) | pre-create | puts the task on a named user network |
//!
//! Each hook has a typed configuration (`deny_unknown_fields`; errors name the key, such as
//! `acl.chain`) and checks it when the executor is built ([`hoist_core::Hook::validate`]).
//! [`from_config`] builds any of them by name from a configuration section, as the example
//! Mesos executor does for each entry of its `hooks:` list. The firewall hooks work through the
//! [`firewall::Firewall`] seam: the real `iptables`, or an in-memory fake for tests.
//!
//! ```
//! use hoist_core::Executor;
//! use hoist_core::testing::FakeContainerizer;
//! use std::sync::Arc;
//!
//! let mut builder = Executor::builder(Arc::new(FakeContainerizer::new()));
//! for (name, section) in [("remove-container", serde_json::Value::Null), ("network", serde_json::json!({ "name": "web" }))] {
//!     builder = builder.hook(hoist_hooks::from_config(name, &section)?);
//! }
//! let executor = builder.build()?;
//! # drop(executor);
//! # Ok::<(), hoist_core::Error>(())
//! ```

mod acl;
mod config;
pub mod firewall;
mod netns;
mod network;
mod port_forwarding;
mod ports;
mod remove_container;

use std::sync::Arc;

use hoist_core::{Error, Hook, Result};

pub use acl::{AclConfig, AclHook, acl_label};
pub use netns::{NetnsConfig, NetnsHook};
pub use network::{NetworkConfig, NetworkHook};
pub use port_forwarding::{IptablesChains, IptablesConfig, IptablesHook};
pub use remove_container::{RemoveContainerConfig, RemoveContainerHook};

use firewall::{Firewall, IptablesFirewall};

/// The names [`from_config`] knows (`removeContainer` is accepted too, as go-mesos-executor
/// spells it).
pub const HOOK_NAMES: &[&str] = &["remove-container", "acl", "iptables", "netns", "network"];

/// Builds the bundled hook `name` from its configuration section (`null` for none), with the
/// real `iptables` for the firewall hooks.
///
/// Names: `remove-container` (or `removeContainer`), `acl`, `iptables`, `netns`, `network`.
/// Unknown names and bad sections are [`hoist_core::ErrorKind::InvalidInput`] errors naming the
/// hook or the key (`acl.chain`). Checks that need the system (a chain exists, `/proc` is
/// there) run when the executor is built.
///
/// ```
/// let hook = hoist_hooks::from_config("netns", &serde_json::json!({ "path": "/var/run/netns" }))?;
/// assert_eq!(hook.name(), "netns");
/// let err = hoist_hooks::from_config("acl", &serde_json::json!({ "chain": "INPUT", "interface": "eth0" })).unwrap_err();
/// assert!(err.to_string().contains("interface"));
/// # Ok::<(), hoist_core::Error>(())
/// ```
pub fn from_config(name: &str, section: &serde_json::Value) -> Result<Arc<dyn Hook>> {
    from_config_with(name, section, Arc::new(IptablesFirewall::new()))
}

/// Like [`from_config`], with the firewall the `acl` and `iptables` hooks use.
pub fn from_config_with(
    name: &str,
    section: &serde_json::Value,
    firewall: Arc<dyn Firewall>,
) -> Result<Arc<dyn Hook>> {
    let hook: Arc<dyn Hook> = match name {
        "remove-container" | "removeContainer" => Arc::new(RemoveContainerHook::with_config(
            config::parse(RemoveContainerHook::NAME, section)?,
        )),
        "acl" => Arc::new(AclHook::with_firewall(
            config::parse(AclHook::NAME, section)?,
            firewall,
        )?),
        "iptables" => Arc::new(IptablesHook::with_firewall(
            config::parse(IptablesHook::NAME, section)?,
            firewall,
        )?),
        "netns" => Arc::new(NetnsHook::with_config(config::parse(
            NetnsHook::NAME,
            section,
        )?)),
        "network" => Arc::new(NetworkHook::with_config(config::parse(
            NetworkHook::NAME,
            section,
        )?)),
        other => {
            return Err(Error::invalid(format!(
                "there is no bundled hook `{other}`; the bundled hooks are {}",
                HOOK_NAMES.join(", ")
            ))
            .with_context("hook", other));
        }
    };
    Ok(hook)
}
