//! hoist's embedded backend: tasks as local child processes.
