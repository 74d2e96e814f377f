//! `tufa`: the client binary. All logic lives in the library.

use clap::error::ErrorKind;
use clap::Parser as _;
use tufa_client::cli::{log, plugin, Cli, CliError};

// One thread: the client waits on the network and the agent, and a multi-thread runtime costs
// more to start and stop than its few CPU-bound steps gain.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    // `tufa key list | head` ends quietly, as Unix tools do, instead of panicking.
    sigpipe::reset();
    log::init();
    let args = match plugin::invocation(std::env::args_os().collect()) {
        plugin::Invocation::Metadata => {
            println!("{}", plugin::metadata());
            return;
        }
        plugin::Invocation::Run(args) => args,
    };
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // A bad value (GUN, role, digest) exits 1, as when tufa refused it after parsing;
            // clap's own usage errors keep its 2, help and version 0.
            let code = match e.kind() {
                ErrorKind::ValueValidation => 1,
                _ => e.exit_code(),
            };
            std::process::exit(code);
        }
    };
    match cli.run().await {
        Ok(()) => {}
        Err(CliError::AsDocker(message)) => {
            eprintln!("{message}");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("Error: {e}");
            std::process::exit(1);
        }
    }
}
