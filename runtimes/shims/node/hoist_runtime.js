// Serves a Kubeless Node function by the runtime contract, behind hoist-proxy.
//
// Loads MOD_NAME from the working directory and calls its FUNC_HANDLER export (or the module
// itself when it exports a function) as `handler(event, context)`, for every method on every
// path but `GET /healthz`; it may return a value or a promise, or answer through
// `event.extensions.response` itself (streaming into it, for one). Uses only Node's standard
// library: express is not needed.
//
// What a function sees and how its answer is sent follow Kubeless's Node runtime
// (kubeless/runtimes `stable/nodejs/kubeless.js` on express 4 and body-parser); each rule below
// says where it comes from. hoist-proxy in front adds the timeout, the request log and
// `/metrics`. Where hoist differs on purpose: a call past the timeout is answered 408 by the
// proxy and its connection closed, and this process keeps serving the others (Kubeless exits
// on a synchronous timeout and never answers a promise that does not settle).
'use strict';

const http = require('http');
const path = require('path');

const moduleName = process.env.MOD_NAME || '';
const handlerName = process.env.FUNC_HANDLER || '';
if (!moduleName || !handlerName) {
  console.error('hoist_runtime: MOD_NAME and FUNC_HANDLER must name the function');
  process.exit(1);
}
const loaded = require(path.join(process.cwd(), moduleName));
const fn = typeof loaded === 'function' ? loaded : loaded && loaded[handlerName];
if (typeof fn !== 'function') {
  console.error(`hoist_runtime: ${moduleName}.${handlerName} is not a function`);
  process.exit(1);
}
function positive(name, fallback) {
  const text = process.env[name];
  if (text === undefined || text.trim() === '') return fallback;
  const value = Number(text);
  if (!(value > 0)) {
    console.error(`hoist_runtime: ${name} \`${text}\` is not a positive number`);
    process.exit(1);
  }
  return value;
}
// kubeless.js: the timeout is a number, runtime and memory limit undefined when unset.
const context = {
  'function-name': handlerName,
  timeout: positive('FUNC_TIMEOUT', 180),
  runtime: process.env.FUNC_RUNTIME,
  'memory-limit': process.env.FUNC_MEMORY_LIMIT,
};
// kubeless.js: body-parser's limit is `${REQ_MB_LIMIT}mb` (1 by default), 1 mb = 2^20 bytes.
const bodyLimit = positive('REQ_MB_LIMIT', 1) * 1024 * 1024;

// --- The request and response, with the parts of express's interface functions use ---------

function mediaType(value) {
  return String(value || '').split(';')[0].trim().toLowerCase();
}

// type-is's matching, as express's `req.is`: `json`, `application/json`, `multipart/*`,
// `+json`-style suffixes.
const SHORT_TYPES = {
  json: 'application/json',
  html: 'text/html',
  text: 'text/plain',
  urlencoded: 'application/x-www-form-urlencoded',
  multipart: 'multipart/*',
  xml: 'application/xml',
  bin: 'application/octet-stream',
};
function typeMatches(actual, expected) {
  let wanted = SHORT_TYPES[expected] || expected;
  if (wanted.startsWith('+')) wanted = `*/*${wanted}`;
  const [type, sub] = actual.split('/');
  const [wantedType, wantedSub] = wanted.toLowerCase().split('/');
  if (!type || !sub || !wantedSub) return false;
  if (wantedType !== '*' && wantedType !== type) return false;
  if (wantedSub.startsWith('*+')) return sub.endsWith(wantedSub.slice(1));
  return wantedSub === '*' || wantedSub === sub;
}

function hasBody(req) {
  // type-is's hasBody: a Transfer-Encoding, or a Content-Length (even 0).
  return req.headers['transfer-encoding'] !== undefined || !isNaN(req.headers['content-length']);
}

class Request extends http.IncomingMessage {
  get(name) {
    const key = String(name).toLowerCase();
    if (key === 'referer' || key === 'referrer') return this.headers.referer || this.headers.referrer;
    return this.headers[key];
  }

  header(name) {
    return this.get(name);
  }

  is(...types) {
    if (!hasBody(this)) return null;
    const actual = mediaType(this.headers['content-type']);
    if (!actual) return false;
    const list = Array.isArray(types[0]) ? types[0] : types;
    if (list.length === 0) return actual;
    const match = list.find((t) => typeMatches(actual, t));
    return match === undefined ? false : (match.includes('/') ? actual : match);
  }

  get originalUrl() {
    return this.url;
  }

  get baseUrl() {
    return '';
  }

  get path() {
    return this.url.split('?')[0];
  }

  get query() {
    if (this._query === undefined) {
      this._query = {};
      const search = new URLSearchParams(this.url.split('?').slice(1).join('?'));
      for (const [key, value] of search) {
        const earlier = this._query[key];
        if (earlier === undefined) this._query[key] = value;
        else if (Array.isArray(earlier)) earlier.push(value);
        else this._query[key] = [earlier, value];
      }
    }
    return this._query;
  }

