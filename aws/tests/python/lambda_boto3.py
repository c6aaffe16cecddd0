"""Drives hoist's Lambda API with boto3, one phase per call: `python lambda_boto3.py ENDPOINT PHASE`.

Every check is an assert; a failed one exits non-zero with the response it saw. The phase's
observations the Rust test checks further are printed as one JSON line.
"""

import base64
import hashlib
import io
import json
import sys
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT, PHASE = sys.argv[1], sys.argv[2]
ROLE = "arn:aws:iam::000000000000:role/lambda-role"
ARN = "arn:aws:lambda:us-east-1:000000000000:function:"
client = boto3.client(
    "lambda",
    endpoint_url=ENDPOINT,
    region_name="us-east-1",
    aws_access_key_id="test",
    aws_secret_access_key="test",
    config=Config(retries={"max_attempts": 1, "mode": "standard"}),
)
FAST_WAIT = {"Delay": 1, "MaxAttempts": 30}


def zip_of(files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in files.items():
            # A fixed date: the same files make the same archive in every run.
            z.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), text)
    return buf.getvalue()


CODE = zip_of({"app.py": "def handler(event, context):\n    return event\n"})
CODE2 = zip_of({"app.py": "def handler(event, context):\n    return {'v': 2}\n"})


def sha(data):
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def error(code, status, call, *args, **kwargs):
    """Calls, expecting an AWS error `code` with HTTP `status`; returns its message."""
    try:
        response = call(*args, **kwargs)
    except ClientError as e:
        err, meta = e.response["Error"], e.response["ResponseMetadata"]
        assert err["Code"] == code, (code, e.response)
        assert meta["HTTPStatusCode"] == status, (status, e.response)
        assert meta["RequestId"], e.response
        assert meta["HTTPHeaders"].get("x-amzn-errortype") == code, e.response
        return err["Message"]
    raise AssertionError(f"expected {code}, got {response}")


def create(name, zipped=CODE, **extra):
    return client.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": zipped},
        **extra,
    )


def invoke(name, payload=None, **extra):
    args = {"FunctionName": name, **extra}
    if payload is not None:
        args["Payload"] = payload
    response = client.invoke(**args)
    body = response["Payload"].read()
    return response, (json.loads(body) if body else None)


