//! A contract runtime in Docker containers with a network of their own (`HOSTNAME_FROM_LAMBDA`
//! set, so no host network): hoist-proxy in front of hoist-runtimes' Python shim serves
//! `FUNC_PORT` 8080 on the container's bridge address, where the executor calls it. The image
//! is `FROM scratch` busybox with the host's Python, libraries and the proxy mounted read-only.

mod support;

use std::path::Path;
use std::sync::Arc;

use hoist_functions::config::RuntimeCommand;
use hoist_functions::{FunctionExecutor, FunctionSpec, Invocation};
use serde_json::{Value, json};

use support::repo;

fn docker_inspect(container: &str, format: &str) -> String {
    support::docker::docker_cli(&["inspect", "-f", format, container])
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_runtimes_in_bridged_containers_are_called_on_their_own_address() {
    let Some(docker) = support::docker::engine("the bridged contract runtime").await else {
        return;
    };
    let proxy = support::hoist_proxy();
    let tag = support::docker::busybox_image(&docker, "contract").await;
    let shims = repo().join("runtimes/shims/python");
    let code = repo().join("examples/functions/python");
    let python = std::fs::canonicalize("/usr/bin/python3").unwrap();

    let mut runtime = RuntimeCommand::contract([proxy.to_string_lossy().as_ref()]).in_image(&tag);
    runtime.volumes = support::docker::c_libraries();
    runtime.volumes.extend(support::docker::host_mounts(&[
        proxy.parent().unwrap(),
        &shims,
        Path::new("/usr"),
    ]));
    let mut config = support::config(None);
    // Environments get a network of their own; the contract does not use the Runtime API, so
    // the address itself is never dialled.
    config.runtime_api_host = Some("172.17.0.1".into());
    config.runtimes.insert("python-bridge".into(), runtime);
    let functions = FunctionExecutor::start(Arc::new(docker), config).unwrap();
    let mut spec = FunctionSpec::new("bridged", "python-bridge", "hellowithdata.handler", &code);
    let shim = shims.join("hoist_runtime.py");
    spec.env.insert(
        "FUNC_PROCESS".into(),
        format!("exec {} {}", python.display(), shim.display()),
    );
    spec.env
        .insert("PYTHONDONTWRITEBYTECODE".into(), "1".into());
    functions.create(spec).unwrap();

    let scenario = async {
        let invocation = Invocation {
            request_id: Some("ev-7".into()),
            ..Invocation::new(r#"{"it-s":"alive"}"#)
        };
        let first = functions.invoke("bridged", invocation).await.unwrap();
        assert_eq!(first.function_error, None, "{first:?}");
        assert!(first.cold_start);
        let body: Value = serde_json::from_slice(&first.payload).unwrap();
        assert_eq!(body, json!({"it-s": "alive"}));

        // One container, on the bridge with an address of its own, told to serve on 8080.
        let containers = support::docker::containers_of("bridged");
        assert_eq!(containers.len(), 1, "{containers:?}");
        let container = &containers[0];
        let network = docker_inspect(container, "{{.HostConfig.NetworkMode}}");
        assert_ne!(network, "host");
        let address = docker_inspect(
            container,
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        );
        assert!(address.parse::<std::net::Ipv4Addr>().is_ok(), "{address:?}");
        let env = docker_inspect(container, "{{json .Config.Env}}");
        assert!(env.contains("\"FUNC_PORT=8080\""), "{env}");

        let warm = functions
            .invoke("bridged", Invocation::new(r#"{"n":2}"#))
            .await
            .unwrap();
        assert!(!warm.cold_start, "the container is reused");
        assert_eq!(support::docker::containers_of("bridged"), containers);
    };
    let result = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(scenario)).await;
    functions.shutdown().await;
    support::docker::wait_until_gone(&["bridged"]).await;
    support::docker::remove_test_image(&tag).await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
