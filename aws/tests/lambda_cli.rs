//! The Lambda API driven by the AWS CLI (`aws lambda ...`), as a user at a shell drives it.

mod support;

use std::io::Write;
use std::path::Path;

use serde_json::Value;
use support::{Server, client_command, venv};

struct Cli {
    endpoint: String,
}

impl Cli {
    /// Runs `aws --endpoint-url E lambda <args>`; returns the exit code, the JSON it printed
    /// (`null` for none) and its standard error.
    async fn run(&self, args: &[&str]) -> (i32, Value, String) {
        let output = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            client_command(&venv().join("bin").join("aws"))
                .arg("--endpoint-url")
                .arg(&self.endpoint)
                .arg("--output")
                .arg("json")
                .arg("lambda")
                .args(args)
                .output(),
        )
        .await
        .expect("the AWS CLI finishes")
        .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let value = if stdout.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&stdout)
                .unwrap_or_else(|e| panic!("aws lambda {args:?} printed no JSON ({e}): {stdout}"))
        };
        (
            output.status.code().unwrap_or(-1),
            value,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Runs a command that must succeed.
    async fn ok(&self, args: &[&str]) -> Value {
        let (code, value, stderr) = self.run(args).await;
        assert_eq!(code, 0, "aws lambda {args:?} failed: {stderr}");
        value
    }

    /// Runs a command that must fail with the AWS error `code`; returns its standard error.
    async fn fails(&self, args: &[&str], code: &str) -> String {
        let (exit, _, stderr) = self.run(args).await;
        // AWS CLI v1 exits 255 on a service error, v2 254.
        assert!(
            matches!(exit, 254 | 255),
            "aws lambda {args:?} exits 254 or 255 on a service error, not {exit}: {stderr}"
        );
        assert!(
            stderr.contains(&format!("An error occurred ({code})")),
            "aws lambda {args:?}: {stderr}"
        );
        stderr
    }
}

