//! Compiles the agent contract with protox, so the build needs no `protoc`.

/// Messages that carry a PIN, a passphrase or a private key: their `Debug` is written by hand
/// (in `src/secret.rs`) so that no `{:?}` can print them.
const SECRET_MESSAGES: [&str; 2] = [
    ".tufa.agent.v1.UnlockRequest",
    ".tufa.agent.v1.ImportKeyRequest",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The agent's own contract, and notary-signer's API that tufad also serves.
    let protos = [
        "proto/tufa/agent/v1/agent.proto",
        "proto/notary/signer.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        .skip_debug(SECRET_MESSAGES)
        .compile_fds(fds)?;
    Ok(())
}
