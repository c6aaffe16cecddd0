"""Drives the Lambda data plane with an unmodified boto3 client and raw HTTP: what AWS does with
no payload, bad JSON, client contexts, oversize requests and responses, the environment a
function sees, and the error shape of every route. Prints the results as JSON."""

import base64
import json
import sys
import urllib.error
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint = sys.argv[1]
client = boto3.client(
    "lambda",
    endpoint_url=endpoint,
    config=Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=60),
)


def outcome(call):
    try:
        r = call()
        body = r["Payload"].read().decode()
        return {
            "status": r["StatusCode"],
            "function_error": r.get("FunctionError"),
            "payload": json.loads(body) if body else None,
        }
    except ClientError as e:
        return {
            "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
            "code": e.response["Error"]["Code"],
            "message": e.response["Error"].get("Message"),
        }


def raw(method, path, body=None, headers=None):
    """One request without boto3: status, the headers that matter and the parsed body."""
    request = urllib.request.Request(
        endpoint + path, data=body, method=method, headers=headers or {}
    )
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as e:
        response = e
    text = response.read().decode()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = {"unparsed": text}
    return {
        "status": response.status if hasattr(response, "status") else response.code,
        "error_type": response.headers.get("X-Amzn-ErrorType"),
        "request_id": response.headers.get("x-amzn-RequestId"),
        "body": parsed,
    }


def invoke(name, **kwargs):
    return outcome(lambda: client.invoke(FunctionName=name, **kwargs))


def encoded(value):
    return base64.b64encode(json.dumps(value).encode()).decode()


results = {}
results["no_payload"] = invoke("py-inspect")
results["bad_json"] = invoke("py-inspect", Payload=b"{oops")
results["bad_json_event"] = invoke("py-inspect", Payload=b"{oops", InvocationType="Event")
context = {"custom": {"k": "v"}, "env": {"platform": "test"}, "client": {"app_title": "t"}}
results["client_context"] = invoke(
    "py-inspect", Payload=json.dumps({"n": 1}), ClientContext=encoded(context)
)
results["bad_client_context"] = invoke("py-inspect", ClientContext="not base64 at all!")
results["big_request"] = invoke("py-inspect", Payload=json.dumps({"x": "y" * (7 << 20)}))
results["before_big_response"] = invoke("py-inspect", Payload=json.dumps({"n": 2}))
results["big_response"] = invoke("py-inspect", Payload=json.dumps({"big": 7 << 20}))
results["after_big_response"] = invoke("py-inspect", Payload=json.dumps({"n": 3}))
results["missing_version"] = invoke("py-inspect", Qualifier="42")
results["routes"] = {
    "unknown_path": raw("GET", "/2015-03-31/nothing-here"),
    "wrong_method": raw("GET", "/2015-03-31/functions/py-inspect/invocations"),
    "missing_function": raw("POST", "/2015-03-31/functions/nope/invocations", b"{}"),
    "bad_invocation_type": raw(
        "POST",
        "/2015-03-31/functions/py-inspect/invocations",
        b"{}",
        {"X-Amz-Invocation-Type": "Sometimes"},
    ),
    "bad_json": raw("POST", "/2015-03-31/functions/py-inspect/invocations", b"[1,"),
    "too_large": raw(
        "POST", "/2015-03-31/functions/py-inspect/invocations", b"1" * (6291456 + 1)
    ),
}
print(json.dumps(results))
