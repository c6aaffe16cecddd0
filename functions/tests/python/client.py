"""Drives the Lambda Invoke API with an unmodified boto3 client; prints the results as JSON."""

import base64
import json
import sys
import threading
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

client = boto3.client(
    "lambda",
    endpoint_url=sys.argv[1],
    config=Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=60),
)


def invoke(name, payload, **kwargs):
    try:
        r = client.invoke(FunctionName=name, Payload=json.dumps(payload), **kwargs)
        body = r["Payload"].read().decode()
        return {
            "status": r["StatusCode"],
            "function_error": r.get("FunctionError"),
            "version": r.get("ExecutedVersion"),
            "payload": json.loads(body) if body else None,
            "request_id": r["ResponseMetadata"]["RequestId"],
            "log": base64.b64decode(r["LogResult"]).decode() if "LogResult" in r else None,
        }
    except ClientError as e:
        return {
            "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
            "code": e.response["Error"]["Code"],
            "message": e.response["Error"].get("Message"),
            "reason": e.response.get("Reason"),
            "retry_after": e.response.get("retryAfterSeconds"),
        }


results = {}
results["first"] = invoke("py-echo", {"hello": "world"})
results["second"] = invoke("py-echo", {"n": 2})
results["error"] = invoke("py-echo", {"fail": True})
results["tail"] = invoke("py-echo", {"log": "marker-42"}, LogType="Tail")
results["tail_error"] = invoke("py-echo", {"log": "failing", "fail": True}, LogType="Tail")
results["event"] = invoke("py-echo", {"n": 3}, InvocationType="Event")
results["dry_run"] = invoke("py-echo", {}, InvocationType="DryRun")
results["missing"] = invoke("no-such-function", {})
results["broken"] = invoke("py-broken", {})
results["warm_slow"] = invoke("py-slow", {})
slow = {}
thread = threading.Thread(target=lambda: slow.update(invoke("py-slow", {"sleep": 2})))
thread.start()
time.sleep(0.5)
results["throttled"] = invoke("py-slow", {})
thread.join()
results["slow"] = slow
results["timeout"] = invoke("py-short", {"sleep": 5})
wide = [None] * 3


def call(i):
    wide[i] = invoke("py-wide", {"sleep": 1})


threads = [threading.Thread(target=call, args=(i,)) for i in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
results["wide"] = wide
print(json.dumps(results))
