//! Kubeless-style Python functions through hoist-proxy and the Python shim, checked against
//! what Kubeless's own tooling expects: its runtimes Makefile's verify targets
//! (kubeless/runtimes `stable/python/Makefile`), `kubeless function call` and `top`, promtool
//! and prometheus_client's parsers.

mod support;

use std::time::Duration;

use support::prometheus::{checked_samples, python_samples, value, venv_python};
use support::proxied::Function;
use support::{
    PROMETHEUS_ACCEPT, examples, function_dir, get, kubeless_call, multipart, request, send,
    spawn_send,
};

const TEN_SECONDS: Duration = Duration::from_secs(10);

fn python_examples() -> std::path::PathBuf {
    examples().join("python")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_as_kubeless_tooling_sees_it() {
    let running = Function::python(python_examples(), "helloget", "foo")
        .start()
        .await;
    // get-python-verify: `kubeless function call get-python | egrep hello.world`.
    let reply = get(&running.at("/")).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "hello world"));
    assert_eq!(
        reply.content_type, "text/html; charset=UTF-8",
        "bottle's type"
    );
    // scheduled-get-python-verify greps the log for this.
    let log = running.request_log();
    let line = log
        .iter()
        .find(|l| l.contains(r#""GET / HTTP/1.1" 200 11 """#))
        .unwrap_or_else(|| panic!("no Apache combined line for the call: {log:?}"));
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    let elapsed = line.rsplit(' ').next().unwrap();
    assert!(
        elapsed
            .split_once('/')
            .is_some_and(|(s, us)| s.parse::<u64>().is_ok() && us.parse::<u64>().is_ok()),
        "the line ends with seconds/microseconds: {line}"
    );

    // PUT and OPTIONS are not routed to the function (bottle's 405), and not counted.
    for method in ["PUT", "OPTIONS"] {
        let reply = send(method, &running.at("/"), &[], "", TEN_SECONDS).await;
        assert_eq!(reply.status, 405, "{method}");
        assert_eq!(reply.header("allow"), Some("DELETE,GET,PATCH,POST"));
        assert_eq!(
            reply.header("hoist-outcome"),
            None,
            "the proxy's own header"
        );
    }

    // get-python-verify also runs `kubeless function top`: client_golang's text parser, the
    // same format promtool checks; and Python's parser.
    let samples = checked_samples(&running).await;
    assert_eq!(value(&samples, "function_calls_total", "GET"), Some(1.0));
    assert_eq!(value(&samples, "function_failures_total", "GET"), Some(0.0));
    assert_eq!(value(&samples, "function_calls_total", "PUT"), None);
    assert_eq!(
        value(&samples, "function_duration_seconds_count", "GET"),
        Some(1.0)
    );
    let bounds: Vec<String> = samples
        .iter()
        .filter(|(n, l, _)| n == "function_duration_seconds_bucket" && l["method"] == "GET")
        .map(|(_, l, _)| l["le"].clone())
        .collect();
    assert_eq!(
        bounds,
        [
            "0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75", "1.0", "2.5",
            "5.0", "7.5", "10.0", "+Inf"
        ],
        "prometheus_client's default buckets"
    );
    for process in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
        "process_open_fds",
    ] {
        assert!(
            samples.iter().any(|(n, _, v)| n == process && *v > 0.0),
            "{process}: {samples:?}"
        );
    }
    // Prometheus's scraper asks for OpenMetrics and gets it.
    let reply = send(
        "GET",
        &running.at("/metrics"),
        &[("accept", PROMETHEUS_ACCEPT)],
        "",
        TEN_SECONDS,
    )
    .await;
    assert!(
        reply
            .content_type
            .starts_with("application/openmetrics-text; version=1.0.0"),
        "{}",
        reply.content_type
    );
    let samples = python_samples(&reply.body, true);
    assert_eq!(value(&samples, "function_calls_total", "GET"), Some(1.0));
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_binary_and_the_unflushed_print() {
    let running = Function::python(python_examples(), "hellowithdata", "handler")
        .start()
        .await;
    // post-python-verify: `kubeless function call post-python --data '{"it-s": "alive"}'`.
    let reply = kubeless_call(&running.at("/")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, r#"{"it-s": "alive"}"#);
    assert_eq!(reply.content_type, "application/json");
    // ... then greps the pod's log for the event the function printed without flushing.
    running
        .expect_output(&[
            "'event-time': '2026-11-22T18:00:00Z'",
            "'event-type': 'application/json'",
            "'event-namespace': 'cli.kubeless.io'",
            "'event-id': 'Xk3nQ9pLm2a'",
            "'it-s': 'alive'",
        ])
        .await;

    // A binary body is `bytes` and comes back byte for byte.
    let bytes: Vec<u8> = (0..=255).collect();
    let reply = request(
        "POST",
        &running.at("/"),
        &[("content-type", "application/octet-stream")],
        bytes.clone(),
        TEN_SECONDS,
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.bytes.as_ref(), bytes.as_slice());
    // GET's data is b'': an empty answer.
    let reply = get(&running.at("/")).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, ""));
    // Bad JSON is refused without calling the function (Kubeless: 500).
    let reply = send(
        "POST",
        &running.at("/"),
        &[("content-type", "application/json")],
        "{",
        TEN_SECONDS,
    )
    .await;
    assert_eq!(reply.status, 400);
    assert!(reply.body.contains("not JSON"), "{}", reply.body);
    let samples = checked_samples(&running).await;
    assert_eq!(value(&samples, "function_calls_total", "POST"), Some(2.0));
    running.stop().await;
}

