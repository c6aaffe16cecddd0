module.exports = {
  forever: (event, context) => new Promise(() => {}),
};
