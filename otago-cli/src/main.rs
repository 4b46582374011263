//! The `otago` binary: parse, run, map the error to an exit code.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let args = otago_cli::Args::parse();
    ExitCode::from(otago_cli::main_with(args, &otago_cli::env_snapshot()))
}
