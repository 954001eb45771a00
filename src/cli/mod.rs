//! Subcommands of the `tocsin` binary. Each file is one command; `anyhow` lives here and
//! nowhere below.

pub mod decode;
pub mod history;
pub mod run;
pub mod send;
pub mod tail;
