//! PKCS#11 PIN tries on a token that counts them and says so in its flags: the simulated
//! YubiKey through Yubico's ykcs11 (CKF_USER_PIN_COUNT_LOW at two tries left,
//! CKF_USER_PIN_FINAL_TRY at one). tpm2-pkcs11 counts (the TPM's dictionary-attack lockout) but
//! sets none of these flags, and SoftHSM does not count at all; see tpm.rs for the TPM.

use tonic::Code;
use tufa_tests::yubikey::Ykcs11Token;
use tufa_tests::{Agent, AgentOptions, Device};

fn unlock(agent: &Agent, cwd: &std::path::Path, pin: &str) -> tufa_tests::Run {
    std::fs::write(cwd.join("pin"), format!("{pin}\n")).unwrap();
    agent.tufa(cwd, &["agent", "unlock", "--pin-file", "pin"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_final_pin_try_is_never_spent_by_the_agent() {
    let token = Ykcs11Token::new();
    let agent = Agent::start_with(&token, AgentOptions::default());
    let cwd = tempfile::tempdir().unwrap();
    assert_eq!(token.card.pin_retries_left(), 3);

    let err = unlock(&agent, cwd.path(), "000000").fails_saying("wrong PIN");
    assert!(err.contains("few tries left"), "{err}");
    let err = unlock(&agent, cwd.path(), "111111").fails_saying("wrong PIN");
    assert!(err.contains("one try left"), "{err}");
    assert_eq!(token.card.pin_retries_left(), 1);

    // At the final try the agent does not log in at all, not even with the right PIN, and
    // says how to reset the counter.
    for pin in ["222222", token.pin()] {
        let err = unlock(&agent, cwd.path(), pin).fails();
        assert!(
            err.contains("has one PIN try left") && err.contains("--login --test"),
            "{err}"
        );
        assert!(err.contains(&token.name()), "{err}");
    }
    assert_eq!(token.card.pin_retries_left(), 1);
    assert!(agent.client().await.status().await.unwrap().devices[0].locked);

    // A right PIN given by hand, as the message says, resets the counter; then unlock works.
    let out = std::process::Command::new("pkcs11-tool")
        .args([
            "--module",
            tufa_tests::yubikey::YKCS11_MODULE,
            "--token-label",
        ])
        .arg(token.name())
        .args(["--login", "--pin", token.pin(), "--test"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(token.card.pin_retries_left(), 3);
    unlock(&agent, cwd.path(), token.pin()).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_file_costs_one_try_in_total_across_restarts() {
    let token = Ykcs11Token::new();
    std::fs::write(token.pin_file(), "999999\n").unwrap();
    for run in 0..3 {
        let mut agent = Agent::start(&token);
        let e = agent
            .client()
            .await
            .generate(tufa_proto::v1::GenerateKeyRequest {
                name: "never".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        if run == 0 {
            assert_eq!(e.code(), Some(Code::Unauthenticated), "{e}");
        } else {
            assert_eq!(e.code(), Some(Code::FailedPrecondition), "{e}");
            assert!(e.to_string().contains("before the agent's restart"), "{e}");
        }
        assert!(agent.stop().success());
    }
    // One try in three runs; without the record each run would have cost one, and the third
    // would have blocked the card.
    assert_eq!(token.card.pin_retries_left(), 2);
}
