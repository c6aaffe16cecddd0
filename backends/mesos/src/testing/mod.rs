//! Test support: [`AgentSimulator`], the agent side of the executor API.

mod simulator;

pub use simulator::{AckMode, AgentSimulator, SimulatorOptions, Snapshot};
