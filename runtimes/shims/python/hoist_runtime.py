"""Serves a Kubeless Python function by the runtime contract, behind hoist-proxy.

Loads MOD_NAME from the working directory (or PYTHONPATH) and calls its FUNC_HANDLER as
``handler(event, context)`` for GET, POST, PATCH and DELETE on any path (HEAD as GET); other
methods are answered 405. ``GET /healthz`` answers "OK". Uses only the standard library
(Python 3.9 or later): neither bottle nor any other package is needed.

What a function sees and how its answer is sent follow Kubeless's Python runtime
(kubeless/runtimes ``stable/python/_kubeless.py``, bottle 0.12 under it); each rule below says
where it comes from. hoist-proxy in front adds the timeout, the request log and ``/metrics``.

Isolation (``HOIST_CALL_ISOLATION``):

- ``process`` (the default): like Kubeless, every call runs in a process of its own, so a call
  that times out (hoist-proxy closes its connection) is killed without touching the others.
  Instead of forking a process per call as Kubeless does, a pool of worker processes, forked
  from a process that imported the function once, serves calls one at a time each, and grows
  to as many as there are calls in flight (``CHERRYPY_NUMTHREADS`` if set, else 64). A
  worker keeps its module state between the calls it serves; one that stays idle for a minute
  ends (one is always kept).
- ``thread``: calls run in threads of the server process (faster, but a timeout can only be
  ended by restarting the whole process, which hoist-proxy then does).
"""

import importlib
import io
import json
import os
import pickle
import re
import select
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import traceback
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, unquote

# Kubeless's image sets PYTHONUNBUFFERED=1 (``stable/python/Dockerfile.*``), so a print()
# without flush reaches the log at once and is not lost when the process is killed. The
# variable is read at interpreter start, so the shim restarts itself with it.
if os.environ.get("PYTHONUNBUFFERED") != "1":
    os.environ["PYTHONUNBUFFERED"] = "1"
    argv = getattr(sys, "orig_argv", None) or [sys.executable] + sys.argv
    os.execv(sys.executable, [sys.executable] + argv[1:])

ALLOWED_METHODS = ("DELETE", "GET", "PATCH", "POST")
# bottle's default Content-Type, which every answer but a dict's gets in Kubeless.
HTML = "text/html; charset=UTF-8"


def fail(message):
    sys.stderr.write(f"hoist_runtime: {message}\n")
    sys.exit(1)


def load_function():
    module_name = os.environ.get("MOD_NAME", "")
    handler_name = os.environ.get("FUNC_HANDLER", "")
    if not module_name or not handler_name:
        fail("MOD_NAME and FUNC_HANDLER must name the function")
    if module_name == "hoist_runtime":
        fail("the function's module cannot be named hoist_runtime (the shim's own name)")
    sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    function = getattr(module, handler_name, None)
    if not callable(function):
        fail(f"{module_name}.{handler_name} is not a function")
    return function


def number(name, default, kind):
    text = os.environ.get(name, "")
    if not text.strip():
        return default
    try:
        value = kind(text)
    except ValueError:
        fail(f"{name} `{text}` is not a number")
    if value <= 0:
        fail(f"{name} `{text}` must be positive")
    return value


FUNCTION = load_function()
# _kubeless.py: the timeout is a float, runtime and memory limit None when unset.
CONTEXT = {
    "function-name": FUNCTION.__name__,
    "timeout": number("FUNC_TIMEOUT", 180.0, float),
    "runtime": os.environ.get("FUNC_RUNTIME"),
    "memory-limit": os.environ.get("FUNC_MEMORY_LIMIT"),
}
# _kubeless.py sets bottle's MEMFILE_MAX from FUNC_MEMFILE_MAX (100 MiB).
BODY_LIMIT = number("FUNC_MEMFILE_MAX", 100 * 1024 * 1024, int)
ISOLATION = os.environ.get("HOIST_CALL_ISOLATION", "process")
if ISOLATION not in ("process", "thread"):
    fail(f"HOIST_CALL_ISOLATION `{ISOLATION}` is neither `process` nor `thread`")
