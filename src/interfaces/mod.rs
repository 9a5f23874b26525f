//! The ways in: the command line, the HTTP API and the daemon that runs them. Each calls
//! the operations of [`crate::app`] and the tools, and owns its arguments, answers and
//! output.

pub mod cli;
pub mod daemon;
pub mod http;
pub mod logging;