def full():
    created = create("hello", Environment={"Variables": {"A": "1"}}, Tags={"team": "core"})
    assert created["State"] == "Pending", created
    assert created["StateReasonCode"] == "Creating", created
    assert created["Version"] == "$LATEST", created
    assert created["FunctionArn"] == ARN + "hello", created
    assert created["CodeSha256"] == sha(CODE), created
    assert created["CodeSize"] == len(CODE), created
    assert created["Environment"] == {"Variables": {"A": "1"}}, created
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    client.get_waiter("function_active_v2").wait(FunctionName="hello", WaiterConfig=FAST_WAIT)
    got = client.get_function(FunctionName="hello")
    assert got["Configuration"]["State"] == "Active", got
    assert got["Configuration"]["LastUpdateStatus"] == "Successful", got
    assert got["Tags"] == {"team": "core"}, got
    with urllib.request.urlopen(got["Code"]["Location"]) as r:
        assert r.read() == CODE
    assert client.get_function_configuration(FunctionName=ARN + "hello")["Handler"] == "app.handler"

    # Invoke: sync, no payload, bad JSON, Tail, ClientContext, Event, DryRun, too large.
    r, body = invoke("hello", b'{"x": 1}')
    assert r["StatusCode"] == 200 and r["ExecutedVersion"] == "$LATEST", r
    assert body["event"] == {"x": 1} and body["version"] == "$LATEST", body
    assert r["ResponseMetadata"]["RequestId"] == body["request_id"], (r, body)
    r, body = invoke("hello")
    assert body["event"] == {}, body
    msg = error("InvalidRequestContentException", 400, client.invoke, FunctionName="hello", Payload=b"{not json")
    assert msg.startswith("Could not parse request body into json"), msg
    error("InvalidRequestContentException", 400, client.invoke, FunctionName="hello", Payload=b"nope", InvocationType="Event")
    r, _ = invoke("hello", b"{}", LogType="Tail")
    assert "START RequestId" in base64.b64decode(r["LogResult"]).decode(), r
    context = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
    r, body = invoke("hello", b"{}", ClientContext=context)
    assert json.loads(body["client_context"]) == {"custom": {"k": "v"}}, body
    r, _ = invoke("hello", b"{}", InvocationType="Event")
    assert r["StatusCode"] == 202, r
    r, _ = invoke("hello", b"{}", InvocationType="DryRun")
    assert r["StatusCode"] == 204, r
    msg = error("RequestEntityTooLargeException", 413, client.invoke, FunctionName="hello", Payload=b'"' + b"x" * (7 << 20) + b'"')
    assert msg == "Request must be smaller than 6291456 bytes for the InvokeFunction operation", msg
    r, body = invoke("hello", b'{"fail": true}')
    assert r["FunctionError"] == "Unhandled" and body["errorType"] == "TestError", (r, body)

    # Control-plane errors.
    msg = error("ResourceNotFoundException", 404, client.get_function, FunctionName="nope")
    assert msg == "Function not found: " + ARN + "nope", msg
    assert error("ResourceConflictException", 409, create, "hello") == "Function already exist: hello"
    msg = error("InvalidParameterValueException", 400, client.create_function, FunctionName="old", Runtime="python3.7", Role=ROLE, Handler="a.b", Code={"ZipFile": CODE})
    assert "no longer supported" in msg, msg
    msg = error("InvalidParameterValueException", 400, client.create_function, FunctionName="odd", Runtime="cobol85", Role=ROLE, Handler="a.b", Code={"ZipFile": CODE})
    assert msg.startswith("Value cobol85 at 'runtime' failed to satisfy constraint"), msg
    msg = error("InvalidParameterValueException", 400, create, "big-env", Environment={"Variables": {"BIG": "x" * 5000}})
    assert "exceeded the 4KB limit" in msg, msg
    msg = error("InvalidParameterValueException", 400, create, "bad-zip", zipped=b"not a zip")
    assert msg.startswith("Could not unzip uploaded file"), msg
    msg = error("ValidationException", 400, create, "long", Timeout=6000)
    assert "at 'timeout' failed to satisfy constraint" in msg, msg
    msg = error("InvalidParameterValueException", 400, create, "vpc", VpcConfig={"SubnetIds": ["subnet-1"]})
    assert "VpcConfig" in msg, msg
    error("ValidationException", 400, client.create_function, FunctionName="role", Runtime="python3.12", Role="not-a-role", Handler="a.b", Code={"ZipFile": CODE})

    # Updates: InProgress until deployed, then the function-updated waiter passes.
    updated = client.update_function_configuration(FunctionName="hello", Timeout=10, MemorySize=256, Environment={"Variables": {"A": "2"}}, Handler="app.handler2")
    assert updated["LastUpdateStatus"] == "InProgress", updated
    client.get_waiter("function_updated_v2").wait(FunctionName="hello", WaiterConfig=FAST_WAIT)
    conf = client.get_function_configuration(FunctionName="hello")
    assert (conf["Timeout"], conf["MemorySize"], conf["Handler"]) == (10, 256, "app.handler2"), conf
    assert conf["Environment"]["Variables"] == {"A": "2"}, conf
    old_revision = conf["RevisionId"]
    updated = client.update_function_code(FunctionName="hello", ZipFile=CODE2)
    assert updated["CodeSha256"] == sha(CODE2), updated
    client.get_waiter("function_updated_v2").wait(FunctionName="hello", WaiterConfig=FAST_WAIT)
    error("PreconditionFailedException", 412, client.update_function_configuration, FunctionName="hello", Timeout=5, RevisionId=old_revision)

    # Versions and aliases.
    v1 = client.publish_version(FunctionName="hello", Description="first")
    assert (v1["Version"], v1["State"], v1["Description"]) == ("1", "Active", "first"), v1
    assert v1["FunctionArn"] == ARN + "hello:1", v1
    assert client.publish_version(FunctionName="hello")["Version"] == "1", "nothing changed: the same version"
    versions = [v["Version"] for v in client.list_versions_by_function(FunctionName="hello")["Versions"]]
    assert versions == ["$LATEST", "1"], versions
    alias = client.create_alias(FunctionName="hello", Name="live", FunctionVersion="1")
    assert alias["AliasArn"] == ARN + "hello:live", alias
    assert error("ResourceConflictException", 409, client.create_alias, FunctionName="hello", Name="live", FunctionVersion="1") == "Alias already exists: " + ARN + "hello:live"
    error("ResourceNotFoundException", 404, client.create_alias, FunctionName="hello", Name="later", FunctionVersion="7")
    error("ValidationException", 400, client.create_alias, FunctionName="hello", Name="123", FunctionVersion="1")
    alias = client.update_alias(FunctionName="hello", Name="live", Description="production")
    assert client.get_alias(FunctionName="hello", Name="live")["Description"] == "production"
    assert [a["Name"] for a in client.list_aliases(FunctionName="hello")["Aliases"]] == ["live"]
    error("ResourceNotFoundException", 404, client.get_alias, FunctionName="hello", Name="gone")
    r, body = invoke("hello", b"{}", Qualifier="live")
    assert r["ExecutedVersion"] == "1" and body["version"] == "1", (r, body)
    assert body["invoked_arn"] == ARN + "hello:live", body
    r, _ = invoke("hello:1", b"{}")
    assert r["ExecutedVersion"] == "1", r
    msg = error("ResourceNotFoundException", 404, client.invoke, FunctionName="hello", Qualifier="9", Payload=b"{}")
    assert msg == "Function not found: " + ARN + "hello:9", msg
    msg = error("ResourceConflictException", 409, client.delete_function, FunctionName="hello", Qualifier="1")
    assert "[live]" in msg, msg

    # Concurrency and account settings.
    assert client.put_function_concurrency(FunctionName="hello", ReservedConcurrentExecutions=5)["ReservedConcurrentExecutions"] == 5
    assert client.get_function_concurrency(FunctionName="hello")["ReservedConcurrentExecutions"] == 5
    assert client.get_function(FunctionName="hello")["Concurrency"] == {"ReservedConcurrentExecutions": 5}
    msg = error("InvalidParameterValueException", 400, client.put_function_concurrency, FunctionName="hello", ReservedConcurrentExecutions=950)
    assert "below its minimum value of [100]" in msg, msg
    settings = client.get_account_settings()
    assert settings["AccountLimit"]["UnreservedConcurrentExecutions"] == 995, settings
    assert settings["AccountLimit"]["CodeSizeZipped"] == 52428800, settings
    assert settings["AccountUsage"]["FunctionCount"] == 1, settings
    client.put_function_concurrency(FunctionName="hello", ReservedConcurrentExecutions=0)
    try:
        client.invoke(FunctionName="hello", Payload=b"{}")
        raise AssertionError("a function with no reserved concurrency is throttled")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "TooManyRequestsException", e.response
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 429, e.response
        assert e.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded", e.response
        assert e.response["ResponseMetadata"]["HTTPHeaders"]["retry-after"], e.response
    client.delete_function_concurrency(FunctionName="hello")
    assert "ReservedConcurrentExecutions" not in client.get_function_concurrency(FunctionName="hello")
    invoke("hello", b"{}")

    # Tags.
    client.tag_resource(Resource=ARN + "hello", Tags={"env": "test"})
    assert client.list_tags(Resource=ARN + "hello")["Tags"] == {"team": "core", "env": "test"}
    client.untag_resource(Resource=ARN + "hello", TagKeys=["team"])
    assert client.list_tags(Resource=ARN + "hello")["Tags"] == {"env": "test"}
    error("ResourceNotFoundException", 404, client.list_tags, Resource=ARN + "nope")

    # Listing, one page at a time.
    create("second")
    client.get_waiter("function_active_v2").wait(FunctionName="second", WaiterConfig=FAST_WAIT)
    page = client.list_functions(MaxItems=1)
    assert len(page["Functions"]) == 1 and "NextMarker" in page, page
    names = [f["FunctionName"] for p in client.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 1}) for f in p["Functions"]]
    assert names == ["hello", "second"], names
    everything = client.list_functions(FunctionVersion="ALL")["Functions"]
    assert [f["Version"] for f in everything] == ["$LATEST", "1", "$LATEST"], everything

    # Operations hoist does not serve answer an AWS error naming them.
    msg = error("InternalFailure", 501, client.add_permission, FunctionName="hello", StatementId="s", Action="lambda:InvokeFunction", Principal="s3.amazonaws.com")
    assert "AddPermission" in msg, msg
    assert "ListLayers" in error("InternalFailure", 501, client.list_layers)
    assert "GetFunctionUrlConfig" in error("InternalFailure", 501, client.get_function_url_config, FunctionName="hello")

    # Deleting a version once no alias names it.
    client.delete_alias(FunctionName="hello", Name="live")
    client.delete_function(FunctionName="hello", Qualifier="1")
    error("ResourceNotFoundException", 404, client.get_function, FunctionName="hello", Qualifier="1")
    msg = error("InvalidParameterValueException", 400, client.delete_function, FunctionName="hello", Qualifier="$LATEST")
    assert "cannot be deleted" in msg, msg
    return {"revision": client.get_function(FunctionName="hello")["Configuration"]["RevisionId"]}


