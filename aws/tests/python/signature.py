"""Signature Version 4 as boto3 signs it: with the configured key, with a wrong secret, with
an unknown key, and unsigned. Prints what each call got as JSON."""

import json
import sys

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint = sys.argv[1]


def client(service, key, secret, unsigned=False):
    config = Config(retries={"max_attempts": 1}, signature_version=UNSIGNED) if unsigned else Config(retries={"max_attempts": 1})
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=config,
    )


CALLS = {
    "lambda": lambda c: c.list_functions(),
    "ecs": lambda c: c.list_clusters(),
    "ec2": lambda c: c.describe_instances(),
    "elbv2": lambda c: c.describe_target_groups(),
}

seen = {}
for service, call in CALLS.items():
    for case, (key, secret, unsigned) in {
        "right": ("AKIDHOIST", "the-right-secret", False),
        "wrong_secret": ("AKIDHOIST", "not-the-secret", False),
        "unknown_key": ("AKIDOTHER", "the-right-secret", False),
        "unsigned": ("AKIDHOIST", "the-right-secret", True),
    }.items():
        try:
            call(client(service, key, secret, unsigned))
            seen[f"{service}.{case}"] = {"ok": True}
        except ClientError as e:
            seen[f"{service}.{case}"] = {
                "code": e.response["Error"]["Code"],
                "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
                "message": e.response["Error"].get("Message", ""),
            }
# A signed call with a body: the payload hash is checked too.
try:
    client("lambda", "AKIDHOIST", "the-right-secret").invoke(FunctionName="nobody", Payload=b'{"a": 1}')
    seen["lambda.invoke"] = {"ok": True}
except ClientError as e:
    seen["lambda.invoke"] = {"code": e.response["Error"]["Code"]}
print(json.dumps(seen))