MAX_WORKERS = number("CHERRYPY_NUMTHREADS", 64, int)
IDLE_SECONDS = 60.0


# --- What the function sees: the request, with the interface of bottle's --------------------


class MultiDict:
    """bottle's MultiDict: several values per key; plain access gives the last one."""

    def __init__(self, pairs=()):
        self.dict = {}
        for key, value in pairs:
            self.dict.setdefault(key, []).append(value)

    def __len__(self):
        return len(self.dict)

    def __iter__(self):
        return iter(self.dict)

    def __contains__(self, key):
        return key in self.dict

    def __getitem__(self, key):
        return self.dict[key][-1]

    def __setitem__(self, key, value):
        self.dict.setdefault(key, []).append(value)

    def keys(self):
        return self.dict.keys()

    def values(self):
        return [v[-1] for v in self.dict.values()]

    def items(self):
        return [(k, v[-1]) for k, v in self.dict.items()]

    def allitems(self):
        return [(k, v) for k, vs in self.dict.items() for v in vs]

    iterallitems = allitems

    def get(self, key, default=None, index=-1, type=None):
        try:
            value = self.dict[key][index]
            return type(value) if type else value
        except (KeyError, IndexError, ValueError, TypeError):
            return default

    def getall(self, key):
        return list(self.dict.get(key, []))

    getlist = getall

    def getone(self, key, default=None):
        return self.get(key, default)

    def __repr__(self):
        return f"{type(self).__name__}({self.allitems()!r})"


class FormsDict(MultiDict):
    """bottle's FormsDict: attribute access gives a value or "" when missing. Values are
    decoded as UTF-8 (bottle's item access gives latin-1 strings on Python 3; its attribute
    access and getunicode give these)."""

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self.get(name, "")

    def getunicode(self, name, default=None, encoding=None):
        return self.get(name, default)

    def decode(self, encoding=None):
        return self


class HeaderDict(MultiDict):
    """Headers, case-insensitive."""

    def __init__(self, pairs=()):
        super().__init__((k.title(), v) for k, v in pairs)

    def __contains__(self, key):
        return key.title() in self.dict

    def __getitem__(self, key):
        return self.dict[key.title()][-1]

    def get(self, key, default=None, index=-1, type=None):
        return super().get(key.title(), default, index, type)

    def getall(self, key):
        return super().getall(key.title())


def secure_filename(raw):
    """bottle's FileUpload.filename rule: the last path part, ASCII letters, digits, `-_.`,
    spaces as `-`, no leading dots or dashes, at most 255 characters, "empty" if nothing is
    left."""
    name = raw.replace("\\", "/").split("/")[-1]
    name = "".join(c for c in name if c.isascii())
    name = re.sub(r"[^a-zA-Z0-9-_.\s]", "", name).strip()
    name = re.sub(r"[-\s]+", "-", name).strip(".-")
    return name[:255] or "empty"


class FileUpload:
    """An uploaded file, as bottle's FileUpload."""

    def __init__(self, content, name, raw_filename, headers):
        self.file = io.BytesIO(content)
        self.name = name
        self.raw_filename = raw_filename
        self.headers = HeaderDict(headers)

    @property
    def filename(self):
        return secure_filename(self.raw_filename or "")

    @property
    def content_type(self):
        return self.headers.get("Content-Type", "")

    @property
    def content_length(self):
        return len(self.file.getvalue())

    def save(self, destination, overwrite=False, chunk_size=2 ** 16):
        """Writes the file to `destination` (a directory takes the file's name, or a
        writable file object); an existing file is kept unless `overwrite`."""
        data = self.file.getvalue()
        if isinstance(destination, str):
            if os.path.isdir(destination):
                destination = os.path.join(destination, self.filename)
            if not overwrite and os.path.exists(destination):
                raise IOError("File exists.")
            with open(destination, "wb") as out:
                out.write(data)
        else:
            destination.write(data)

    def __repr__(self):
        return f"FileUpload({self.name!r}, {self.raw_filename!r})"


