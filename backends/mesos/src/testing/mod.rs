//! Test support: [`AgentSimulator`], the agent side of the executor API.

mod http;
mod simulator;

pub use simulator::{AckMode, AgentSimulator, SimulatorOptions, Snapshot};
