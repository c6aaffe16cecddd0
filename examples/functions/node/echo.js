// Echoes the body's bytes: `data` is a UTF-8 string for a non-JSON body (as in Kubeless), the
// raw bytes are the request's `body` Buffer.
module.exports = {
  handler: (event, context) => {
    const { request, response } = event.extensions;
    response.send(request.body);
  },
};
