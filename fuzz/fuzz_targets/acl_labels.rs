//! The ACL hook's task labels (`io.hoist.acl.<n>`-style sources a scheduler writes): the hook's
//! pre-create reads them and accepts or refuses the task, never panics.
#![no_main]

use std::sync::Arc;

use hoist_core::testing::FakeContainerizer;
use hoist_core::{ContainerSpec, Containerizer, ExecutorId, Hook, HookContext, HookState, TaskSpec};
use hoist_hooks::firewall::RecordingFirewall;
use hoist_hooks::{AclConfig, AclHook, acl_label};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|values: Vec<String>| {
    let config: AclConfig =
        serde_json::from_value(serde_json::json!({ "chain": "INPUT" })).expect("a valid config");
    let hook = AclHook::with_firewall(config, Arc::new(RecordingFirewall::new()))
        .expect("the hook builds");
    let mut task = TaskSpec::new("fuzz", ContainerSpec::command(["sleep", "1"]));
    for (index, value) in values.into_iter().take(8).enumerate() {
        task.labels.insert(acl_label(index), value);
    }
    let executor = ExecutorId::new("fuzz");
    let containerizer: Arc<dyn Containerizer> = Arc::new(FakeContainerizer::new());
    let mut state = HookState::default();
    let mut ctx = HookContext {
        executor_id: &executor,
        containerizer: &containerizer,
        container_id: None,
        state: &mut state,
    };
    let _ = futures::executor::block_on(hook.pre_create(&mut ctx, &mut task));
});
