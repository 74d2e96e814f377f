//! Reading JSON members the way Go's decoder fills Notary's structs, with errors that say where.
//!
//! Go treats a missing member and `null` alike (the zero value) and ignores unknown members;
//! these helpers do the same, and turn every shape error into [`TufError::Malformed`].

use base64::alphabet;
use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use serde_json::{Map, Value};
use tufa_proto::KeyId;

use crate::tuf::error::TufError;
use crate::tuf::expires::Expires;
use crate::tuf::role::RoleName;

/// Standard padded base64 as Go's `encoding/base64.StdEncoding` reads it (trailing bits allowed).
const GO_STD_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// Encodes bytes as Go's `[]byte` JSON encoding does (standard base64 with padding).
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    GO_STD_BASE64.encode(bytes)
}

/// One JSON object being read, with the role and path used in error messages.
pub(crate) struct Fields<'a> {
    role: &'a RoleName,
    path: String,
    map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    /// Reads `value` as an object found at `path` in `role`'s file.
    pub(crate) fn new(
        role: &'a RoleName,
        path: String,
        value: &'a Value,
    ) -> Result<Self, TufError> {
        match value {
            Value::Object(map) => Ok(Self { role, path, map }),
            other => Err(malformed(
                role,
                &path,
                format!("must be an object, found {}", kind(other)),
            )),
        }
    }

    /// The error for a problem with member `name` of this object.
    pub(crate) fn error(&self, name: &str, problem: impl Into<String>) -> TufError {
        malformed(self.role, &self.child(name), problem.into())
    }

    /// The path of member `name`, for errors and nested readers.
    pub(crate) fn child(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    /// The role whose file is being read.
    pub(crate) fn role(&self) -> &'a RoleName {
        self.role
    }

    /// Member `name`, or `None` when it is missing or `null`.
    pub(crate) fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    /// A member that must be present and not `null`.
    pub(crate) fn required(&self, name: &str) -> Result<&'a Value, TufError> {
        self.get(name).ok_or_else(|| self.error(name, "is missing"))
    }

    /// A required string member.
    pub(crate) fn str(&self, name: &str) -> Result<&'a str, TufError> {
        match self.required(name)? {
            Value::String(s) => Ok(s),
            other => Err(self.error(name, format!("must be a string, found {}", kind(other)))),
        }
    }

    /// A required non-negative integer member.
    pub(crate) fn u64(&self, name: &str) -> Result<u64, TufError> {
        let value = self.required(name)?;
        value.as_u64().ok_or_else(|| {
            self.error(
                name,
                format!("must be a non-negative integer, found {value}"),
            )
        })
    }

    /// The `version` member: an integer of at least 1.
    pub(crate) fn version(&self) -> Result<u64, TufError> {
        match self.u64("version")? {
            0 => Err(self.error("version", "must be at least 1, found 0")),
            v => Ok(v),
        }
    }

    /// A `threshold` member: an integer of at least 1.
    pub(crate) fn threshold(&self) -> Result<u32, TufError> {
        let value = self.required("threshold")?;
        match value.as_u64().map(u32::try_from) {
            Some(Ok(t)) if t >= 1 => Ok(t),
            _ => Err(self.error(
                "threshold",
                format!("must be an integer of at least 1, found {value}"),
            )),
        }
    }

    /// The `expires` member.
    pub(crate) fn expires(&self) -> Result<Expires, TufError> {
        let text = self.str("expires")?;
        Expires::parse(text).map_err(|e| {
            self.error(
                "expires",
                format!("{text:?} is not an RFC 3339 time ({})", e.problem),
            )
        })
    }

    /// An array of key IDs; `null` reads as empty (Notary writes it once a role has no keys).
    pub(crate) fn key_ids(&self, name: &str) -> Result<Vec<KeyId>, TufError> {
        self.array(name)?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let path = format!("{name}[{i}]");
                match v {
                    Value::String(s) => key_id(s).map_err(|p| self.error(&path, p)),
                    other => {
                        Err(self.error(&path, format!("must be a string, found {}", kind(other))))
                    }
                }
            })
            .collect()
    }

    /// A required boolean member.
    pub(crate) fn bool(&self, name: &str) -> Result<bool, TufError> {
        match self.required(name)? {
            Value::Bool(b) => Ok(*b),
            other => Err(self.error(
                name,
                format!("must be true or false, found {}", kind(other)),
            )),
        }
    }

    /// An object member as a nested reader; missing or `null` reads as `None` (a Go nil map).
    pub(crate) fn nested(&self, name: &str) -> Result<Option<Fields<'a>>, TufError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Fields {
                role: self.role,
                path: self.child(name),
                map,
            })),
            Some(other) => {
                Err(self.error(name, format!("must be an object, found {}", kind(other))))
            }
        }
    }

    /// The members of this object, in the map's order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&'a String, &'a Value)> {
        self.map.iter()
    }

    /// An array member; missing or `null` reads as empty, as a Go nil slice does.
    pub(crate) fn array(&self, name: &str) -> Result<&'a [Value], TufError> {
        match self.get(name) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(other) => {
                Err(self.error(name, format!("must be an array, found {}", kind(other))))
            }
        }
    }

    /// A base64 member decoded as Go decodes a `[]byte`.
    pub(crate) fn base64(&self, name: &str) -> Result<Vec<u8>, TufError> {
        let text = self.str(name)?;
        decode_base64(text).map_err(|problem| self.error(name, problem))
    }

    /// The `_type` member, which must be `expected`.
    pub(crate) fn check_type(&self, expected: &'static str) -> Result<(), TufError> {
        let found = self.str("_type")?;
        if found == expected {
            Ok(())
        } else {
            Err(TufError::WrongType {
                role: self.role.clone(),
                expected,
                found: found.to_owned(),
            })
        }
    }
}