const CALLS: &str = r#"import os, time

def run(event, context):
    query = event['extensions']['request'].query
    kind = query.get('kind')
    if kind == 'spin':
        while 1:
            pass
    if kind == 'wait':
        deadline = time.time() + 30
        while not os.path.exists(event['data'].decode()) and time.time() < deadline:
            time.sleep(0.01)
        return 'waited'
    if kind == 'raise':
        raise ValueError('token=s3cr3t-123')
    if kind == 'barrier':
        folder = event['data'].decode()
        open(os.path.join(folder, str(os.getpid())), 'w').close()
        deadline = time.time() + 20
        while len(os.listdir(folder)) < 40 and time.time() < deadline:
            time.sleep(0.01)
        return str(len(os.listdir(folder)))
    return str(os.getppid())
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_ends_only_its_own_call_and_calls_run_in_parallel() {
    let dir = function_dir("calls.py", CALLS);
    let running = Function::python(dir.path(), "calls", "run")
        .timeout("4")
        .start()
        .await;
    let server = get(&running.at("/")).await.body;

    // A call that never yields times out while another is in flight: only it ends.
    let spin = spawn_send(
        "GET",
        running.at("/?kind=spin"),
        String::new(),
        Duration::from_secs(30),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let flags = tempfile::tempdir().unwrap();
    let flag = flags.path().join("go");
    let wait = spawn_send(
        "POST",
        running.at("/?kind=wait"),
        flag.to_str().unwrap().to_owned(),
        Duration::from_secs(30),
    );
    let reply = spin.await.unwrap();
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (408, "Timeout while processing the function")
    );
    std::fs::write(&flag, "").unwrap();
    let reply = wait.await.unwrap();
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "waited"),
        "the other call was not touched"
    );
    assert_eq!(
        get(&running.at("/")).await.body,
        server,
        "the server process was not restarted"
    );

    // An exception: logged, a generic 500 to the caller.
    let reply = get(&running.at("/?kind=raise")).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (500, "Internal Server Error")
    );
    running
        .expect_output(&["token=s3cr3t-123", "Traceback"])
        .await;

    // 40 calls at once, each in a process of its own, all in flight together.
    let folder = tempfile::tempdir().unwrap();
    let calls: Vec<_> = (0..40)
        .map(|_| {
            let folder = folder.path().to_str().unwrap().to_owned();
            spawn_send(
                "POST",
                running.at("/?kind=barrier"),
                folder,
                Duration::from_secs(30),
            )
        })
        .collect();
    for call in calls {
        let reply = call.await.unwrap();
        assert_eq!((reply.status, reply.body.as_str()), (200, "40"));
    }

    let samples = checked_samples(&running).await;
    assert_eq!(value(&samples, "function_calls_total", "GET"), Some(4.0));
    assert_eq!(
        value(&samples, "function_failures_total", "GET"),
        Some(1.0),
        "the exception is a failure, the timeout is not"
    );
    assert_eq!(value(&samples, "function_calls_total", "POST"), Some(41.0));
    running.stop().await;

    // timeout-python-verify: Kubeless's `while 1: pass` with a short timeout gets the 408
    // that `kubeless function call` shows as "Request timeout exceeded".
    let running = Function::python(python_examples(), "loop", "foo")
        .timeout("1")
        .start()
        .await;
    assert_eq!(get(&running.at("/")).await.status, 408);
    running.stop().await;
}