def after_restart(revision):
    names = [f["FunctionName"] for f in client.list_functions()["Functions"]]
    assert names == ["hello", "second"], names
    got = client.get_function(FunctionName="hello")
    conf = got["Configuration"]
    assert conf["State"] == "Active" and conf["CodeSha256"] == sha(CODE2), conf
    assert conf["Timeout"] == 10 and conf["Environment"]["Variables"] == {"A": "2"}, conf
    assert got["Tags"] == {"env": "test"}, got
    assert conf["RevisionId"] == revision, "deploying it again after the restart changed nothing"
    with urllib.request.urlopen(got["Code"]["Location"]) as r:
        assert r.read() == CODE2
    r, body = invoke("hello", b'{"again": true}')
    assert r["StatusCode"] == 200 and body["event"] == {"again": True}, (r, body)
    versions = [v["Version"] for v in client.list_versions_by_function(FunctionName="hello")["Versions"]]
    assert versions == ["$LATEST"], versions
    v2 = client.publish_version(FunctionName="hello")
    assert v2["Version"] == "2", "numbering continues after version 1 was deleted"
    client.delete_function(FunctionName="hello")
    error("ResourceNotFoundException", 404, client.get_function, FunctionName="hello")
    return {"remaining": [f["FunctionName"] for f in client.list_functions()["Functions"]]}