/// The JSON text as Go's decoder reads its strings: a `\uXXXX` escape of a UTF-16 surrogate
/// that is not half of a valid pair, and each byte that is not part of valid UTF-8, become
/// U+FFFD (Go's `unquote`), where serde_json would refuse the file. Borrowed when nothing
/// needed replacing, which is every file Go itself wrote.
pub(crate) fn as_go_reads(text: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    use std::borrow::Cow;

    const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();
    const ESCAPED_REPLACEMENT: &[u8] = b"\\ufffd";
    let hex4 = |at: usize| -> Option<u16> {
        let digits = text.get(at..at + 4)?;
        if !digits.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        u16::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    };
    let mut out: Option<Vec<u8>> = None;
    let (mut i, mut in_string) = (0, false);
    while i < text.len() {
        let b = text[i];
        // What replaces text[i..i + len], if anything.
        let (len, replacement): (usize, Option<&[u8]>) = match b {
            b'"' => {
                in_string = !in_string;
                (1, None)
            }
            b'\\' if in_string => match text.get(i + 1) {
                Some(b'u') => match hex4(i + 2) {
                    Some(0xD800..=0xDBFF) => {
                        let low = (text.get(i + 6..i + 8) == Some(b"\\u"))
                            .then(|| hex4(i + 8))
                            .flatten();
                        match low {
                            // A valid pair: both escapes stay.
                            Some(0xDC00..=0xDFFF) => (12, None),
                            // Go replaces the first escape and reads the next one on its own.
                            _ => (6, Some(ESCAPED_REPLACEMENT)),
                        }
                    }
                    Some(0xDC00..=0xDFFF) => (6, Some(ESCAPED_REPLACEMENT)),
                    _ => (2, None),
                },
                // Any other escape (or a bad one, which serde refuses as Go does).
                _ => (2, None),
            },
            0x80.. if in_string => {
                let width = match b {
                    0xC2..=0xDF => 2,
                    0xE0..=0xEF => 3,
                    0xF0..=0xF4 => 4,
                    _ => 0,
                };
                let valid = width > 0
                    && text
                        .get(i..i + width)
                        .is_some_and(|c| std::str::from_utf8(c).is_ok());
                if valid {
                    (width, None)
                } else {
                    // Go's DecodeRune gives up one byte at a time.
                    (1, Some(REPLACEMENT))
                }
            }
            _ => (1, None),
        };
        let len = len.min(text.len() - i);
        match (replacement, &mut out) {
            (Some(r), Some(out)) => out.extend_from_slice(r),
            (Some(r), None) => {
                let mut copy = Vec::with_capacity(text.len() + 16);
                copy.extend_from_slice(&text[..i]);
                copy.extend_from_slice(r);
                out = Some(copy);
            }
            (None, Some(out)) => out.extend_from_slice(&text[i..i + len]),
            (None, None) => {}
        }
        i += len;
    }
    match out {
        Some(out) => Cow::Owned(out),
        None => Cow::Borrowed(text),
    }
}