  get params() {
    // express's `app.all('*')` puts the whole path in params[0].
    return { 0: this.path };
  }

  get protocol() {
    const forwarded = this.headers['x-forwarded-proto'];
    return forwarded ? forwarded.split(',')[0].trim() : 'http';
  }

  get secure() {
    return this.protocol === 'https';
  }

  get hostname() {
    const host = this.headers['x-forwarded-host'] || this.headers.host || '';
    return host.replace(/:\d+$/, '') || undefined;
  }

  get ips() {
    const forwarded = this.headers['x-forwarded-for'];
    return forwarded ? forwarded.split(',').map((ip) => ip.trim()) : [];
  }

  get ip() {
    return this.ips[0] || this.socket.remoteAddress;
  }

  get xhr() {
    return String(this.headers['x-requested-with'] || '').toLowerCase() === 'xmlhttprequest';
  }
}

const TYPES = {
  html: 'text/html',
  text: 'text/plain',
  json: 'application/json',
  js: 'application/javascript',
  css: 'text/css',
  xml: 'application/xml',
  bin: 'application/octet-stream',
};

class Response extends http.ServerResponse {
  constructor(req) {
    super(req);
    this.locals = {};
    this.req = req;
  }

  status(code) {
    this.statusCode = code;
    return this;
  }

  set(field, value) {
    if (typeof field === 'object') {
      for (const [k, v] of Object.entries(field)) this.set(k, v);
      return this;
    }
    let text = Array.isArray(value) ? value.map(String) : String(value);
    if (String(field).toLowerCase() === 'content-type' && !/;\s*charset/i.test(text) && /^text\//.test(text)) {
      text += '; charset=utf-8';
    }
    this.setHeader(field, text);
    return this;
  }

  header(field, value) {
    return this.set(field, value);
  }

  get(field) {
    return this.getHeader(field);
  }

  append(field, value) {
    const earlier = this.getHeader(field);
    const values = earlier === undefined ? [] : [].concat(earlier);
    return this.set(field, values.concat(value));
  }

  type(value) {
    const type = value.includes('/') ? value : TYPES[value.replace(/^\./, '')] || 'application/octet-stream';
    return this.set('Content-Type', type);
  }

  contentType(value) {
    return this.type(value);
  }

  location(url) {
    return this.set('Location', url);
  }

  redirect(status, url) {
    if (url === undefined) [status, url] = [302, status];
    this.status(status).location(url);
    return this.send(`${http.STATUS_CODES[status]}. Redirecting to ${url}`);
  }

  cookie(name, value, options = {}) {
    const text = typeof value === 'object' ? `j:${JSON.stringify(value)}` : String(value);
    let cookie = `${name}=${encodeURIComponent(text)}; Path=${options.path || '/'}`;
    if (options.maxAge !== undefined) {
      cookie += `; Max-Age=${Math.floor(options.maxAge / 1000)}`;
      cookie += `; Expires=${new Date(Date.now() + options.maxAge).toUTCString()}`;
    } else if (options.expires) cookie += `; Expires=${options.expires.toUTCString()}`;
    if (options.domain) cookie += `; Domain=${options.domain}`;
    if (options.httpOnly) cookie += '; HttpOnly';
    if (options.secure) cookie += '; Secure';
    if (options.sameSite) cookie += `; SameSite=${options.sameSite === true ? 'Strict' : options.sameSite}`;
    return this.append('Set-Cookie', cookie);
  }

  clearCookie(name, options = {}) {
    return this.cookie(name, '', { ...options, expires: new Date(1) });
  }

  // express's res.send: a string is text/html, a Buffer application/octet-stream, anything
  // else goes through res.json.
  send(body) {
    if (body === null || (typeof body === 'object' && !Buffer.isBuffer(body)) || typeof body === 'boolean' || typeof body === 'number') {
      return this.json(body);
    }
    let chunk = body;
    if (typeof chunk === 'string') {
      if (!this.getHeader('Content-Type')) this.type('html');
    } else if (Buffer.isBuffer(chunk)) {
      if (!this.getHeader('Content-Type')) this.type('bin');
    } else {
      chunk = '';
    }
    const buffer = Buffer.from(chunk);
    if (this.statusCode === 204 || this.statusCode === 304) {
      this.removeHeader('Content-Type');
      this.end();
      return this;
    }
    this.setHeader('Content-Length', buffer.length);
    if (this.req.method === 'HEAD') this.end();
    else this.end(buffer);
    return this;
  }

  json(value) {
    const body = JSON.stringify(value);
    if (!this.getHeader('Content-Type')) this.setHeader('Content-Type', 'application/json; charset=utf-8');
    return this.send(body === undefined ? '' : body);
  }

