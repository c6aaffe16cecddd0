use std::io::Write as _;

use hoist_core::catalog::{InMemoryCatalog, RuntimePhase};
use hoist_core::testing::{FakeContainerizer, Script};
use hoist_core::{LogStream, TaskId};

use super::*;
use crate::function::{Code, Source, SourceContent};

fn phase(
    kind: PhaseKind,
    image: &str,
    command: Option<&str>,
    env: &[(&str, &str)],
) -> RuntimePhase {
    RuntimePhase {
        phase: kind,
        image: image.into(),
        command: command.map(Into::into),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        secrets: vec![],
    }
}

fn catalog() -> InMemoryCatalog {
    InMemoryCatalog::new([
        Runtime {
            name: "python3.11".into(),
            aliases: vec!["python".into()],
            phases: vec![
                phase(
                    PhaseKind::Installation,
                    "local/python-init",
                    Some("pip install -r $HOIST_DEPS_FILE"),
                    &[],
                ),
                phase(
                    PhaseKind::Runtime,
                    "local/python",
                    Some("hoist-proxy"),
                    &[("PYTHONPATH", "$(KUBELESS_INSTALL_VOLUME)/lib")],
                ),
            ],
            deps_file: Some("requirements.txt".into()),
            file_suffix: Some(".py".into()),
            compiled: false,
            probe: None,
        },
        Runtime {
            name: "go1.21".into(),
            aliases: vec![],
            phases: vec![
                phase(
                    PhaseKind::Compilation,
                    "local/go-init",
                    Some("go build -o server ."),
                    &[],
                ),
                phase(PhaseKind::Runtime, "local/go", None, &[]),
            ],
            deps_file: Some("go.mod".into()),
            file_suffix: Some(".go".into()),
            compiled: true,
            probe: None,
        },
    ])
    .unwrap()
}

fn spec(runtime: &str, deps: Option<&str>) -> FunctionSpec {
    let mut spec = FunctionSpec::new("hello", runtime, "hello.foo", Source::text("body"));
    spec.deps = deps.map(Into::into);
    spec.memory = 128;
    spec.timeout = Duration::from_secs(7);
    spec.env.insert("GREETING".into(), "hi".into());
    spec
}

fn owner() -> Owner {
    Owner {
        executor_id: "exec".into(),
        task_id: TaskId::new("hello"),
    }
}

#[test]
fn process_rendering_sets_the_contract_env_and_installs_deps() {
    let dir = tempfile::tempdir().unwrap();
    let plan = BuildPlan::new(&spec("python", Some("bs4\n")), &catalog()).unwrap();
    let rendering = plan.render(&Target::process(dir.path()), 8090).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("hello.py")).unwrap(),
        "body"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("requirements.txt")).unwrap(),
        "bs4\n"
    );
    assert_eq!(rendering.steps.len(), 1);
    let install = &rendering.steps[0].container;
    assert_eq!(
        install.command,
        ["sh", "-c", "pip install -r $HOIST_DEPS_FILE"]
    );
    let work = dir.path().display().to_string();
    assert_eq!(
        install.env["HOIST_DEPS_FILE"],
        format!("{work}/requirements.txt")
    );
    assert_eq!(install.image, None);
    let env = &rendering.runtime.env;
    let expected = [
        ("MOD_NAME", "hello"),
        ("FUNC_HANDLER", "foo"),
        ("FUNC_TIMEOUT", "7"),
        ("FUNC_RUNTIME", "python3.11"),
        ("FUNC_MEMORY_LIMIT", "134217728"),
        ("FUNC_PORT", "8090"),
        ("GREETING", "hi"),
    ];
    for (key, value) in expected {
        assert_eq!(env[key], value, "{key}");
    }
    assert_eq!(env["PYTHONPATH"], format!("{work}/lib"));
    assert_eq!(rendering.runtime.working_dir.as_deref(), Some(dir.path()));
    assert_eq!(
        rendering.runtime.resources.memory, None,
        "processes get no cgroup limit"
    );
    assert_eq!(
        rendering.runtime.user, None,
        "processes run as the executor"
    );
}

