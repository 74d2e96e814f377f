//! ISO 7816-4 command and response APDUs, short and extended, as vpcd hands them over.

/// Status words the card answers with.
pub(crate) mod sw {
    pub const OK: u16 = 0x9000;
    pub const WRONG_LENGTH: u16 = 0x6700;
    pub const SECURITY_STATUS: u16 = 0x6982;
    pub const AUTH_BLOCKED: u16 = 0x6983;
    pub const CONDITIONS_NOT_SATISFIED: u16 = 0x6985;
    pub const INCORRECT_DATA: u16 = 0x6a80;
    pub const NOT_FOUND: u16 = 0x6a82;
    pub const NO_SPACE: u16 = 0x6a84;
    pub const REFERENCE_NOT_FOUND: u16 = 0x6a88;
    pub const WRONG_P1P2: u16 = 0x6b00;
    pub const INS_NOT_SUPPORTED: u16 = 0x6d00;
    pub const CLA_NOT_SUPPORTED: u16 = 0x6e00;

    /// `63 Cx`: verification failed, `x` tries left.
    pub fn tries_left(n: u8) -> u16 {
        0x63c0 | u16::from(n.min(15))
    }
}

/// A parsed command APDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Command {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    pub data: Vec<u8>,
}

impl Command {
    /// Parses the ISO cases 1-4, short and extended. The `yubikey` crate always sends Lc, even
    /// 0, and never Le, so `00 FD 00 00 00` is read as "no data" (case 2 with Le = 256).
    pub fn parse(raw: &[u8]) -> Option<Command> {
        let [cla, ins, p1, p2, body @ ..] = raw else {
            return None;
        };
        let data = match body {
            [] | [_] => Vec::new(),
            [0, hi, lo, rest @ ..] => {
                // Extended: 00 Le(2) alone, or 00 Lc(2) data [Le(2)].
                let lc = usize::from(*hi) << 8 | usize::from(*lo);
                if rest.is_empty() {
                    Vec::new()
                } else if rest.len() == lc || rest.len() == lc + 2 {
                    rest[..lc].to_vec()
                } else {
                    return None;
                }
            }
            [lc, rest @ ..] => {
                let lc = usize::from(*lc);
                if rest.len() == lc || rest.len() == lc + 1 {
                    rest[..lc].to_vec()
                } else {
                    return None;
                }
            }
        };
        Some(Command {
            cla: *cla,
            ins: *ins,
            p1: *p1,
            p2: *p2,
            data,
        })
    }

    /// Whether more chained parts follow (CLA bit 0x10).
    pub fn chained(&self) -> bool {
        self.cla & 0x10 != 0
    }
}

/// A response: data and status word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub data: Vec<u8>,
    pub sw: u16,
}

impl Response {
    /// `90 00` with data.
    pub fn ok(data: Vec<u8>) -> Response {
        Response { data, sw: sw::OK }
    }

    /// A status word alone.
    pub fn status(sw: u16) -> Response {
        Response {
            data: Vec::new(),
            sw,
        }
    }

    /// `data || SW1 SW2`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 2);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(&self.sw.to_be_bytes());
        out
    }
}

/// Short responses carry at most 256 data bytes; the rest waits for GET RESPONSE.
pub(crate) const MAX_RESPONSE_CHUNK: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_cases_the_crate_and_opensc_send() {
        let c = Command::parse(&[0, 0xfd, 0, 0, 0]).unwrap();
        assert!(c.data.is_empty());
        let c = Command::parse(&[0, 0xa4, 4, 0, 5, 0xa0, 0, 0, 3, 8]).unwrap();
        assert_eq!(c.data, [0xa0, 0, 0, 3, 8]);
        // Case 4 with Le.
        let c = Command::parse(&[0, 0xcb, 0x3f, 0xff, 2, 0x5c, 0, 0]).unwrap();
        assert_eq!(c.data, [0x5c, 0]);
        // Extended case 3.
        let mut raw = vec![0, 0xdb, 0x3f, 0xff, 0, 0x01, 0x00];
        raw.extend(std::iter::repeat_n(7, 256));
        assert_eq!(Command::parse(&raw).unwrap().data.len(), 256);
        assert!(Command::parse(&[0, 0xdb, 0x3f, 0xff, 9, 1]).is_none());
        assert!(Command::parse(&[0, 0xdb, 0x3f]).is_none());
        assert!(Command::parse(&[0x10, 0xdb, 0x3f, 0xff, 0])
            .unwrap()
            .chained());
    }
}
