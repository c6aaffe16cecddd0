// Serves a Node function by the runtime contract, behind hoist-proxy.
//
// Loads MOD_NAME from the working directory and calls its FUNC_HANDLER export as
// `handler(event, context)` (it may return a value or a promise) for every request except
// `GET /healthz`. Uses only Node's standard library. hoist-proxy adds the timeout, the request
// log and the metrics; this server listens on FUNC_PORT (the proxy's upstream port).
'use strict';

const http = require('http');
const path = require('path');

const moduleName = process.env.MOD_NAME || '';
const handlerName = process.env.FUNC_HANDLER || '';
if (!moduleName || !handlerName) {
  console.error('hoist_runtime: MOD_NAME and FUNC_HANDLER must name the function');
  process.exit(1);
}
const fn = require(path.join(process.cwd(), moduleName))[handlerName];
if (typeof fn !== 'function') {
  console.error(`hoist_runtime: ${moduleName}.${handlerName} is not a function`);
  process.exit(1);
}
const context = {
  'function-name': handlerName,
  timeout: process.env.FUNC_TIMEOUT || '180',
  runtime: process.env.FUNC_RUNTIME || '',
  'memory-limit': process.env.FUNC_MEMORY_LIMIT || '',
};

function encode(result) {
  if (result === undefined || result === null) return [Buffer.alloc(0), 'text/plain; charset=utf-8'];
  if (Buffer.isBuffer(result)) return [result, 'application/octet-stream'];
  if (typeof result === 'string') return [Buffer.from(result), 'text/plain; charset=utf-8'];
  return [Buffer.from(JSON.stringify(result)), 'application/json'];
}

function answer(res, status, body, type) {
  res.writeHead(status, { 'Content-Type': type || 'text/plain; charset=utf-8', 'Content-Length': body.length });
  res.end(body);
}

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/healthz') return answer(res, 200, Buffer.from('OK'));
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', async () => {
    const raw = Buffer.concat(chunks);
    const type = (req.headers['content-type'] || '').split(';')[0].trim().toLowerCase();
    let data = raw.toString('utf8');
    if (type === 'application/json' && raw.length > 0) {
      try {
        data = JSON.parse(data);
      } catch (error) {
        return answer(res, 400, Buffer.from(`the body is declared application/json but is not JSON: ${error.message}`));
      }
    }
    const event = {
      data,
      'event-id': req.headers['event-id'],
      'event-type': req.headers['event-type'],
      'event-time': req.headers['event-time'],
      'event-namespace': req.headers['event-namespace'],
      extensions: { request: { method: req.method, path: req.url, headers: req.headers } },
    };
    try {
      const [body, contentType] = encode(await fn(event, context));
      answer(res, 200, body, contentType);
    } catch (error) {
      console.error(error);
      answer(res, 500, Buffer.from(String(error && error.message ? error.message : error)));
    }
  });
});

server.listen(Number(process.env.FUNC_PORT || 8090), '127.0.0.1');
