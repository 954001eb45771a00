//! The `tocsin` command line: the daemon and the tools around it.

use clap::{Parser, Subcommand};

mod cli;

#[derive(Parser, Debug)]
#[command(
    name = "tocsin",
    version,
    about = "SIA DC-09 alarm receiver for central monitoring stations"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Decode frames offline to JSON, with the reply a receiver would send.
    Decode(cli::decode::DecodeArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Decode(args) => cli::decode::run(args),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("tocsin: {e:#}");
            std::process::exit(2);
        }
    }
}
