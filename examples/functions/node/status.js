// Status and headers set by the function through `extensions.response` (express's `res`).
module.exports = {
  handler: (event, context) => {
    const { request, response } = event.extensions;
    if (request.query.missing) {
      response.status(404).send('no such greeting');
      return undefined;
    }
    response.status(201).set('X-Greeting', 'made');
    return 'created';
  },
};