/// Decodes Go-style standard base64, with a message fit for a `Malformed` error.
pub(crate) fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    GO_STD_BASE64
        .decode(text)
        .map_err(|e| format!("is not padded standard base64 ({e})"))
}

/// Parses a key ID as Notary writes it: 64 lowercase hex digits.
pub(crate) fn key_id(text: &str) -> Result<KeyId, String> {
    // Notary compares IDs as strings, so an uppercase spelling would never match a key.
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!("{text:?} is not a lowercase key ID"));
    }
    text.parse::<KeyId>().map_err(|e| e.to_string())
}

/// A [`TufError::Malformed`] for `path` in `role`'s file.
pub(crate) fn malformed(role: &RoleName, path: &str, problem: String) -> TufError {
    TufError::Malformed {
        role: role.clone(),
        field: path.to_owned(),
        problem,
    }
}

/// A short description of a JSON value's kind, for error messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn null_and_missing_read_as_empty() {
        let v = json!({"keyids": null, "n": 3});
        let f = Fields::new(&RoleName::TARGETS, "signed".into(), &v).unwrap();
        assert!(f.array("keyids").unwrap().is_empty());
        assert!(f.array("absent").unwrap().is_empty());
        assert!(f.nested("keys").unwrap().is_none());
        assert_eq!(f.u64("n").unwrap(), 3);
    }

    #[test]
    fn errors_carry_the_path() {
        let v = json!({"threshold": 0});
        let f = Fields::new(
            &RoleName::RELEASES,
            "signed.delegations.roles[0]".into(),
            &v,
        )
        .unwrap();
        let err = f.threshold().unwrap_err().to_string();
        assert!(
            err.starts_with("targets/releases.json: `signed.delegations.roles[0].threshold`"),
            "{err}"
        );
    }

    #[test]
    fn base64_like_go() {
        assert_eq!(decode_base64("QQ==").unwrap(), b"A");
        // Go ignores non-zero trailing bits; re-encoding gives the canonical form.
        assert_eq!(decode_base64("QR==").unwrap(), b"A");
        assert!(decode_base64("QQ").is_err());
        assert_eq!(base64_encode(b"A"), "QQ==");
    }

    #[test]
    fn text_reads_as_go_reads_it() {
        let go = |text: &[u8]| as_go_reads(text).into_owned();
        // Nothing to replace: borrowed, byte for byte.
        let fine = "{\"a\\\"\\ud83d\\ude00\":\"é\u{1F600}\\u0041\"}".as_bytes();
        assert!(matches!(as_go_reads(fine), std::borrow::Cow::Borrowed(_)));
        // Lone surrogates, either half; a high one before a non-surrogate escape.
        assert_eq!(go(br#"["\ud800"]"#), br#"["\ufffd"]"#);
        assert_eq!(go(br#"["x\udc00y"]"#), br#"["x\ufffdy"]"#);
        assert_eq!(go(br#"["\ud800\u0041"]"#), br#"["\ufffd\u0041"]"#);
        assert_eq!(
            go(br#"["\ud800\ud800\udc00"]"#),
            br#"["\ufffd\ud800\udc00"]"#
        );
        // An escaped backslash before `u` is not an escape.
        assert_eq!(go(br#"["\\ud800"]"#), br#"["\\ud800"]"#);
        // Bytes that are not UTF-8, one U+FFFD each; a surrogate in UTF-8 is three bytes.
        assert_eq!(go(b"[\"a\xffb\"]"), "[\"a\u{FFFD}b\"]".as_bytes());
        assert_eq!(go(b"[\"\xe2\x82\"]"), "[\"\u{FFFD}\u{FFFD}\"]".as_bytes());
        assert_eq!(
            go(b"[\"\xed\xa0\x80\"]"),
            "[\"\u{FFFD}\u{FFFD}\u{FFFD}\"]".as_bytes()
        );
        // What serde_json then reads.
        let v: Value = serde_json::from_slice(&go(br#"{"t":"v\ud800"}"#)).unwrap();
        assert_eq!(v["t"], "v\u{FFFD}");
    }

    #[test]
    fn key_ids_must_be_lowercase() {
        let id = "8c524f91aff70d4f305c6b5b2d24a269cf1c574342c737562b2c97b65d5d0b5b";
        assert!(key_id(id).is_ok());
        assert!(key_id(&id.to_uppercase()).is_err());
        assert!(key_id("8c52").is_err());
    }
}
