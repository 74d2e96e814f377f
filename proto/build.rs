//! Compiles the agent contract with protox, so the build needs no `protoc`.

/// Messages that carry a PIN, a passphrase or a private key: their `Debug` is written by hand
/// (in `src/secret.rs`) so that no `{:?}` can print them.
const SECRET_MESSAGES: [&str; 2] = [
    ".tufa.agent.v1.UnlockRequest",
    ".tufa.agent.v1.ImportKeyRequest",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/tufa/agent/v1/agent.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        .skip_debug(SECRET_MESSAGES)
        .compile_fds(fds)?;
    Ok(())
}
