//! `tufa`: the client binary. All logic lives in the library.

use clap::Parser as _;
use tufa_client::cli::Cli;

#[tokio::main]
async fn main() {
    // `tufa key list | head` ends quietly, as Unix tools do, instead of panicking.
    sigpipe::reset();
    let cli = Cli::parse();
    if let Err(e) = cli.run().await {
        eprintln!("Error: {e}");
        std::process::exit(1);
    }
}
