//! Function build plans (hoist-runtimes) deployed as Kubernetes pods (hoist-kube), the way
//! Kubeless deploys functions: one pod whose init containers share a volume, first `prepare`,
//! which copies the function's provisioned source into it, then the plan's `install` and
//! `compile` steps, then the runtime container serving the function from that volume.
//!
//! The source reaches the pod as a volume of the backend's kind: with
//! [`HostVolumes::Copy`](hoist_kube::HostVolumes::Copy) a ConfigMap the pod owns, so the pod
//! may run on any node. Facade features `kube` and `runtimes`.
//!
//! ```no_run
//! # async fn run(catalog: &dyn hoist::catalog::RuntimeCatalog) -> hoist::Result<()> {
//! use hoist::kube::{HostVolumes, KubeConfig, KubeContainerizer};
//! use hoist::runtimes::function::{FunctionSpec, Source};
//! use hoist::runtimes::plan::BuildPlan;
//!
//! let config = KubeConfig { host_volumes: HostVolumes::Copy, ..KubeConfig::default() };
//! let pods = KubeContainerizer::in_cluster(config)?;
//! let spec = FunctionSpec::new("hello", "python3.11", "handler.hello", Source::text("..."));
//! let plan = BuildPlan::new(&spec, catalog)?;
//! let owner = hoist::Owner { executor_id: "kubeless".into(), task_id: "hello".into() };
//! let work = std::env::temp_dir().join("hello");
//! let pod = hoist::pod_build::deploy(&pods, &owner, &plan, &work, 8080).await?;
//! # let _ = pod; Ok(()) }
//! ```

use std::path::{Path, PathBuf};

use hoist_core::catalog::PhaseKind;
use hoist_core::{ContainerId, Containerizer, Owner, Result, Volume};
use hoist_kube::{BuildStep, KubeContainerizer};
use hoist_runtimes::plan::{BuildPlan, Rendering, Target};

/// Where the provisioned source is mounted in the pod's containers.
pub const SOURCE_MOUNT: &str = "/hoist-source";

/// The `prepare` step's command: copy every entry of `source` (following links, and leaving
/// out the `..data` bookkeeping a ConfigMap volume keeps) into the shared volume at `mount`.
fn prepare_command(source: &str, mount: &Path) -> Vec<String> {
    let line = format!(
        "cd {source} && find . -mindepth 1 -maxdepth 1 ! -name '..*' -exec cp -RL {{}} {}/ \\;",
        mount.display()
    );
    vec!["sh".into(), "-c".into(), line]
}

fn step_name(phase: PhaseKind) -> &'static str {
    match phase {
        PhaseKind::Installation => "install",
        PhaseKind::Compilation => "compile",
        PhaseKind::Runtime => "runtime",
    }
}

/// Renders `plan` for a pod of `pods`: the steps (`prepare` first) and the runtime container,
/// which mounts the provisioned `work_dir` read-only at [`SOURCE_MOUNT`].
pub fn render(
    pods: &KubeContainerizer,
    plan: &BuildPlan,
    work_dir: &Path,
    port: u16,
) -> Result<(Vec<BuildStep>, hoist_core::ContainerSpec)> {
    let mount = PathBuf::from(&pods.config().build_mount);
    let Rendering { steps, mut runtime } = plan.render(&Target::pod(work_dir, &mount), port)?;
    // Every container of a pod rendering has its phase's image; `prepare` borrows the first.
    let prepare_image = steps
        .first()
        .map_or(&runtime, |step| &step.container)
        .image
        .clone()
        .unwrap_or_default();
    let mut build = vec![BuildStep {
        name: "prepare".into(),
        image: prepare_image,
        command: prepare_command(SOURCE_MOUNT, &mount),
        env: Default::default(),
    }];
    for step in steps {
        build.push(BuildStep {
            name: step_name(step.phase).into(),
            image: step.container.image.unwrap_or_default(),
            command: step.container.command,
            env: step.container.env,
        });
    }
    runtime.volumes.push(Volume {
        host_path: work_dir.to_path_buf(),
        container_path: PathBuf::from(SOURCE_MOUNT),
        read_only: true,
    });
    Ok((build, runtime))
}

