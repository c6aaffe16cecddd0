#!/usr/bin/env bash
# Creates the Python virtual environment the Lambda tests use: boto3 (the client side) and
# awslambdaric (the runtime interface client that runs inside environments).
# Usage: functions/tests/setup-python.sh [venv-dir]   (default: target/lambda-venv)
# The tests find the venv through HOIST_LAMBDA_VENV, or at target/lambda-venv.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${1:-$root/target/lambda-venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet boto3 awslambdaric
"$venv/bin/python" -c 'import boto3, awslambdaric; print("boto3", boto3.__version__)'
