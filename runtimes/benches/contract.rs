//! Benchmark of the contract server and hoist-proxy (filled in below).

fn main() {}