def header_params(value):
    """`form-data; name="a"; filename="b"` -> ("form-data", {"name": "a", "filename": "b"})."""
    parts = [p.strip() for p in value.split(";")]
    params = {}
    for part in parts[1:]:
        key, _, val = part.partition("=")
        val = val.strip()
        if len(val) >= 2 and val[0] == val[-1] == '"':
            val = val[1:-1].replace('\\"', '"')
        params[key.strip().lower()] = val
    return parts[0].lower(), params


def multipart(body, boundary):
    """The parts of a multipart body: (headers, content) each."""
    delimiter = b"--" + boundary.encode("latin-1")
    parts = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk
        head, _, content = chunk.partition(b"\r\n\r\n")
        if content.endswith(b"\r\n"):
            content = content[:-2]
        headers = []
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, sep, value = line.partition(":")
            if sep:
                headers.append((name.strip(), value.strip()))
        parts.append((headers, content))
    return parts


class Request:
    """The request as ``event['extensions']['request']``: the attributes and methods of
    bottle's BaseRequest that Kubeless functions use (``get_header``, ``query``, ``forms``,
    ``files``, ``json``, ``body``, ``headers``, ``cookies``...). It pickles, as Kubeless's
    does."""

    def __init__(self, method, target, version, headers, body, remote_addr):
        self.method = method
        path, _, self.query_string = target.partition("?")
        self.path = unquote(path) or "/"
        self.fullpath = self.path
        self.version = version
        self.headers = HeaderDict(headers)
        self._body = body
        self._remote_addr = remote_addr
        self._forms = None

    def get_header(self, name, default=None):
        return self.headers.get(name, default)

    @property
    def content_type(self):
        return self.headers.get("Content-Type", "").lower()

    @property
    def content_length(self):
        return len(self._body)

    @property
    def body(self):
        return io.BytesIO(self._body)

    @property
    def json(self):
        """The body as JSON when the Content-Type is application/json (None when empty)."""
        if self.content_type.split(";")[0].strip() == "application/json":
            return json.loads(self._body) if self._body else None
        return None

    @property
    def query(self):
        return FormsDict(parse_qsl(self.query_string, keep_blank_values=True))

    GET = query

    def _parse_forms(self):
        if self._forms is None:
            forms, files = FormsDict(), FormsDict()
            kind, params = header_params(self.headers.get("Content-Type", ""))
            if kind == "multipart/form-data" and params.get("boundary"):
                for headers, content in multipart(self._body, params["boundary"]):
                    disposition = HeaderDict(headers).get("Content-Disposition", "")
                    _, dparams = header_params(disposition)
                    name = dparams.get("name")
                    if name is None:
                        continue
                    if "filename" in dparams:
                        files[name] = FileUpload(content, name, dparams["filename"], headers)
                    else:
                        forms[name] = content.decode("utf-8", "replace")
            elif kind in ("application/x-www-form-urlencoded", ""):
                if self._body and kind:
                    text = self._body.decode("utf-8", "replace")
                    for key, value in parse_qsl(text, keep_blank_values=True):
                        forms[key] = value
            self._forms = (forms, files)
        return self._forms

    @property
    def forms(self):
        return self._parse_forms()[0]

    @property
    def files(self):
        return self._parse_forms()[1]

    @property
    def POST(self):
        forms, files = self._parse_forms()
        return FormsDict(forms.allitems() + files.allitems())

    @property
    def params(self):
        return FormsDict(self.query.allitems() + self.forms.allitems())

    @property
    def cookies(self):
        pairs = []
        for part in self.headers.get("Cookie", "").split(";"):
            key, sep, value = part.strip().partition("=")
            if sep:
                pairs.append((key, value))
        return FormsDict(pairs)

    def get_cookie(self, key, default=None):
        return self.cookies.get(key, default)

    @property
    def remote_route(self):
        forwarded = self.headers.get("X-Forwarded-For")
        if forwarded:
            return [ip.strip() for ip in forwarded.split(",")]
        return [self._remote_addr] if self._remote_addr else []

    @property
    def remote_addr(self):
        route = self.remote_route
        return route[0] if route else None

    @property
    def urlparts(self):
        scheme = self.headers.get("X-Forwarded-Proto", "http")
        host = self.headers.get("X-Forwarded-Host") or self.headers.get("Host", "127.0.0.1")
        return (scheme, host, self.path, self.query_string, "")

    @property
    def url(self):
        scheme, host, path, query, _ = self.urlparts
        return f"{scheme}://{host}{path}" + (f"?{query}" if query else "")

    @property
    def is_xhr(self):
        return self.headers.get("X-Requested-With", "").lower() == "xmlhttprequest"

    is_ajax = is_xhr

    @property
    def auth(self):
        kind, _, data = self.headers.get("Authorization", "").partition(" ")
        if kind.lower() == "basic" and data:
            import base64

            try:
                user, _, password = base64.b64decode(data).decode("utf-8").partition(":")
                return user, password
            except ValueError:
                return None
        return None

    @property
    def environ(self):
        """A WSGI-style environ of the request (read-only copy)."""
        environ = {
            "REQUEST_METHOD": self.method,
            "PATH_INFO": self.path,
            "QUERY_STRING": self.query_string,
            "SERVER_PROTOCOL": self.version,
            "REMOTE_ADDR": self._remote_addr or "",
            "CONTENT_LENGTH": str(len(self._body)),
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
        }
        for key, value in self.headers.items():
            environ["HTTP_" + key.upper().replace("-", "_")] = value
        return environ

    def __getitem__(self, key):
        return self.environ[key]

    def get(self, key, default=None):
        return self.environ.get(key, default)

    def __repr__(self):
        return f"<Request: {self.method} {self.path}>"


