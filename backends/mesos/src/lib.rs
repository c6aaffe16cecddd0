//! hoist's Mesos frontend: the v1 executor HTTP API driving the engine.