  sendStatus(code) {
    return this.status(code).type('text').send(http.STATUS_CODES[code] || String(code));
  }
}

// --- Calls -----------------------------------------------------------------------------------

function refuse(res, status, message) {
  res.status(status).set({ 'Content-Type': 'text/plain', 'Hoist-Outcome': 'not-called' }).send(message);
}

// kubeless.js `handleError`: the error is logged, the caller gets a generic 500.
function failed(res, error) {
  console.error(`Function failed to execute: ${error && error.stack ? error.stack : error}`);
  if (res.writableEnded || res.destroyed) return;
  if (res.headersSent) {
    res.end();
    return;
  }
  res.status(500).set('Hoist-Outcome', 'error').send('Internal Server Error');
}

// kubeless.js `modFinalize`: unless the function already answered through the response, a
// string is sent as is (no Content-Type), an object (a Buffer and null included) as JSON,
// undefined as an empty body, anything else as its JSON text.
function finalize(res, result) {
  if (res.writableEnded || res.destroyed) return;
  switch (typeof result) {
    case 'string':
      res.end(result);
      break;
    case 'object':
      res.json(result);
      break;
    case 'undefined':
      res.end();
      break;
    default:
      res.end(JSON.stringify(result));
  }
}

function run(req, res, data) {
  const event = {
    'event-type': req.get('event-type'),
    'event-id': req.get('event-id'),
    'event-time': req.get('event-time'),
    'event-namespace': req.get('event-namespace'),
    data,
    extensions: { request: req, response: res },
  };
  try {
    Promise.resolve(fn(event, context)).then(
      (result) => finalize(res, result),
      (error) => failed(res, error),
    );
  } catch (error) {
    failed(res, error);
  }
}

function serve(req, res) {
  if (req.method === 'GET' && req.path === '/healthz') {
    res.set({ 'Hoist-Conventions': `node; module=${moduleName}`, 'Hoist-Cancel': 'disconnect' });
    res.status(200).send('OK');
    return;
  }
  // kubeless.js: every answer allows any origin; OPTIONS is a CORS preflight allowing the
  // method and headers asked for, and does not call the function.
  res.setHeader('Access-Control-Allow-Origin', '*');
  if (req.method === 'OPTIONS') {
    const method = req.headers['access-control-request-method'];
    const headers = req.headers['access-control-request-headers'];
    if (method !== undefined) res.setHeader('Access-Control-Allow-Methods', method);
    if (headers !== undefined) res.setHeader('Access-Control-Allow-Headers', headers);
    res.setHeader('Hoist-Outcome', 'not-called');
    res.end();
    return;
  }
  // body-parser as kubeless.js sets it up: without a body, or for multipart (left unread for
  // the function, as multer reads it), `req.body` and `data` are `{}`.
  req.body = {};
  if (!hasBody(req) || req.is('multipart/*')) {
    run(req, res, req.body);
    return;
  }
  const declared = Number(req.headers['content-length']);
  if (declared > bodyLimit) {
    req.resume();
    refuse(res, 413, 'request entity too large');
    return;
  }
  const chunks = [];
  let size = 0;
  let refused = false;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size > bodyLimit) {
      if (!refused) refuse(res, 413, 'request entity too large');
      refused = true;
      return;
    }
    if (!refused) chunks.push(chunk);
  });
  req.on('end', () => {
    if (refused) return;
    const raw = Buffer.concat(chunks);
    req.body = raw;
    // kubeless.js: a non-empty body is parsed as JSON when it is application/json, else it is
    // a UTF-8 string; an empty one stays a Buffer.
    if (raw.length === 0) {
      run(req, res, raw);
    } else if (req.is('application/json')) {
      let data;
      try {
        data = JSON.parse(raw.toString('utf-8'));
      } catch (error) {
        // Kubeless answers 500 and counts a failure; hoist answers 400 without calling.
        refuse(res, 400, `the body is declared application/json but is not JSON: ${error.message}`);
        return;
      }
      run(req, res, data);
    } else {
      run(req, res, raw.toString('utf-8'));
    }
  });
}

function listen(...where) {
  const server = http.createServer({ IncomingMessage: Request, ServerResponse: Response }, serve);
  // hoist-proxy keeps connections to this process open and owns every deadline.
  server.keepAliveTimeout = 0;
  server.requestTimeout = 0;
  server.headersTimeout = 0;
  server.listen(...where);
}
// hoist-proxy reaches the shim through the Unix socket it names when there is one (cheaper per
// call than loopback TCP); the port serves any other client.
const socketPath = process.env.HOIST_UPSTREAM_SOCKET;
if (socketPath) {
  require('fs').rmSync(socketPath, { force: true });
  listen(socketPath);
}
listen(Number(process.env.FUNC_PORT || 8090), '127.0.0.1');
