//! What the `yubikey` crate's errors mean: PC/SC errors that say the card or pcscd is gone are
//! [`AgentError::Unavailable`] with a typed cause (naming the serial and what to check); the
//! rest are device errors.

use pcsc::Error as P;

use crate::error::{AgentError, Unavailable};

/// Maps an error of an operation on an open card.
pub fn classify(device: &str, operation: &str, e: yubikey::Error) -> AgentError {
    let unavailable = |cause| AgentError::Unavailable {
        device: device.to_owned(),
        cause,
    };
    match e {
        yubikey::Error::PcscError { inner: Some(p) } => match p {
            P::SharingViolation => unavailable(Unavailable::Busy),
            P::NoService | P::ServiceStopped | P::NoReadersAvailable => {
                unavailable(Unavailable::NoService {
                    operation: operation.to_owned(),
                    error: p.to_string(),
                })
            }
            P::ResetCard => unavailable(Unavailable::Reset {
                operation: operation.to_owned(),
            }),
            P::RemovedCard
            | P::NoSmartcard
            | P::ReaderUnavailable
            | P::UnknownReader
            | P::UnpoweredCard
            | P::UnresponsiveCard
            | P::CommError
            | P::InvalidHandle
            | P::NotTransacted => unavailable(Unavailable::Gone {
                operation: operation.to_owned(),
                error: p.to_string(),
            }),
            other => AgentError::Device {
                device: device.to_owned(),
                operation: operation.to_owned(),
                detail: format!("PC/SC error: {other}"),
            },
        },
        other => AgentError::Device {
            device: device.to_owned(),
            operation: operation.to_owned(),
            detail: other.to_string(),
        },
    }
}

/// Maps an error of opening the card by serial, where "not found" means it is not plugged in.
pub fn classify_open(device: &str, e: yubikey::Error) -> AgentError {
    match e {
        yubikey::Error::NotFound => AgentError::Unavailable {
            device: device.to_owned(),
            cause: Unavailable::NotConnected,
        },
        other => classify(device, "opening the card", other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_cards_are_unavailable_and_named() {
        let dev = "YubiKey serial 123";
        for p in [
            pcsc::Error::RemovedCard,
            pcsc::Error::NoSmartcard,
            pcsc::Error::ReaderUnavailable,
        ] {
            let e = classify(dev, "signing", yubikey::Error::PcscError { inner: Some(p) });
            assert_eq!(e.code(), tonic::Code::Unavailable);
            assert!(e.to_string().contains("serial 123"), "{e}");
            assert!(e.to_string().contains("reconnects"), "{e}");
        }
        let e = classify_open(
            dev,
            yubikey::Error::PcscError {
                inner: Some(pcsc::Error::SharingViolation),
            },
        );
        assert!(e.to_string().contains("exclusively"), "{e}");
        let e = classify_open(dev, yubikey::Error::NotFound);
        assert!(e.to_string().contains("not connected"), "{e}");
        // Only opening the card reads "not found" as "not plugged in".
        let e = classify(dev, "reading a slot", yubikey::Error::NotFound);
        assert_eq!(e.code(), tonic::Code::Internal);
        let e = classify(dev, "signing", yubikey::Error::GenericError);
        assert_eq!(e.code(), tonic::Code::Internal);
    }

    #[test]
    fn a_reset_card_is_told_apart_by_its_cause() {
        let e = classify(
            "YubiKey serial 1",
            "signing",
            yubikey::Error::PcscError {
                inner: Some(pcsc::Error::ResetCard),
            },
        );
        assert!(matches!(
            e,
            AgentError::Unavailable {
                cause: Unavailable::Reset { .. },
                ..
            }
        ));
        assert!(e.to_string().contains("reset by another program"), "{e}");
    }
}