def event_of(request):
    """The event, as _kubeless.py builds it: ``data`` is the body as bytes, parsed as JSON only
    when the Content-Type header is exactly ``application/json`` (empty: None)."""
    data = request._body
    if request.headers.get("Content-Type") == "application/json":
        data = json.loads(data) if data else None
    return {
        "data": data,
        "event-id": request.get_header("event-id"),
        "event-type": request.get_header("event-type"),
        "event-time": request.get_header("event-time"),
        "event-namespace": request.get_header("event-namespace"),
        "extensions": {"request": request},
    }


# --- What the caller gets: the function's value, cast as bottle casts it ---------------------


def is_response(value):
    """A bottle HTTPResponse or HTTPError (returned or raised), or anything shaped like one."""
    return isinstance(getattr(value, "status_code", None), int) and hasattr(value, "body")


def response_headers(value):
    headers = getattr(value, "headerlist", None)
    if headers is None:
        raw = getattr(value, "headers", None) or {}
        headers = list(raw.items()) if hasattr(raw, "items") else list(raw)
    return [(str(k), str(v)) for k, v in headers]


def error_page(status, message):
    """An HTML page for an HTTPError, as bottle renders one (its own words, not its template)."""
    import html

    text = html.escape(str(message))
    return (
        f"<!DOCTYPE html>\n<html><head><title>Error: {status}</title></head>\n"
        f"<body><h1>Error: {status}</h1><p>{text}</p></body></html>\n"
    ).encode("utf-8")