#[test]
fn docker_rendering_shares_a_volume_between_init_and_runtime_containers() {
    let dir = tempfile::tempdir().unwrap();
    let plan = BuildPlan::new(&spec("go1.21", None), &catalog()).unwrap();
    let rendering = plan.render(&Target::docker(dir.path()), 8080).unwrap();
    let compile = &rendering.steps[0];
    assert_eq!(compile.phase, PhaseKind::Compilation);
    assert_eq!(compile.container.image.as_deref(), Some("local/go-init"));
    assert_eq!(compile.container.env["KUBELESS_FUNC_NAME"], "hello");
    for container in [&compile.container, &rendering.runtime] {
        assert_eq!(container.volumes[0].host_path, dir.path());
        assert_eq!(
            container.volumes[0].container_path,
            Path::new(DOCKER_WORK_DIR)
        );
        assert_eq!(
            container.working_dir.as_deref(),
            Some(Path::new(DOCKER_WORK_DIR))
        );
    }
    assert_eq!(rendering.runtime.image.as_deref(), Some("local/go"));
    assert_eq!(rendering.runtime.resources.memory, Some(128 << 20));
    // Every container runs as the work directory's owner.
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir.path()).unwrap();
    let owner = format!("{}:{}", meta.uid(), meta.gid());
    assert_eq!(compile.container.user.as_deref(), Some(owner.as_str()));
    assert_eq!(rendering.runtime.user.as_deref(), Some(owner.as_str()));
    assert!(
        rendering.runtime.command.is_empty(),
        "the image's own command runs"
    );
    let err = plan.render(&Target::process(dir.path()), 8080).unwrap_err();
    assert!(err.to_string().contains("needs one"), "{err}");
}

#[test]
fn plans_reject_deps_without_an_install_or_compile_phase_and_unknown_runtimes() {
    let only_runtime = InMemoryCatalog::new([Runtime {
        name: "ruby3".into(),
        aliases: vec![],
        phases: vec![phase(PhaseKind::Runtime, "local/ruby", Some("ruby"), &[])],
        deps_file: Some("Gemfile".into()),
        file_suffix: Some(".rb".into()),
        compiled: false,
        probe: None,
    }])
    .unwrap();
    let err = BuildPlan::new(&spec("ruby3", Some("gem 'x'")), &only_runtime).unwrap_err();
    assert!(
        err.to_string()
            .contains("runtime `ruby3` has no installation or compilation phase"),
        "{err}"
    );
    // A compiled runtime's compilation resolves the deps file itself.
    let dir = tempfile::tempdir().unwrap();
    let plan = BuildPlan::new(&spec("go1.21", Some("module x")), &catalog()).unwrap();
    let rendering = plan.render(&Target::docker(dir.path()), 8080).unwrap();
    let phases: Vec<_> = rendering.steps.iter().map(|s| s.phase).collect();
    assert_eq!(phases, [PhaseKind::Compilation]);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("go.mod")).unwrap(),
        "module x"
    );
    let err = BuildPlan::new(&spec("cobol85", None), &catalog()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test(start_paused = true)]
