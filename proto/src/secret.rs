//! The messages that carry secrets: a `Debug` that prints `[redacted]` for them, and a `Drop`
//! that zeroizes them, so neither side leaves a PIN, a passphrase or a key's PEM behind in
//! freed memory once a request is sent or handled.
//!
//! Moving a secret out (`std::mem::take`) still works; building one with `..Default::default()`
//! does not (the type has a `Drop`): set the fields instead.

use std::fmt;

use zeroize::Zeroize as _;

use crate::v1::{ImportKeyRequest, UnlockRequest};

const REDACTED: &str = "[redacted]";

impl fmt::Debug for UnlockRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnlockRequest")
            .field("device", &self.device)
            .field("pin", &REDACTED)
            .finish()
    }
}

impl Drop for UnlockRequest {
    fn drop(&mut self) {
        self.pin.zeroize();
    }
}

impl fmt::Debug for ImportKeyRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportKeyRequest")
            .field("name", &self.name)
            .field("backend", &self.backend)
            .field("device", &self.device)
            .field("pem", &REDACTED)
            .field("passphrase", &REDACTED)
            .field("slot", &self.slot)
            .field("pin_policy", &self.pin_policy)
            .field("touch_policy", &self.touch_policy)
            .finish()
    }
}

impl Drop for ImportKeyRequest {
    fn drop(&mut self) {
        self.pem.zeroize();
        self.passphrase.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_a_pin_passphrase_or_pem() {
        let unlock = UnlockRequest {
            device: "tok".into(),
            pin: "pin-771-secret".into(),
        };
        let shown = format!("{unlock:?} {unlock:#?}");
        assert!(!shown.contains("pin-771-secret"), "{shown}");
        assert!(
            shown.contains("[redacted]") && shown.contains("tok"),
            "{shown}"
        );

        let mut import = ImportKeyRequest::default();
        import.name = "alice".into();
        import.pem = b"-----BEGIN PRIVATE KEY-----\nMIGHAgEA\n".to_vec();
        import.passphrase = "hunter2-secret".into();
        let shown = format!("{import:?} {import:#?}");
        for secret in ["hunter2-secret", "MIGHAgEA", "PRIVATE KEY", "45, 45"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("alice"), "{shown}");
    }
}