/// Deploys `plan` as one pod of `pods` owned by `owner` (see the module's documentation), with
/// the function's source provisioned in `work_dir` and served on `port`. Returns the pod's
/// container id once it is submitted; a pod that fails to start is removed.
pub async fn deploy(
    pods: &KubeContainerizer,
    owner: &Owner,
    plan: &BuildPlan,
    work_dir: &Path,
    port: u16,
) -> Result<ContainerId> {
    let (steps, runtime) = render(pods, plan, work_dir, port)?;
    let id = pods.create_with_build(owner, &runtime, &steps).await?;
    if let Err(e) = pods.start(&id).await {
        let _ = pods.remove(&id, true).await;
        return Err(e.with_context("function", &plan.spec().name));
    }
    Ok(id)
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use hoist_core::catalog::{InMemoryCatalog, Runtime, RuntimePhase};
    use hoist_kube::testing::FakeApiServer;
    use hoist_kube::{HostVolumes, KubeConfig};
    use hoist_runtimes::function::{FunctionSpec, Source};

    use super::*;

    fn phase(phase: PhaseKind, image: &str, command: Option<&str>) -> RuntimePhase {
        RuntimePhase {
            phase,
            image: image.into(),
            command: command.map(Into::into),
            env: [(
                "PYTHONPATH".to_owned(),
                "$(HOIST_INSTALL_DIR)/lib".to_owned(),
            )]
            .into(),
            secrets: vec![],
        }
    }

    fn python() -> InMemoryCatalog {
        InMemoryCatalog::new([Runtime {
            name: "python3.11".into(),
            aliases: vec![],
            phases: vec![
                phase(
                    PhaseKind::Installation,
                    "local/python-init",
                    Some("pip install -r $HOIST_DEPS_FILE -t lib"),
                ),
                phase(PhaseKind::Runtime, "local/python", None),
            ],
            deps_file: Some("requirements.txt".into()),
            file_suffix: Some(".py".into()),
            compiled: false,
            probe: None,
        }])
        .unwrap()
    }

    #[test]
    fn prepare_copies_a_config_map_volume_without_its_bookkeeping() {
        // A ConfigMap volume as the kubelet lays it out: the files in a timestamped directory,
        // `..data` linking to it, and each top-level entry a link through `..data`.
        let source = tempfile::tempdir().unwrap();
        let stamp = source.path().join("..2026_11_23_00_00_00.1");
        std::fs::create_dir_all(stamp.join("lib")).unwrap();
        std::fs::write(stamp.join("handler.py"), "def hello(e, c): pass\n").unwrap();
        std::fs::write(stamp.join("lib").join("util.py"), "X = 1\n").unwrap();
        std::os::unix::fs::symlink("..2026_11_23_00_00_00.1", source.path().join("..data"))
            .unwrap();
        for entry in ["handler.py", "lib"] {
            let target = format!("..data/{entry}");
            std::os::unix::fs::symlink(target, source.path().join(entry)).unwrap();
        }
        // With the host's tools, and with busybox's alone as in a minimal image (the Debian
        // package `busybox-static`, which the Docker tests need too).
        let applets = tempfile::tempdir().unwrap();
        for applet in ["sh", "find", "cp"] {
            std::os::unix::fs::symlink("/usr/bin/busybox", applets.path().join(applet)).unwrap();
        }
        let host_path = std::env::var("PATH").unwrap_or_default();
        let busybox_path = applets.path().display().to_string();
        for path in [host_path.as_str(), busybox_path.as_str()] {
            let build = tempfile::tempdir().unwrap();
            let command = prepare_command(&source.path().display().to_string(), build.path());
            let shell = if path == busybox_path {
                applets.path().join("sh")
            } else {
                "sh".into()
            };
            let status = std::process::Command::new(shell)
                .args(&command[1..])
                .env("PATH", path)
                .status()
                .unwrap();
            assert!(status.success(), "PATH={path}");
            let mut entries: Vec<_> = std::fs::read_dir(build.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            entries.sort();
            assert_eq!(entries, ["handler.py", "lib"], "PATH={path}");
            let copied = std::fs::symlink_metadata(build.path().join("handler.py")).unwrap();
            assert!(copied.is_file(), "a copy, not a link (PATH={path})");
            assert_eq!(
                std::fs::read_to_string(build.path().join("lib").join("util.py")).unwrap(),
                "X = 1\n"
            );
        }
    }

    #[tokio::test]
    async fn a_build_plan_becomes_one_pod_with_prepare_and_install_init_containers() {
        let server = FakeApiServer::start().await.unwrap();
        let config = KubeConfig {
            host_volumes: HostVolumes::Copy,
            ..KubeConfig::default()
        };
        let pods = KubeContainerizer::new(server.client(), config);
        let mut spec = FunctionSpec::new(
            "hello",
            "python3.11",
            "handler.hello",
            Source::text("def hello(event, context):\n    return 'hi'\n"),
        );
        spec.deps = Some("requests\n".into());
        let plan = BuildPlan::new(&spec, &python()).unwrap();
        let work = tempfile::tempdir().unwrap();
        let owner = Owner {
            executor_id: "kubeless".into(),
            task_id: "hello".into(),
        };
        let id = deploy(&pods, &owner, &plan, work.path(), 8080)
            .await
            .unwrap();

        let pod = server.pod(id.as_str()).unwrap().spec.unwrap();
        let build_mount = pods.config().build_mount.clone();
        let init = pod.init_containers.unwrap();
        let names: Vec<_> = init.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["prepare", "install"]);
        assert_eq!(init[0].image.as_deref(), Some("local/python-init"));
        let prepare = init[0].command.as_ref().unwrap().join(" ");
        assert!(
            prepare.contains(&format!("cd {SOURCE_MOUNT} &&")),
            "{prepare}"
        );
        assert!(
            prepare.contains(&format!("cp -RL {{}} {build_mount}/")),
            "{prepare}"
        );
        let install = &init[1];
        assert_eq!(
            install.command.as_ref().unwrap()[2],
            "pip install -r $HOIST_DEPS_FILE -t lib"
        );
        let env = |c: &k8s_openapi::api::core::v1::Container, key: &str| {
            c.env
                .iter()
                .flatten()
                .find(|v| v.name == key)
                .and_then(|v| v.value.clone())
        };
        assert_eq!(env(install, "HOIST_INSTALL_DIR"), Some(build_mount.clone()));
        assert_eq!(
            env(install, "HOIST_DEPS_FILE"),
            Some(format!("{build_mount}/requirements.txt"))
        );
        // Every container mounts the source and the shared build volume.
        for container in init.iter().chain(&pod.containers) {
            let mounts: Vec<_> = container
                .volume_mounts
                .iter()
                .flatten()
                .map(|m| m.mount_path.as_str())
                .collect();
            assert_eq!(
                mounts,
                [SOURCE_MOUNT, build_mount.as_str()],
                "{}",
                container.name
            );
        }
        let main = &pod.containers[0];
        assert_eq!(main.image.as_deref(), Some("local/python"));
        assert_eq!(env(main, "MOD_NAME").as_deref(), Some("handler"));
        assert_eq!(env(main, "FUNC_HANDLER").as_deref(), Some("hello"));
        assert_eq!(env(main, "FUNC_PORT").as_deref(), Some("8080"));
        assert_eq!(env(main, "PYTHONPATH"), Some(format!("{build_mount}/lib")));
        assert_eq!(main.working_dir.as_deref(), Some(build_mount.as_str()));

        // The provisioned source and deps file travel in the pod's ConfigMap.
        let volumes = pod.volumes.unwrap();
        let source = volumes[0]
            .config_map
            .as_ref()
            .expect("the source is copied");
        let map = server.config_map(&source.name).unwrap();
        let files: Vec<_> = source
            .items
            .iter()
            .flatten()
            .map(|i| {
                (
                    i.path.clone(),
                    map.binary_data.as_ref().unwrap()[&i.key].0.clone(),
                )
            })
            .collect();
        assert!(
            files.contains(&(
                "handler.py".into(),
                b"def hello(event, context):\n    return 'hi'\n".to_vec()
            )),
            "{files:?}"
        );
        assert!(
            files.contains(&("requirements.txt".into(), b"requests\n".to_vec())),
            "{files:?}"
        );
        assert!(volumes[1].empty_dir.is_some(), "the shared build volume");

        pods.remove(&id, true).await.unwrap();
        assert!(server.pods().is_empty() && server.config_maps().is_empty());
    }
}
