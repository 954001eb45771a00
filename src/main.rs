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
    /// Run the receiver daemon.
    Run(cli::run::RunArgs),
    /// Check a configuration file and explain what is wrong, with the line.
    CheckConfig(cli::run::CheckConfigArgs),
    /// Decode frames offline to JSON, with the reply a receiver would send.
    Decode(cli::decode::DecodeArgs),
    /// Send one event frame to a receiver as a panel would, and judge the reply.
    Send(cli::send::SendArgs),
    /// Query events in the journal.
    History(cli::history::HistoryArgs),
    /// Follow events from the bus or the journal, as JSON or readable lines.
    Tail(cli::tail::TailArgs),
    /// Load generator: many simulated panels, with an ACK-latency histogram.
    Load(cli::load::LoadArgs),
    /// Measure fdatasync latency of small appends on a disk: the floor under ACK latency.
    FsyncProbe(cli::fsync_probe::FsyncProbeArgs),
    // status, diag, report: the operator's views.
    /// Summary of a running daemon for the start of a shift (exit 0 fine, 1 attention, 2 unreachable).
    Status(cli::status::StatusArgs),
    /// Why one site misbehaves: its last frames, replies, paths, clock skew, failures.
    Diag(cli::diag::DiagArgs),
    /// CSV tables and SVG charts of a period: alarms per day, top accounts, supervision failures.
    Report(cli::report::ReportArgs),
    /// A stand-in automation computer for a Sur-Gard automation output: ACKs and prints packets.
    AutomationSim(cli::automation_sim::AutomationSimArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => cli::run::run(args),
        Command::CheckConfig(args) => cli::run::check_config(args),
        Command::Decode(args) => cli::decode::run(args),
        Command::Send(args) => cli::send::run(args),
        Command::History(args) => cli::history::run(args),
        Command::Tail(args) => cli::tail::run(args),
        Command::Load(args) => cli::load::run(args),
        Command::FsyncProbe(args) => cli::fsync_probe::run(args),
        Command::Status(args) => cli::status::run(args),
        Command::Diag(args) => cli::diag::run(args),
        Command::Report(args) => cli::report::run(args),
        Command::AutomationSim(args) => cli::automation_sim::run(args),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("tocsin: {e:#}");
            std::process::exit(2);
        }
    }
}
