//! Subcommands of the `tocsin` binary. Each file is one command; `anyhow` lives here and
//! nowhere below.

pub mod automation_sim;
pub mod decode;
// status, diag, report: the operator's views (start of shift, one site, a period).
pub mod diag;
pub mod fsync_probe;
pub mod history;
pub mod load;
pub mod report;
pub mod run;
pub mod send;
pub mod status;
pub mod tail;
