//! hoist's Kubernetes backend: one pod per container through kube-rs.
