"""Drives `hoist serve` as a LocalStack user does, with boto3 and the AWS CLI. Usage:
serve_e2e.py ENDPOINT PHASE, PHASE `before` (create from a zip, wait active, invoke every way,
update code and configuration, publish, alias, concurrency) or `after` (after a restart: list,
get, invoke, delete). Prints the results as one line of JSON."""

import base64
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import zipfile

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint, phase = sys.argv[1], sys.argv[2]
client = boto3.client(
    "lambda",
    endpoint_url=endpoint,
    config=Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=120),
)
aws = os.path.join(os.path.dirname(sys.executable), "aws")
NAME = "e2e"

HANDLER = '''
import os, time

# Set once per environment: an invocation that returns the same value ran in the same one.
BOOT = os.urandom(8).hex()

def handler(event, context):
    if isinstance(event, dict):
        if event.get("sleep"):
            time.sleep(event["sleep"])
        if event.get("big"):
            return "x" * event["big"]
        if event.get("log"):
            print("log:", event["log"])
    cc = context.client_context
    return {
        "code": "CODE",
        "event": event,
        "version": os.environ.get("AWS_LAMBDA_FUNCTION_VERSION"),
        "context_version": context.function_version,
        "arn": context.invoked_function_arn,
        "greeting": os.environ.get("GREETING"),
        "custom": cc.custom if cc else None,
        "pid": os.getpid(),
        "boot": BOOT,
    }
'''


def zipped(code):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("app.py", HANDLER.replace("CODE", code))
    return buffer.getvalue()


def cli(*args):
    """Runs the AWS CLI; returns its exit code and its parsed output (or text)."""
    run = subprocess.run(
        [aws, "--endpoint-url", endpoint, "--output", "json", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )
    try:
        out = json.loads(run.stdout) if run.stdout.strip() else None
    except ValueError:
        out = run.stdout
    return {"code": run.returncode, "out": out, "err": run.stderr[-2000:]}


def invoke(**kwargs):
    try:
        r = client.invoke(FunctionName=NAME, **kwargs)
        body = r["Payload"].read().decode()
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = {"length": len(body)}
        return {
            "status": r["StatusCode"],
            "function_error": r.get("FunctionError"),
            "version": r.get("ExecutedVersion"),
            "payload": payload,
            "log": base64.b64decode(r["LogResult"]).decode() if "LogResult" in r else None,
        }
    except ClientError as e:
        return {
            "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
            "code": e.response["Error"]["Code"],
            "message": e.response["Error"].get("Message"),
            "reason": e.response.get("Reason"),
        }


results = {}
if phase == "before":
    results["create"] = client.create_function(
        FunctionName=NAME,
        Runtime="python3.12",
        Role="arn:aws:iam::000000000000:role/lambda-role",
        Handler="app.handler",
        Code={"ZipFile": zipped("v1")},
        Timeout=10,
    )["State"]
    results["wait_active"] = cli("lambda", "wait", "function-active-v2", "--function-name", NAME)
    results["sync"] = invoke(Payload=json.dumps({"hello": "world"}))
    results["again"] = invoke(Payload=json.dumps({"n": 2}))
    results["event"] = invoke(Payload=json.dumps({"n": 3}), InvocationType="Event")
    results["dry_run"] = invoke(InvocationType="DryRun")
    results["tail"] = invoke(Payload=json.dumps({"log": "marker-7"}), LogType="Tail")
    context = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
    results["client_context"] = invoke(Payload=b"{}", ClientContext=context)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.json")
        cli_invoke = cli("lambda", "invoke", "--function-name", NAME, out)
        cli_invoke["payload"] = json.load(open(out)) if os.path.exists(out) else None
        results["cli_no_payload"] = cli_invoke
    results["bad_json"] = invoke(Payload=b"{nope")
    results["big_request"] = invoke(Payload=json.dumps({"x": "y" * (7 << 20)}))
    results["big_response"] = invoke(Payload=json.dumps({"big": 7 << 20}))
    results["after_big"] = invoke(Payload=b"{}")

    client.update_function_code(FunctionName=NAME, ZipFile=zipped("v2"))
    results["wait_code"] = cli("lambda", "wait", "function-updated-v2", "--function-name", NAME)
    results["updated_code"] = invoke(Payload=b"{}")
    client.update_function_configuration(
        FunctionName=NAME, Environment={"Variables": {"GREETING": "hola"}}, Timeout=20
    )
    results["wait_config"] = cli("lambda", "wait", "function-updated-v2", "--function-name", NAME)
    results["updated_config"] = invoke(Payload=b"{}")
    results["configuration"] = client.get_function_configuration(FunctionName=NAME)

    results["publish"] = client.publish_version(FunctionName=NAME)["Version"]
    results["alias"] = client.create_alias(
        FunctionName=NAME, Name="live", FunctionVersion=results["publish"]
    )["AliasArn"]
    results["by_alias"] = invoke(Payload=b"{}", Qualifier="live")
    results["by_version"] = invoke(Payload=b"{}", Qualifier=results["publish"])

    client.put_function_concurrency(FunctionName=NAME, ReservedConcurrentExecutions=1)
    slow = {}
    thread = threading.Thread(target=lambda: slow.update(invoke(Payload=json.dumps({"sleep": 8}))))
    thread.start()
    time.sleep(1.5)
    results["throttled"] = invoke(Payload=b"{}")
    # The reservation is the function's: a published version shares it.
    results["throttled_alias"] = invoke(Payload=b"{}", Qualifier="live")
    thread.join()
    results["slow"] = slow
    client.delete_function_concurrency(FunctionName=NAME)
elif phase == "after":
    results["list"] = [f["FunctionName"] for f in client.list_functions()["Functions"]]
    results["get"] = client.get_function(FunctionName=NAME)["Configuration"]
    results["versions"] = [
        v["Version"] for v in client.list_versions_by_function(FunctionName=NAME)["Versions"]
    ]
    results["invoke"] = invoke(Payload=json.dumps({"after": "restart"}))
    results["by_alias"] = invoke(Payload=b"{}", Qualifier="live")
    results["cli_get"] = cli("lambda", "get-function", "--function-name", NAME)
    client.delete_function(FunctionName=NAME)
    results["deleted"] = invoke(Payload=b"{}")
    results["list_after_delete"] = [
        f["FunctionName"] for f in client.list_functions()["Functions"]
    ]
print(json.dumps(results, default=str))