fn write_zip(path: &Path, source: &str) {
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    zip.start_file("index.mjs", zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.write_all(source.as_bytes()).unwrap();
    zip.finish().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_drives_the_lambda_api() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let cli = Cli {
        endpoint: server.endpoint.clone(),
    };
    let first = work.path().join("first.zip");
    let second = work.path().join("second.zip");
    write_zip(&first, "export const handler = async (e) => e;\n");
    write_zip(&second, "export const handler = async () => 2;\n");
    let zip_arg = |p: &Path| format!("fileb://{}", p.display());
    let out = |name: &str| work.path().join(name).display().to_string();
    let arn = "arn:aws:lambda:us-east-1:000000000000:function:cli-fn";

    let create = |name: &'static str, runtime: &'static str, zip: String| {
        [
            "create-function",
            "--function-name",
            name,
            "--runtime",
            runtime,
            "--handler",
            "index.handler",
            "--role",
            "arn:aws:iam::000000000000:role/cli",
            "--zip-file",
        ]
        .into_iter()
        .map(str::to_owned)
        .chain([zip])
        .collect::<Vec<String>>()
    };
    let mut args = create("cli-fn", "nodejs20.x", zip_arg(&first));
    args.extend(
        [
            "--environment",
            "Variables={GREETING=hi}",
            "--tags",
            "team=cli",
        ]
        .map(str::to_owned),
    );
    let created = cli
        .ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    assert_eq!(created["State"], "Pending");
    assert_eq!(created["FunctionArn"], arn);
    cli.ok(&["wait", "function-active-v2", "--function-name", "cli-fn"])
        .await;
    let got = cli.ok(&["get-function", "--function-name", "cli-fn"]).await;
    assert_eq!(got["Configuration"]["State"], "Active");
    assert_eq!(
        got["Configuration"]["Environment"]["Variables"]["GREETING"],
        "hi"
    );
    assert_eq!(got["Tags"]["team"], "cli");

    // Invoke with no payload: the event is `{}`.
    let answer = cli
        .ok(&["invoke", "--function-name", "cli-fn", &out("none.json")])
        .await;
    assert_eq!(answer["StatusCode"], 200);
    assert_eq!(answer["ExecutedVersion"], "$LATEST");
    let echoed: Value =
        serde_json::from_slice(&std::fs::read(work.path().join("none.json")).unwrap()).unwrap();
    assert_eq!(echoed["event"], serde_json::json!({}));
    // AWS CLI v1 (PyPI's `awscli`) sends `--payload` as given.
    cli.ok(&[
        "invoke",
        "--function-name",
        "cli-fn",
        "--payload",
        r#"{"a": 1}"#,
        &out("payload.json"),
    ])
    .await;
    let echoed: Value =
        serde_json::from_slice(&std::fs::read(work.path().join("payload.json")).unwrap()).unwrap();
    assert_eq!(echoed["event"]["a"], 1);

    let updated = cli
        .ok(&[
            "update-function-configuration",
            "--function-name",
            "cli-fn",
            "--timeout",
            "20",
            "--memory-size",
            "512",
        ])
        .await;
    assert_eq!(updated["LastUpdateStatus"], "InProgress");
    cli.ok(&["wait", "function-updated-v2", "--function-name", "cli-fn"])
        .await;
    cli.ok(&[
        "update-function-code",
        "--function-name",
        "cli-fn",
        "--zip-file",
        &zip_arg(&second),
    ])
    .await;
    cli.ok(&["wait", "function-updated-v2", "--function-name", "cli-fn"])
        .await;
    let conf = cli
        .ok(&["get-function-configuration", "--function-name", "cli-fn"])
        .await;
    assert_eq!(
        (conf["Timeout"].as_u64(), conf["MemorySize"].as_u64()),
        (Some(20), Some(512))
    );

    let v1 = cli
        .ok(&["publish-version", "--function-name", "cli-fn"])
        .await;
    assert_eq!(v1["Version"], "1");
    let versions = cli
        .ok(&["list-versions-by-function", "--function-name", "cli-fn"])
        .await;
    assert_eq!(versions["Versions"].as_array().unwrap().len(), 2);
    cli.ok(&[
        "create-alias",
        "--function-name",
        "cli-fn",
        "--name",
        "prod",
        "--function-version",
        "1",
    ])
    .await;
    cli.ok(&[
        "update-alias",
        "--function-name",
        "cli-fn",
        "--name",
        "prod",
        "--description",
        "production",
    ])
    .await;
    let alias = cli
        .ok(&["get-alias", "--function-name", "cli-fn", "--name", "prod"])
        .await;
    assert_eq!(alias["Description"], "production");
    let aliases = cli.ok(&["list-aliases", "--function-name", "cli-fn"]).await;
    assert_eq!(aliases["Aliases"][0]["AliasArn"], format!("{arn}:prod"));
    let answer = cli
        .ok(&[
            "invoke",
            "--function-name",
            "cli-fn",
            "--qualifier",
            "prod",
            &out("prod.json"),
        ])
        .await;
    assert_eq!(answer["ExecutedVersion"], "1");

    let reserved = cli
        .ok(&[
            "put-function-concurrency",
            "--function-name",
            "cli-fn",
            "--reserved-concurrent-executions",
            "3",
        ])
        .await;
    assert_eq!(reserved["ReservedConcurrentExecutions"], 3);
    let reserved = cli
        .ok(&["get-function-concurrency", "--function-name", "cli-fn"])
        .await;
    assert_eq!(reserved["ReservedConcurrentExecutions"], 3);
    let settings = cli.ok(&["get-account-settings"]).await;
    assert_eq!(
        settings["AccountLimit"]["UnreservedConcurrentExecutions"],
        997
    );
    assert_eq!(settings["AccountUsage"]["FunctionCount"], 1);
    cli.ok(&["delete-function-concurrency", "--function-name", "cli-fn"])
        .await;
    assert_eq!(server.host.reserved.lock().unwrap()["cli-fn"], None);

    cli.ok(&["tag-resource", "--resource", arn, "--tags", "env=ci"])
        .await;
    let tags = cli.ok(&["list-tags", "--resource", arn]).await;
    assert_eq!(
        tags["Tags"],
        serde_json::json!({"team": "cli", "env": "ci"})
    );
    cli.ok(&["untag-resource", "--resource", arn, "--tag-keys", "team"])
        .await;
    let tags = cli.ok(&["list-tags", "--resource", arn]).await;
    assert_eq!(tags["Tags"], serde_json::json!({"env": "ci"}));
    let listed = cli.ok(&["list-functions"]).await;
    assert_eq!(listed["Functions"][0]["FunctionName"], "cli-fn");

    // Errors, as the CLI prints them.
    let stderr = cli
        .fails(
            &["get-function", "--function-name", "nope"],
            "ResourceNotFoundException",
        )
        .await;
    assert!(
        stderr.contains("Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope"),
        "{stderr}"
    );
    let args = create("old", "nodejs12.x", zip_arg(&first));
    cli.fails(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "InvalidParameterValueException",
    )
    .await;
    let stderr = cli.fails(&["list-layers"], "InternalFailure").await;
    assert!(stderr.contains("ListLayers"), "{stderr}");
    let stderr = cli
        .fails(
            &["get-policy", "--function-name", "cli-fn"],
            "InternalFailure",
        )
        .await;
    assert!(stderr.contains("GetPolicy"), "{stderr}");

    cli.ok(&[
        "delete-alias",
        "--function-name",
        "cli-fn",
        "--name",
        "prod",
    ])
    .await;
    cli.ok(&[
        "delete-function",
        "--function-name",
        "cli-fn",
        "--qualifier",
        "1",
    ])
    .await;
    cli.ok(&["delete-function", "--function-name", "cli-fn"])
        .await;
    let listed = cli.ok(&["list-functions"]).await;
    assert_eq!(listed["Functions"], serde_json::json!([]));
    assert_eq!(
        server.host.deployed("cli-fn"),
        ["$LATEST", "$LATEST", "$LATEST", "1"]
    );
    assert_eq!(
        server.host.removed.lock().unwrap().as_slice(),
        [
            ("cli-fn".to_string(), Some("1".to_string())),
            ("cli-fn".to_string(), None)
        ]
    );
    // Nothing names the archives any more: they are gone from the state directory.
    let left: Vec<_> = std::fs::read_dir(dir.path().join(hoist_store::CODE_DIR))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
    server.stop().await;
}