def cast(value):
    """(status, headers, body) for a function's value:

    - a dict: JSON (bottle's JSON plugin), ``application/json``;
    - str, bytes, None, a list of str or bytes (joined), a file, a generator: the body, with
      bottle's default ``text/html; charset=UTF-8``;
    - an HTTPResponse: its status, headers and body; an HTTPError: its status and headers
      with an HTML page holding its message;
    - anything else JSON can encode (numbers, other lists): JSON, ``application/json``
      (Kubeless answers those with a 500 "Unsupported response type").
    """
    status, headers = 200, []
    if is_response(value):
        status, headers = value.status_code, response_headers(value)
        body = value.body
        if type(value).__name__ == "HTTPError":
            message = body or getattr(value, "status_line", str(status))
            headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
            headers.append(("Content-Type", HTML))
            return status, headers, error_page(status, message)
        value = body
    names = {k.lower() for k, _ in headers}

    def typed(body, content_type=HTML):
        if "content-type" not in names:
            headers.append(("Content-Type", content_type))
        return status, headers, body

    if value is None:
        return typed(b"")
    if isinstance(value, dict):
        return typed(json.dumps(value).encode("utf-8"), "application/json")
    if isinstance(value, str):
        return typed(value.encode("utf-8"))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return typed(bytes(value))
    if hasattr(value, "read"):
        data = value.read()
        return typed(data.encode("utf-8") if isinstance(data, str) else bytes(data))
    if isinstance(value, (list, tuple)) and value and all(
        isinstance(v, (str, bytes)) for v in value
    ):
        return typed(b"".join(v.encode("utf-8") if isinstance(v, str) else v for v in value))
    if isinstance(value, (list, tuple, int, float, bool)):
        return typed(json.dumps(value).encode("utf-8"), "application/json")
    if hasattr(value, "__iter__"):
        chunks = [c.encode("utf-8") if isinstance(c, str) else bytes(c) for c in value]
        return typed(b"".join(chunks))
    raise TypeError(f"the function returned a {type(value).__name__}, which cannot be sent")


def internal_error():
    """A generic 500: what failed goes to the log, never to the caller."""
    return 500, [("Content-Type", HTML), ("Hoist-Outcome", "error")], b"Internal Server Error"


def parse_head(block):
    """Header lines as read from the connection (bytes) -> [(name, value)]."""
    headers = []
    for line in block.decode("latin-1").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.strip(), value.strip()))
    return headers


def call(raw):
    """Runs one call: ``raw`` is (method, target, version, headers, body, remote address),
    the headers a list of pairs or the raw header block; the answer is (status, headers,
    body)."""
    method, target, version, headers, body, remote = raw
    if isinstance(headers, bytes):
        headers = parse_head(headers)
    request = Request(method, target, version, headers, body, remote)
    try:
        event = event_of(request)
    except ValueError as error:
        # Kubeless answers bottle's 500 here; hoist answers 400 without calling the function.
        message = f"the body is declared application/json but is not JSON: {error}"
        return 400, [("Content-Type", "text/plain; charset=utf-8"),
                     ("Hoist-Outcome", "not-called")], message.encode("utf-8")
    try:
        return cast(FUNCTION(event, CONTEXT))
    except BaseException as error:  # the runtime keeps serving whatever the function raises
        if is_response(error):
            return cast(error)
        sys.stderr.write(f"Function returned an exception: {error!r}\n{traceback.format_exc()}")
        return internal_error()


# --- Worker processes ------------------------------------------------------------------------

FRAME = struct.Struct("!Q")


def http_response(answer, head_only):
    """The bytes of an HTTP/1.1 response for (status, headers, body)."""
    status, headers, body = answer
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}", f"Date: {formatdate(usegmt=True)}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    lines.append(f"Content-Length: {len(body)}\r\n\r\n")
    head = "\r\n".join(lines).encode("latin-1", "replace")
    return head if head_only else head + body


def send_frame(sock, payload):
    sock.sendall(FRAME.pack(len(payload)) + payload)


def recv_exactly(sock, size):
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def recv_frame(sock):
    head = recv_exactly(sock, FRAME.size)
    if head is None:
        return None
    return recv_exactly(sock, FRAME.unpack(head)[0])


def worker(sock):
    """A worker process: runs the calls it is sent, one at a time, until its socket closes."""
    while True:
        frame = recv_frame(sock)
        if frame is None:
            os._exit(0)
        raw = pickle.loads(frame)
        try:
            answer = call(raw)
        except BaseException:
            sys.stderr.write(traceback.format_exc())
            answer = internal_error()
        send_frame(sock, http_response(answer, raw[0] == "HEAD"))


