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


# What the data-plane tests read back from inside the function.
REPORTED_ENV = [
    "AWS_EXECUTION_ENV",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "LANG",
    "LAMBDA_RUNTIME_DIR",
    "LAMBDA_TASK_ROOT",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "_X_AMZN_TRACE_ID",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
]


def inspect(event, context):
    """Reports the event, the client context and the environment; `big` asks for a result of
    that many bytes."""
    if isinstance(event, dict) and event.get("big"):
        return "x" * event["big"]
    cc = context.client_context
    return {
        "event": event,
        "pid": os.getpid(),
        "client_context": None
        if cc is None
        else {
            "custom": cc.custom,
            "env": cc.env,
            "client": {"app_title": getattr(cc.client, "app_title", None)} if cc.client else None,
        },
        "env": {name: os.environ.get(name) for name in REPORTED_ENV},
    }
