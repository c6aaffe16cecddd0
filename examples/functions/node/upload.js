// A multipart form read from the request stream, which the runtime leaves unread for multipart
// bodies (Kubeless's `hello-multipart.js` hands it to multer; this one uses the Fetch API's
// form parser of Node 18 and later).
module.exports = {
  handler: async (event, context) => {
    const request = event.extensions.request;
    if (!request.is('multipart/*')) return 'The request is not multipart.';
    const chunks = [];
    for await (const chunk of request) chunks.push(chunk);
    const form = await new Response(Buffer.concat(chunks), {
      headers: { 'content-type': request.get('content-type') },
    }).formData();
    const file = form.get('file');
    if (!file) return 'You did not upload a file.';
    return `${form.get('prop')}: ${await file.text()}`;
  },
};
