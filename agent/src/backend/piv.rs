//! PIV key slots: the one YubiKey value the backend contract carries (a key's place, and where
//! a new key may go).

use std::fmt;
use std::str::FromStr;

use yubikey::piv::{RetiredSlotId, SlotId};

use crate::error::AgentError;

/// A PIV key slot tufa may use: 9a, 9c, 9d, 9e or a retired slot 82-95.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PivSlot(SlotId);

impl PivSlot {
    /// Every usable slot, in the order a new key takes them: the retired slots first, so the
    /// standard slots other tools use stay free as long as possible.
    pub fn all() -> Vec<Self> {
        let retired = (0x82u8..=0x95).filter_map(|b| RetiredSlotId::try_from(b).ok());
        retired
            .map(SlotId::Retired)
            .chain([
                SlotId::Authentication,
                SlotId::Signature,
                SlotId::KeyManagement,
                SlotId::CardAuthentication,
            ])
            .map(Self)
            .collect()
    }

    /// The slot's byte, e.g. 0x9c.
    pub fn byte(self) -> u8 {
        self.0.into()
    }

    /// The `yubikey` crate's slot.
    pub fn id(self) -> SlotId {
        self.0
    }
}

impl FromStr for PivSlot {
    type Err = AgentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            AgentError::InvalidArgument(format!(
                "'{s}' is not a PIV key slot tufa uses: give 9a, 9c, 9d, 9e or 82-95"
            ))
        };
        let b = u8::from_str_radix(s.trim_start_matches("0x"), 16).map_err(|_| bad())?;
        Self::all()
            .into_iter()
            .find(|p| p.byte() == b)
            .ok_or_else(bad)
    }
}

impl fmt::Display for PivSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}", self.byte())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_parse_and_order() {
        let all = PivSlot::all();
        assert_eq!(all.len(), 24);
        assert_eq!(all[0].to_string(), "82");
        assert_eq!(all[19].to_string(), "95");
        assert_eq!(all[20].to_string(), "9a");
        assert_eq!("9c".parse::<PivSlot>().unwrap().byte(), 0x9c);
        assert_eq!("0x85".parse::<PivSlot>().unwrap().byte(), 0x85);
        for bad in ["9b", "f9", "80", "96", "zz", ""] {
            assert!(bad.parse::<PivSlot>().is_err(), "{bad}");
        }
    }
}
