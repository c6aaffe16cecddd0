//! Every label key hoist writes, in one place, all under `io.hoist.`.
//!
//! Backends record a container's owner under [`EXECUTOR_ID`] and [`TASK_ID`] (Docker labels,
//! Kubernetes labels and annotations, the process backend's records), so a restarted executor
//! finds what it started. A spec's own labels may not use the `io.hoist.` prefix.

/// The prefix of every key hoist writes.
pub const PREFIX: &str = "io.hoist.";

/// The executor that created a container.
pub const EXECUTOR_ID: &str = "io.hoist.executor-id";

/// The task a container runs.
pub const TASK_ID: &str = "io.hoist.task-id";

/// Task label (in `TaskSpec::labels`) naming the framework or group a task belongs to; the Mesos
/// frontend sets it from the framework's name, and the `network` hook reads it.
pub const FRAMEWORK_NAME: &str = "io.hoist.framework-name";

/// The function a function executor's environment serves (its name).
pub const FUNCTION: &str = "io.hoist.function";

/// The AWS-style service a container works for (`lambda`, `ec2`, `ecs`): the function
/// executor and hoist-aws set it on every container they create, and the Kubernetes backend
/// chooses a pod profile by it (LocalStack's `LOCALSTACK_K8S_POD_CONFIG` `services`).
pub const SERVICE: &str = "io.hoist.service";

/// The CPU architecture a container's workload is built for, as Kubernetes names it (`amd64`,
/// `arm64`), when the service knows it (a Lambda function's `Architectures`, an ECS task
/// definition's `runtimePlatform`, an EC2 instance type's family); the Kubernetes backend
/// chooses a pod profile by it.
pub const ARCHITECTURE: &str = "io.hoist.architecture";

/// The keys that record a container's owner: only hoist writes them, and a spec's own labels
/// may not set them.
pub const OWNERSHIP: [&str; 2] = [EXECUTOR_ID, TASK_ID];
