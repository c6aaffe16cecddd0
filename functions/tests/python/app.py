"""Python functions run under awslambdaric inside environments."""

import os
import sys
import time


def handler(event, context):
    if event.get("log"):
        print("out:", event["log"])
        print("err:", event["log"], file=sys.stderr)
    if event.get("fail"):
        raise ValueError("asked to fail")
    if event.get("sleep"):
        time.sleep(event["sleep"])
    return {
        "echo": event,
        "request_id": context.aws_request_id,
        "function": context.function_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "pid": os.getpid(),
        "environment": os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME"),
    }