async fn an_unchanged_deps_file_skips_the_installation() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeContainerizer::new();
    fake.default_script(Script::exits(0, Duration::from_millis(10)));
    let plan = BuildPlan::new(&spec("python3.11", Some("bs4\n")), &catalog()).unwrap();
    let target = Target::process(dir.path());
    let rendering = plan.render(&target, 8080).unwrap();
    plan.build(&fake, &owner(), &target, &rendering, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(fake.calls_to("create"), 1);
    assert!(
        fake.live_containers().is_empty(),
        "the step container is removed"
    );
    assert!(plan.render(&target, 8080).unwrap().steps.is_empty());
    let changed = BuildPlan::new(&spec("python3.11", Some("bs4==4.12\n")), &catalog()).unwrap();
    assert_eq!(changed.render(&target, 8080).unwrap().steps.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_installation_reports_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeContainerizer::new();
    fake.default_script(Script {
        logs: vec![(
            LogStream::Stderr,
            "ERROR: No matching distribution found for bs4".into(),
        )],
        ..Script::exits(1, Duration::from_millis(10))
    });
    let plan = BuildPlan::new(&spec("python3.11", Some("bs4\n")), &catalog()).unwrap();
    let target = Target::process(dir.path());
    let rendering = plan.render(&target, 8080).unwrap();
    let err = plan
        .build(&fake, &owner(), &target, &rendering, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("installation of function `hello` failed"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("No matching distribution found for bs4"),
        "{err}"
    );
    assert!(fake.live_containers().is_empty());
    assert_eq!(
        plan.render(&target, 8080).unwrap().steps.len(),
        1,
        "a failed install is retried"
    );
}

#[test]
fn archives_are_unpacked_and_escaping_entries_refused() {
    let mut zipped = Vec::new();
    {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(&mut zipped));
        let options = zip::write::SimpleFileOptions::default();
        writer.start_file("hello.py", options).unwrap();
        writer.write_all(b"from helper import x").unwrap();
        writer.start_file("lib/helper.py", options).unwrap();
        writer.write_all(b"x = 1").unwrap();
        writer.finish().unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let mut with_zip = spec("python3.11", None);
    with_zip.code = Code::Source(Source {
        content: SourceContent::Zip(zipped),
        checksum: None,
    });
    BuildPlan::new(&with_zip, &catalog())
        .unwrap()
        .render(&Target::process(dir.path()), 1)
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("lib/helper.py")).unwrap(),
        "x = 1"
    );

    let mut tarred = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut header = tar::Header::new_gnu();
    header.set_size(4);
    header.set_mode(0o644);
    tarred
        .append_data(&mut header, "pkg/mod.py", &b"pass"[..])
        .unwrap();
    let gz = tarred.into_inner().unwrap().finish().unwrap();
    let mut with_tar = spec("python3.11", None);
    with_tar.code = Code::Source(Source {
        content: SourceContent::Tar(gz),
        checksum: None,
    });
    BuildPlan::new(&with_tar, &catalog())
        .unwrap()
        .render(&Target::process(dir.path()), 1)
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("pkg/mod.py")).unwrap(),
        "pass"
    );

    let mut evil = Vec::new();
    {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(&mut evil));
        writer
            .start_file("../escape.py", zip::write::SimpleFileOptions::default())
            .unwrap();
        writer.write_all(b"x").unwrap();
        writer.finish().unwrap();
    }
    let mut with_evil = spec("python3.11", None);
    with_evil.code = Code::Source(Source {
        content: SourceContent::Zip(evil),
        checksum: None,
    });
    let err = BuildPlan::new(&with_evil, &catalog())
        .unwrap()
        .render(&Target::process(dir.path()), 1)
        .unwrap_err();
    assert!(
        err.to_string().contains("escapes the work directory"),
        "{err}"
    );
}

#[test]
fn a_directory_of_code_is_copied_into_the_work_directory() {
    let code = tempfile::tempdir().unwrap();
    std::fs::create_dir(code.path().join("lib")).unwrap();
    std::fs::write(code.path().join("hello.py"), "def foo(e, c): return 1").unwrap();
    std::fs::write(code.path().join("lib/util.py"), "X = 1").unwrap();
    let mut from_dir = spec("python3.11", None);
    from_dir.code = Code::from(code.path());
    let work = tempfile::tempdir().unwrap();
    BuildPlan::new(&from_dir, &catalog())
        .unwrap()
        .render(&Target::process(work.path()), 1)
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(work.path().join("hello.py")).unwrap(),
        "def foo(e, c): return 1"
    );
    assert_eq!(
        std::fs::read_to_string(work.path().join("lib/util.py")).unwrap(),
        "X = 1"
    );
}

#[test]
fn unzip_keeps_the_permission_bits_a_custom_runtime_needs() {
    use std::os::unix::fs::PermissionsExt as _;
    let mut zipped = Vec::new();
    {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(&mut zipped));
        let executable = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
        writer.start_file("bootstrap", executable).unwrap();
        writer.write_all(b"#!/bin/sh\n").unwrap();
        let plain = zip::write::SimpleFileOptions::default().unix_permissions(0o644);
        writer.start_file("data.txt", plain).unwrap();
        writer.write_all(b"x").unwrap();
        writer.finish().unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("code");
    super::unzip(&zipped, &code, "f").unwrap();
    let mode = |name: &str| {
        std::fs::metadata(code.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("bootstrap"), 0o755);
    assert_eq!(mode("data.txt"), 0o644);
}
