//! Runtimes on the runtime contract (FUNC_PORT, /healthz, event headers): hoist-runtimes'
//! Python shim serving the example functions, on local processes.

mod support;

use std::time::Duration;

use hoist_functions::config::RuntimeCommand;
use hoist_functions::{FunctionSpec, Invocation};
use serde_json::{Value, json};

use support::repo;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_runtimes_serve_events_with_their_headers() {
    let shim = repo().join("runtimes/shims/python/hoist_runtime.py");
    let code = repo().join("examples/functions/python");
    let mut config = support::config(None);
    config.runtimes.insert(
        "python-contract".into(),
        RuntimeCommand::contract(["python3".to_owned(), shim.to_string_lossy().into_owned()]),
    );
    let (functions, processes) = support::executor(config);
    // Keep the example directory free of bytecode caches.
    let spec = |name: &str, handler: &str| {
        let mut spec = FunctionSpec::new(name, "python-contract", handler, &code);
        spec.env
            .insert("PYTHONDONTWRITEBYTECODE".into(), "1".into());
        spec
    };
    functions
        .create(spec("data", "hellowithdata.handler"))
        .unwrap();
    functions.create(spec("get", "helloget.foo")).unwrap();
    let mut endless = spec("endless", "endless.forever");
    endless.timeout = Duration::from_secs(1);
    functions.create(endless).unwrap();

    let invocation = Invocation {
        request_id: Some("ev-42".into()),
        event_namespace: Some("cli.kubeless.io".into()),
        ..Invocation::new(r#"{"it-s":"alive"}"#)
    };
    let first = functions.invoke("data", invocation).await.unwrap();
    assert_eq!(first.function_error, None, "{first:?}");
    assert!(first.cold_start);
    let body: Value = serde_json::from_slice(&first.payload).unwrap();
    assert_eq!(body, json!({"it-s": "alive"}));
    let again = functions
        .invoke("data", Invocation::new(r#"{"n":1}"#))
        .await
        .unwrap();
    assert!(!again.cold_start, "the contract environment is reused");

    let get = functions.invoke("get", Invocation::new("")).await.unwrap();
    assert_eq!(&get.payload[..], b"hello world");

    let slow = functions
        .invoke("endless", Invocation::new("{}"))
        .await
        .unwrap();
    assert_eq!(slow.function_error.as_deref(), Some("Unhandled"));
    let error: Value = serde_json::from_slice(&slow.payload).unwrap();
    assert_eq!(error["errorType"], "Sandbox.Timedout");

    functions.shutdown().await;
    processes.assert_clean().await;
}
