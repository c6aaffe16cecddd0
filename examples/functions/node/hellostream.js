// Streams into the response, as Kubeless's `hellostream.js` example does (with Node's own
// streams instead of from2 and end-of-stream): resolves when the stream has ended.
const { Readable, finished } = require('stream');

module.exports = {
  foo: (event, context) => new Promise((resolve, reject) => {
    const { response } = event.extensions;
    const stream = Readable.from(['hello ', 'world', '!']);
    finished(stream, (err) => (err ? reject(err) : resolve(stream)));
    response.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    stream.pipe(response);
  }),
};
