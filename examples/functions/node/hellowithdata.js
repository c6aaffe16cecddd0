module.exports = {
  handler: (event, context) => {
    console.log(JSON.stringify({
      data: event.data,
      'event-id': event['event-id'],
      'event-type': event['event-type'],
      'event-time': event['event-time'],
      'event-namespace': event['event-namespace'],
    }));
    return event.data;
  },
};
