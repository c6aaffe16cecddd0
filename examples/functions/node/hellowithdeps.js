const greeting = require('hoist-greeting');

module.exports = {
  handler: (event, context) => greeting.greet('deps'),
};
