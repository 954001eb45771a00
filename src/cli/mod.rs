//! Subcommands of the `tocsin` binary. Each file is one command; `anyhow` lives here and
//! nowhere below.

pub mod decode;
pub mod fsync_probe;
pub mod history;
pub mod load;
pub mod run;
pub mod send;
pub mod tail;
