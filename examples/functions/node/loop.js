// Kubeless's timeout-nodejs verify: a loop that never yields, deployed with a short timeout.
module.exports = {
  foo: (event, context) => {
    while (true) {} // eslint-disable-line no-empty
  },
};
