//! The `dialer` binary: parse the command line, set up logging, run, and turn the result into an
//! exit code (0 success, 2 usage error, 1 anything else) with one `error:` line.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match dialer::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    dialer::logging::init(cli.verbose, cli.quiet, cli.log_format);
    match dialer::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
