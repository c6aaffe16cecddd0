"""Drives `hoist serve` across restarts to see whether its environments stay warm. Usage:
warm.py ENDPOINT PHASE, PHASE `create` (create a function from a zip with boto3, wait until it
is active with the AWS CLI, invoke it) or `invoke` (invoke it once with the AWS CLI). The function
returns its process id and a module-level counter, which only a warm environment keeps. Prints
the result as one line of JSON."""

import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile

import boto3
from botocore.config import Config

endpoint, phase = sys.argv[1], sys.argv[2]
aws = os.path.join(os.path.dirname(sys.executable), "aws")
NAME = "warm"

HANDLER = '''
import os

CALLS = 0

def handler(event, context):
    global CALLS
    CALLS += 1
    return {"pid": os.getpid(), "calls": CALLS}
'''


def cli(*args):
    run = subprocess.run(
        [aws, "--endpoint-url", endpoint, "--output", "json", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )
    if run.returncode != 0:
        raise SystemExit(f"aws {args} failed: {run.stderr}")
    return json.loads(run.stdout) if run.stdout.strip() else None


def invoke():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.json")
        cli("lambda", "invoke", "--function-name", NAME, out)
        with open(out) as f:
            return json.load(f)


if phase == "create":
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("app.py", HANDLER)
    client = boto3.client(
        "lambda",
        endpoint_url=endpoint,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=120),
    )
    client.create_function(
        FunctionName=NAME,
        Runtime="python3.12",
        Role="arn:aws:iam::000000000000:role/lambda-role",
        Handler="app.handler",
        Code={"ZipFile": buffer.getvalue()},
    )
    cli("lambda", "wait", "function-active-v2", "--function-name", NAME)
    print(json.dumps(invoke()))
elif phase == "invoke":
    print(json.dumps(invoke()))
else:
    raise SystemExit(f"unknown phase {phase}")
