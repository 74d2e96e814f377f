//! `tufa`: the client binary. All logic lives in the library.

use clap::Parser as _;
use tufa_client::cli::{plugin, Cli, CliError};

// One thread: the client waits on the network and the agent, and a multi-thread runtime costs
// more to start and stop than its few CPU-bound steps gain.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    // `tufa key list | head` ends quietly, as Unix tools do, instead of panicking.
    sigpipe::reset();
    let args = match plugin::invocation(std::env::args_os().collect()) {
        plugin::Invocation::Metadata => {
            println!("{}", plugin::metadata());
            return;
        }
        plugin::Invocation::Run(args) => args,
    };
    let cli = Cli::parse_from(args);
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