def pending():
    created = create("slow-fn")
    assert created["State"] == "Pending", created
    msg = error("ResourceConflictException", 409, client.update_function_configuration, FunctionName="slow-fn", Timeout=9)
    assert msg == "The operation cannot be performed at this time. An update is in progress for resource: " + ARN + "slow-fn", msg
    error("ResourceConflictException", 409, client.update_function_code, FunctionName="slow-fn", ZipFile=CODE2)
    error("ResourceConflictException", 409, client.publish_version, FunctionName="slow-fn")
    msg = error("ResourceConflictException", 409, client.invoke, FunctionName="slow-fn", Payload=b"{}")
    assert msg.endswith("currently in the following state: Pending"), msg
    assert client.get_function(FunctionName="slow-fn")["Configuration"]["State"] == "Pending"
    return {}


def released():
    client.get_waiter("function_active_v2").wait(FunctionName="slow-fn", WaiterConfig=FAST_WAIT)
    # Concurrent updates of one function: each is served or refused while another is in
    # progress, never interleaved.
    def update(i):
        try:
            return client.update_function_configuration(FunctionName="slow-fn", Description=f"update {i}")["Description"]
        except ClientError as e:
            assert e.response["Error"]["Code"] == "ResourceConflictException", e.response
            return None

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(update, range(8)))
    served = [r for r in results if r is not None]
    assert served, results
    client.get_waiter("function_updated_v2").wait(FunctionName="slow-fn", WaiterConfig=FAST_WAIT)
    final = client.get_function_configuration(FunctionName="slow-fn")
    assert final["LastUpdateStatus"] == "Successful" and final["Description"] in served, (final, served)
    return {"served": len(served)}


print(json.dumps(globals()[PHASE.replace("-", "_")](*sys.argv[3:])))
