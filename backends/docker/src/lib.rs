//! hoist's Docker backend, on the Docker Engine API through bollard.
