//! hoist's function runtimes: catalog, build plans, the runtime contract, the warm pool and invoke APIs.
