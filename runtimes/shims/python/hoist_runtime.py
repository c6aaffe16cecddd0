"""Serves a Python function by the runtime contract, behind hoist-proxy.

Loads MOD_NAME from the working directory (or PYTHONPATH) and calls its FUNC_HANDLER as
``handler(event, context)`` for every request except ``GET /healthz``. Uses only the standard
library. hoist-proxy adds the timeout, the request log and the metrics; this server listens on
FUNC_PORT (the proxy's upstream port) and answers calls in parallel threads.
"""

import importlib
import json
import os
import sys
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def load_function():
    module_name = os.environ.get("MOD_NAME", "")
    handler_name = os.environ.get("FUNC_HANDLER", "")
    if not module_name or not handler_name:
        sys.exit("hoist_runtime: MOD_NAME and FUNC_HANDLER must name the function")
    sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    function = getattr(module, handler_name, None)
    if not callable(function):
        sys.exit(f"hoist_runtime: {module_name}.{handler_name} is not a function")
    return function


FUNCTION = load_function()
CONTEXT = {
    "function-name": FUNCTION.__name__,
    "timeout": os.environ.get("FUNC_TIMEOUT", "180"),
    "runtime": os.environ.get("FUNC_RUNTIME", ""),
    "memory-limit": os.environ.get("FUNC_MEMORY_LIMIT", ""),
}


def encode(result):
    """The body and content type for a function's return value."""
    if result is None:
        return b"", "text/plain; charset=utf-8"
    if isinstance(result, bytes):
        return result, "application/octet-stream"
    if isinstance(result, str):
        return result.encode("utf-8"), "text/plain; charset=utf-8"
    return json.dumps(result).encode("utf-8"), "application/json"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format, *args):
        pass  # hoist-proxy logs each request.

    def answer(self, status, body, content_type="text/plain; charset=utf-8"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def call(self):
        if self.command == "GET" and self.path == "/healthz":
            self.answer(200, b"OK")
            return
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type == "application/json" and raw:
            try:
                data = json.loads(raw)
            except ValueError as error:
                self.answer(400, f"the body is declared application/json but is not JSON: {error}".encode())
                return
        else:
            data = raw.decode("utf-8", errors="replace")
        event = {
            "data": data,
            "event-id": self.headers.get("event-id"),
            "event-type": self.headers.get("event-type"),
            "event-time": self.headers.get("event-time"),
            "event-namespace": self.headers.get("event-namespace"),
            "extensions": {
                "request": {"method": self.command, "path": self.path, "headers": dict(self.headers)}
            },
        }
        try:
            body, content_type = encode(FUNCTION(event, CONTEXT))
        except Exception as error:  # the server keeps serving whatever the function raises
            traceback.print_exc()
            self.answer(500, str(error).encode("utf-8"))
            return
        self.answer(200, body, content_type)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = call


def main():
    port = int(os.environ.get("FUNC_PORT", "8090"))
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
