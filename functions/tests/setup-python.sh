#!/usr/bin/env bash
# Creates the Python virtual environment the AWS tests use: boto3 and the AWS CLI (the client
# side) and awslambdaric (the runtime interface client that runs inside environments); the
# runtime tests use it too: prometheus_client (its text and OpenMetrics parsers) and bottle (the
# responses Kubeless functions return).
# Usage: functions/tests/setup-python.sh [venv-dir]   (default: target/lambda-venv)
# The tests find the venv through HOIST_LAMBDA_VENV, or at target/lambda-venv.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${1:-$root/target/lambda-venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet boto3 awscli awslambdaric prometheus_client bottle
"$venv/bin/python" -c 'import boto3, awscli, awslambdaric, prometheus_client, bottle; print("boto3", boto3.__version__, "awscli", awscli.__version__)'
