//! # slimbench
//!
//! The command-line front end: a thin clap layer over the library crates. One file
//! per subcommand in [`commands`]; logging and progress bars in [`ui`]. Data (tables,
//! paths) goes to stdout, logs and progress to stderr.
//!
//! Exit codes: 0 success, 1 a run failed (or `compare` found a regression), 2 invalid
//! input (a pipeline, a dataset, a device or a run directory that is not there), 130
//! interrupted.

mod cli;
mod commands;
mod ui;

use std::process::ExitCode;

use clap::Parser;

/// A command's failure, by exit code.
#[derive(Debug)]
pub enum Failure {
    /// Exit 2: the input is wrong; the message says what and where.
    Invalid(String),
    /// Exit 1: the input was fine but running it failed.
    Failed(String),
    /// Exit 130: Ctrl-C.
    Interrupted(String),
}

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let progress = ui::init(&args.global);
    ui::install_ctrlc();
    let result = match args.command {
        cli::Command::Run(a) => commands::run::run(a, &progress),
        cli::Command::Validate(a) => commands::validate::run(a),
        cli::Command::Plan(a) => commands::plan::run(a),
        cli::Command::List(a) => commands::list::run(a),
        cli::Command::Report(a) => commands::report::run(a),
        cli::Command::Compare(a) => commands::compare::run(a),
        cli::Command::History(a) => commands::history::run(a),
        cli::Command::Export(a) => commands::export::run(a),
        cli::Command::Launch(a) => commands::launch::run(a, &args.global),
        cli::Command::Memory(a) => commands::memory::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            let (code, msg) = match f {
                Failure::Invalid(m) => (2, m),
                Failure::Failed(m) => (1, m),
                Failure::Interrupted(m) => (130, m),
            };
            progress.clear();
            let msg = msg.trim_end();
            if msg.starts_with("error:") {
                eprintln!("{msg}");
            } else {
                eprintln!("error: {msg}");
            }
            ExitCode::from(code)
        }
    }
}