def zygote(control):
    """Forks workers on request; runs single-threaded, forked before the server starts any
    thread, with the function already imported (as Kubeless's forkserver preloads it)."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped by the kernel
    while True:
        if not control.recv(1):
            os._exit(0)
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            control.close()
            ours.close()
            try:
                worker(theirs)
            finally:
                os._exit(1)
        theirs.close()
        socket.send_fds(control, [struct.pack("!i", pid)], [ours.fileno()])
        ours.close()


class Worker:
    def __init__(self, pid, sock):
        self.pid, self.sock, self.idle_since = pid, sock, time.monotonic()

    def kill(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.sock.close()


class Pool:
    """Worker processes: as many as calls in flight, up to MAX_WORKERS."""

    def __init__(self, control):
        self.control = control
        self.forking = threading.Lock()
        self.lock = threading.Lock()
        self.idle = []
        self.slots = threading.BoundedSemaphore(MAX_WORKERS)
        threading.Thread(target=self.retire, daemon=True).start()

    def fork(self):
        with self.forking:
            self.control.sendall(b"F")
            message, fds, _, _ = socket.recv_fds(self.control, 4, 1)
            if not fds:
                raise RuntimeError("the process that forks workers is gone")
        return Worker(struct.unpack("!i", message)[0], socket.socket(fileno=fds[0]))

    def take(self):
        self.slots.acquire()
        with self.lock:
            if self.idle:
                return self.idle.pop()
        try:
            return self.fork()
        except BaseException:
            self.slots.release()
            raise

    def give_back(self, worker):
        worker.idle_since = time.monotonic()
        with self.lock:
            self.idle.append(worker)
        self.slots.release()

    def discard(self, worker):
        worker.kill()
        self.slots.release()

    def retire(self):
        while True:
            time.sleep(IDLE_SECONDS / 4)
            now = time.monotonic()
            with self.lock:
                keep = self.idle[:1] + [
                    w for w in self.idle[1:] if now - w.idle_since < IDLE_SECONDS
                ]
                old = [w for w in self.idle if w not in keep]
                self.idle = keep
            for w in old:
                w.sock.close()  # it exits on the closed socket

    def run(self, raw, client):
        """Runs a call in a worker and returns the HTTP response's bytes; None if the client
        went away first (the worker is then killed: this is how a timeout in hoist-proxy ends
        the call)."""
        worker = self.take()
        try:
            send_frame(worker.sock, pickle.dumps(raw, protocol=pickle.HIGHEST_PROTOCOL))
            poller = select.poll()
            poller.register(worker.sock, select.POLLIN)
            poller.register(client, select.POLLIN)
            while True:
                ready = dict(poller.poll())
                if worker.sock.fileno() in ready:
                    break
                try:
                    peeked = client.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                except BlockingIOError:
                    continue
                except OSError:
                    peeked = b""
                if not peeked:
                    self.discard(worker)
                    return None
                poller.unregister(client)  # a pipelined request: this answer comes first
            frame = recv_frame(worker.sock)
        except BaseException:
            self.discard(worker)
            raise
        if frame is None:
            self.discard(worker)
            sys.stderr.write("hoist_runtime: the worker process running the call exited\n")
            return http_response(internal_error(), raw[0] == "HEAD")
        self.give_back(worker)
        return frame


POOL = None


# --- The HTTP front ends ---------------------------------------------------------------------

TEXT = "text/plain; charset=utf-8"
TOO_LARGE = (413, [("Content-Type", TEXT), ("Hoist-Outcome", "not-called")],
             b"Request entity too large")


def routed(method, target):
    """The answer to a request the function does not get, or None: ``GET /healthz``, and
    methods bottle's router does not give the function's route (GET, POST, PATCH, DELETE;
    HEAD falls back to GET), which it answers 405 naming them."""
    if method == "GET" and target.split("?")[0] == "/healthz":
        headers = [("Content-Type", HTML), ("Hoist-Conventions", "python")]
        if POOL is not None:
            headers.append(("Hoist-Cancel", "disconnect"))
        return 200, headers, b"OK"
    if method not in ALLOWED_METHODS + ("HEAD",):
        return 405, [("Allow", ",".join(ALLOWED_METHODS)), ("Content-Type", TEXT),
                     ("Hoist-Outcome", "not-called")], b"Method not allowed."
    return None


def read_body(rfile, length, chunked):
    """The request body, or None past BODY_LIMIT (bottle's 413 for MEMFILE_MAX)."""
    if chunked:
        chunks, size = [], 0
        while True:
            line = rfile.readline(65537)
            length = int(line.split(b";")[0].strip() or b"0", 16)
            if length == 0:
                while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            size += length
            if size > BODY_LIMIT:
                return None
            chunks.append(rfile.read(length))
            rfile.readline(3)
    if length > BODY_LIMIT:
        return None
    return rfile.read(length) if length else b""


class Connection(socketserver.BaseRequestHandler):
    """Process isolation's front end: a lean HTTP/1.1 loop that reads only the headers it
    needs and leaves parsing the rest, and writing the answer, to the worker, so the server
    process (one interpreter lock for every connection) does little per call."""

    def handle(self):
        sock = self.request
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rfile = sock.makefile("rb")
        remote = self.client_address[0] if self.client_address else None
        while True:
            line = rfile.readline(65537)
            if not line:
                return
            if line in (b"\r\n", b"\n"):
                continue
            parts = line.split()
            if len(parts) != 3:
                sock.sendall(http_response((400, [("Connection", "close")], b""), False))
                return
            method, target, version = (p.decode("latin-1") for p in parts)
            length, chunked, expect = 0, False, False
            close = version == "HTTP/1.0"
            block = []
            while True:
                header = rfile.readline(65537)
                if header in (b"\r\n", b"\n", b""):
                    break
                block.append(header)
                name, _, value = header.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    if not value.strip().isdigit():
                        sock.sendall(http_response((400, [("Connection", "close")], b""), False))
                        return
                    length = int(value)
                elif name == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
                elif name == b"connection":
                    token = value.strip().lower()
                    close = token == b"close" or (close and token != b"keep-alive")
                elif name == b"expect":
                    expect = value.strip().lower() == b"100-continue"
            head_only = method == "HEAD"
            answer = routed(method, target)
            if answer is None:
                if expect:
                    sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                body = read_body(rfile, length, chunked)
                if body is None:
                    sock.sendall(http_response(TOO_LARGE, head_only))
                    return
                raw = (method, target, version, b"".join(block), body, remote)
                response = POOL.run(raw, sock)
                if response is None:
                    return  # the caller went away (a timeout): the call was ended
                sock.sendall(response)
            else:
                read_body(rfile, length, chunked)
                sock.sendall(http_response(answer, head_only))
            if close:
                return


class Handler(BaseHTTPRequestHandler):
    """Thread isolation's front end (the shim's earlier server): the function runs in the
    connection's thread."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format, *args):
        pass  # hoist-proxy logs each request.

    def answer(self, status, headers, body):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_one(self):
        answer = routed(self.command, self.path)
        body = read_body(self.rfile, int(self.headers.get("Content-Length") or 0),
                         "chunked" in self.headers.get("Transfer-Encoding", "").lower())
        if body is None:
            self.close_connection = True
            return self.answer(*TOO_LARGE)
        if answer is None:
            remote = self.client_address[0] if self.client_address else None
            answer = call((self.command, self.path, self.request_version,
                           list(self.headers.items()), body, remote))
        self.answer(*answer)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_one


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 128


def main():
    global POOL
    if ISOLATION == "process":
        ours, theirs = socket.socketpair()
        if os.fork() == 0:
            ours.close()
            zygote(theirs)
        theirs.close()
        POOL = Pool(ours)
        POOL.give_back(POOL.take())  # one worker ready before the first call
    port = int(os.environ.get("FUNC_PORT", "8090"))
    if POOL is None:
        Server(("127.0.0.1", port), Handler).serve_forever()
    # hoist-proxy reaches the shim through the Unix socket it names when there is one (cheaper
    # per call than loopback TCP); the port serves any other client.
    path = os.environ.get("HOIST_UPSTREAM_SOCKET")
    if path:
        if os.path.exists(path):
            os.unlink(path)
        unix = UnixServer(path, Connection)
        threading.Thread(target=unix.serve_forever, daemon=True).start()
    Server(("127.0.0.1", port), Connection).serve_forever()


if __name__ == "__main__":
    main()
