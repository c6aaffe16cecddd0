//! Between Mesos and the engine: a `TaskInfo` becomes a [`TaskSpec`](hoist_core::TaskSpec);
//! a [`TaskStatus`](hoist_core::TaskStatus) of the engine becomes a Mesos `TaskStatus`.
//!
//! | Mesos | hoist |
//! |---|---|
//! | `container.docker.image`, or `container.mesos.image.docker.name` | `container.image` |
//! | `container.docker.network` `HOST`/`BRIDGE`/`NONE`/`USER` (+ `network_infos[0].name`) | `container.network` |
//! | `container.docker.port_mappings` | `container.ports` |
//! | `container.docker.force_pull_image` | `pull_policy: always` |
//! | `container.volumes` (host paths) | `container.volumes` |
//! | `command.shell` + `value` | `/bin/sh -c value` |
//! | `command.shell: false` + `value` + `arguments` | the image's entrypoint with `[value] + arguments` as args; without an image, `value` run with `arguments[1..]` |
//! | `command.environment` | `container.env` |
//! | `command.user` | `container.user` |
//! | `resources` `cpus`, `mem` (MB) | `container.resources` |
//! | `labels` | task `labels` |
//! | `health_check` | `health_check` (Mesos defaults) |
//! | `kill_policy.grace_period` | `kill_policy.grace` |
//!
//! What hoist cannot honour is refused with an error naming the field (the task then ends
//! `TASK_ERROR`): URIs to fetch, secrets, privileged mode, raw Docker parameters, Appc images,
//! image or secret volumes, a hostname, a `CheckInfo`.
//!
//! [`task_spec`] reads a task in ([`task`]); [`task_state`] and [`reason`] say how a status
//! goes out ([`status`]).

pub mod status;
pub mod task;

pub use status::{reason, task_state, timestamp};
pub use task::task_spec;
