//! hoist's Docker backend, on the Docker Engine API through bollard.
//!
//! [`DockerContainerizer`] runs each container of a task as a Docker container. It connects the
//! way the Docker CLI does ([`DockerConfig::from_env`] reads `DOCKER_HOST`, else the local
//! socket), negotiates the API version (so Engine API 1.41 and current Engines both work), and
//! labels every container it creates with its owner so a restarted executor finds them again.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> hoist_core::Result<()> {
//! use std::sync::Arc;
//! use hoist_core::{ContainerSpec, Executor, TaskSpec};
//! use hoist_docker::{DockerConfig, DockerContainerizer};
//!
//! let docker = DockerContainerizer::connect(DockerConfig::from_env()).await?;
//! let executor = Executor::builder(Arc::new(docker)).build()?;
//! let mut statuses = executor.statuses();
//! let mut container = ContainerSpec::command(["sleep", "5"]);
//! container.image = Some("busybox:1.36".into());
//! executor.launch(TaskSpec::new("nap", container))?;
//! while let Some(status) = statuses.recv().await {
//!     println!("{status}");
//!     if status.state.is_terminal() { break; }
//! }
//! # Ok(()) }
//! ```
//!
//! What maps to what, the pull policies and recovery are described in the Docker guide
//! (`docs/guides/docker.md`).

mod config;
mod containerizer;
mod engine_error;
mod exec;
mod image;
mod observe;
mod spec;
mod state;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::DockerConfig;
pub use containerizer::DockerContainerizer;
pub use spec::create_body;
pub use state::exit_status_from_code;

/// Re-export of the bollard crate this backend is built on, for callers that need the raw client.
pub use bollard;