const INSPECT: &str = r#"
def run(event, context):
    request = event['extensions']['request']
    return {
        'data': type(event['data']).__name__,
        'timeout': context['timeout'],
        'function-name': context['function-name'],
        'runtime': context['runtime'],
        'host': request.get_header('Host'),
        'remote': request.remote_addr,
        'query': request.query.get('q'),
        'cookie': request.get_cookie('c'),
        'path': request.path,
    }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_the_context_the_limits_and_deps() {
    let dir = function_dir("inspect.py", INSPECT);
    let running = Function::python(dir.path(), "inspect", "run")
        .timeout("3")
        .env("FUNC_MEMFILE_MAX", "1000")
        .start()
        .await;
    let reply = send(
        "POST",
        &running.at("/some/where?q=1"),
        &[
            ("host", "fn.example:8080"),
            ("content-type", "application/json; charset=utf-8"),
            ("cookie", "c=yum"),
        ],
        "{}",
        TEN_SECONDS,
    )
    .await;
    let seen: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(
        seen,
        serde_json::json!({
            "data": "bytes",
            "timeout": 3.0,
            "function-name": "run",
            "runtime": null,
            "host": "fn.example:8080",
            "remote": "127.0.0.1",
            "query": "1",
            "cookie": "yum",
            "path": "/some/where",
        }),
        "data is parsed only for exactly `application/json`"
    );
    assert!(
        reply.body.contains("\"timeout\": 3.0"),
        "a float: {}",
        reply.body
    );
    let reply = send("POST", &running.url, &[], &"x".repeat(1001), TEN_SECONDS).await;
    assert_eq!(reply.status, 413, "past FUNC_MEMFILE_MAX");
    running.stop().await;

    // A multipart form, as Kubeless's request.py example reads one.
    let uploads = tempfile::tempdir().unwrap();
    let running = Function::python(python_examples(), "upload", "handler")
        .env("UPLOAD_DIR", uploads.path().to_str().unwrap())
        .start()
        .await;
    let content: Vec<u8> = (0..=255)
        .chain(b"\r\n--not-the-end\r\n".iter().copied())
        .collect();
    let body = multipart(
        "b0undary",
        &[
            ("category", None, b"docs"),
            ("upload", Some("my report.bin"), &content),
        ],
    );
    let reply = request(
        "POST",
        &running.at("/?greeting=Hola"),
        &[
            ("content-type", "multipart/form-data; boundary=b0undary"),
            ("say-hello-to", "John"),
        ],
        body,
        TEN_SECONDS,
    )
    .await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (
            200,
            format!(
                "Hola John: saved docs/my-report.bin ({} bytes)",
                content.len()
            )
            .as_str()
        )
    );
    assert_eq!(
        std::fs::read(uploads.path().join("docs/my-report.bin")).unwrap(),
        content
    );
    running.stop().await;

    // Status and headers from bottle's HTTPResponse and HTTPError (bottle from the venv, as
    // in Kubeless's image).
    let running = Function::python(python_examples(), "status", "handler")
        .interpreter(venv_python())
        .start()
        .await;
    let reply = send("POST", &running.url, &[], "", TEN_SECONDS).await;
    assert_eq!((reply.status, reply.body.as_str()), (201, "created"));
    assert_eq!(reply.header("x-greeting"), Some("made"));
    let reply = get(&running.at("/?missing=1")).await;
    assert_eq!(reply.status, 404);
    assert!(reply.body.contains("no such greeting"), "{}", reply.body);
    assert!(reply.content_type.starts_with("text/html"));
    let samples = checked_samples(&running).await;
    assert_eq!(
        value(&samples, "function_failures_total", "GET"),
        Some(0.0),
        "a status the function chose is not a failure"
    );
    running.stop().await;

    // get-python-deps: a dependency found on PYTHONPATH, where the installation put it.
    let deps = function_dir(
        "hoist_greeting.py",
        "def greet(name):\n    return f'hello {name} from hoist-greeting'\n",
    );
    let running = Function::python(python_examples(), "hellowithdeps", "handler")
        .env("PYTHONPATH", deps.path().to_str().unwrap())
        .start()
        .await;
    let reply = get(&running.url).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "hello deps from hoist-greeting")
    );
    running.stop().await;
}
