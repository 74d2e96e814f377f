//! Canonical JSON exactly as Notary writes and verifies it, and Go's escaping of the file bytes.
//!
//! Notary signs the output of docker/go's `MarshalCanonical`, a fork of Go 1.5 `encoding/json`:
//! object members sorted by the bytes of their names, no whitespace, strings with only `"` and
//! `\` escaped, integral numbers only. The file around the signed part is written by Go's
//! standard `encoding/json`, which HTML-escapes the embedded canonical bytes ([`escape_embedded`]).

use serde_json::Value;

use crate::tuf::error::TufError;

/// Writes `value` as docker/go canonical JSON, numbers exactly as they are held.
pub fn to_canonical(value: &Value) -> Result<Vec<u8>, TufError> {
    let mut out = Vec::with_capacity(256);
    write_value(&mut out, value, Numbers::Exact)?;
    Ok(out)
}

/// Writes `value` as canonical JSON the way Notary's verifier re-encodes a decoded `signed` body.
///
/// The verifier decodes into Go's `interface{}`, so every number goes through a float64 before
/// being printed as an integer; integers beyond 2^53 come out rounded, as they do in Go.
pub fn to_canonical_as_go_decoded(value: &Value) -> Result<Vec<u8>, TufError> {
    let mut out = Vec::with_capacity(256);
    write_value(&mut out, value, Numbers::GoFloat64)?;
    Ok(out)
}

/// Escapes canonical bytes the way Go's `json.Marshal` embeds a `json.RawMessage`.
///
/// Go compacts the raw message with HTML escaping: `<`, `>`, `&` become `\u003c`, `\u003e`,
/// `\u0026` and U+2028/U+2029 become `\u2028`/`\u2029`, wherever they are. A raw control
/// character (which canonical mode leaves unescaped) is invalid JSON to Go, so it is an error.
pub fn escape_embedded(canonical: &[u8]) -> Result<Vec<u8>, TufError> {
    let mut out = Vec::with_capacity(canonical.len() + 16);
    let mut i = 0;
    while i < canonical.len() {
        let b = canonical[i];
        match b {
            b'<' | b'>' | b'&' => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xF)]);
            }
            // U+2028 and U+2029 are E2 80 A8 and E2 80 A9 in UTF-8.
            0xE2 if canonical.get(i + 1) == Some(&0x80)
                && matches!(canonical.get(i + 2), Some(0xA8 | 0xA9)) =>
            {
                out.extend_from_slice(b"\\u202");
                out.push(HEX[usize::from(canonical[i + 2] & 0xF)]);
                i += 2;
            }
            0x00..=0x1F => {
                return Err(TufError::Canonical {
                    reason: format!(
                        "a string holds the control character U+{b:04X}, which Go's JSON decoder \
                         rejects; remove it from target names and custom data"
                    ),
                })
            }
            _ => out.push(b),
        }
        i += 1;
    }
    Ok(out)
}

/// Appends `s` as a JSON string escaped like Go's standard `encoding/json` (Go 1.19, HTML-safe).
pub fn write_go_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{0}'..='\u{1F}' | '<' | '>' | '&' => {
                let b = c as u8;
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xF)]);
            }
            '\u{2028}' => out.extend_from_slice(b"\\u2028"),
            '\u{2029}' => out.extend_from_slice(b"\\u2029"),
            _ => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// How numbers are printed: as held, or after a round trip through a Go float64.
#[derive(Clone, Copy)]
enum Numbers {
    Exact,
    GoFloat64,
}

fn write_value(out: &mut Vec<u8>, value: &Value, numbers: Numbers) -> Result<(), TufError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(out, n, numbers)?,
        Value::String(s) => write_canonical_string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item, numbers)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // Sort here rather than trust the map: serde_json keeps insertion order when its
            // `preserve_order` feature is on anywhere in the build. `str` orders by bytes, as Go does.
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (name, member)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical_string(out, name);
                out.push(b':');
                write_value(out, member, numbers)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// Canonical mode escapes only the quote and the backslash; every other byte goes out verbatim.
fn write_canonical_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for &b in s.as_bytes() {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

fn write_number(
    out: &mut Vec<u8>,
    n: &serde_json::Number,
    numbers: Numbers,
) -> Result<(), TufError> {
    if let Numbers::Exact = numbers {
        if let Some(i) = n.as_i64() {
            out.extend_from_slice(i.to_string().as_bytes());
            return Ok(());
        }
        if let Some(u) = n.as_u64() {
            out.extend_from_slice(u.to_string().as_bytes());
            return Ok(());
        }
    }
    let f = n.as_f64().ok_or_else(|| TufError::Canonical {
        reason: format!("the number {n} is not representable"),
    })?;
    out.extend_from_slice(go_float_as_int(f)?.to_string().as_bytes());
    Ok(())
}

/// Go's canonical float encoder: only integral values, printed as `int64(f)`.
fn go_float_as_int(f: f64) -> Result<i64, TufError> {
    // 2^63: Go's int64 conversion of anything at or past it is platform-dependent.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if !f.is_finite() || f.floor() != f {
        return Err(TufError::Canonical {
            reason: format!(
                "the number {f} has a fractional part; canonical JSON holds integers only"
            ),
        });
    }
    if !(-LIMIT..LIMIT).contains(&f) {
        return Err(TufError::Canonical {
            reason: format!("the number {f} does not fit in a 64-bit integer"),
        });
    }
    // In range and integral, so the conversion is exact.
    Ok(f as i64)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn canon(v: Value) -> String {
        String::from_utf8(to_canonical(&v).unwrap()).unwrap()
    }

    #[test]
    fn sorts_members_by_bytes_at_every_depth() {
        let v = json!({"b": {"z": 1, "a": [ {"y": true, "x": null} ]}, "_type": "Root", "B": 2, "a": 3});
        assert_eq!(
            canon(v),
            r#"{"B":2,"_type":"Root","a":3,"b":{"a":[{"x":null,"y":true}],"z":1}}"#
        );
    }

    #[test]
    fn byte_order_not_code_point_order() {
        // U+00E9 (C3 A9) sorts before U+FF21 (EF BC A1) and after every ASCII name.
        let v = json!({"\u{ff21}": 1, "\u{e9}": 2, "z": 3});
        assert_eq!(canon(v), "{\"z\":3,\"\u{e9}\":2,\"\u{ff21}\":1}");
    }

    #[test]
    fn empty_collections() {
        assert_eq!(
            canon(json!({"keys": {}, "roles": [], "n": null})),
            r#"{"keys":{},"n":null,"roles":[]}"#
        );
        assert_eq!(canon(json!({})), "{}");
        assert_eq!(canon(json!([])), "[]");
    }

    #[test]
    fn escapes_only_quote_and_backslash() {
        let v = json!([
            "a\"b\\c",
            "<>&",
            "\u{2028}\u{2029}",
            "é✓😀",
            "tab\there\nnl\u{7f}\u{1}"
        ]);
        assert_eq!(
            canon(v),
            "[\"a\\\"b\\\\c\",\"<>&\",\"\u{2028}\u{2029}\",\"é✓😀\",\"tab\there\nnl\u{7f}\u{1}\"]"
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(
            canon(json!([0, 1, -1, 9007199254740993u64, u64::MAX, i64::MIN])),
            "[0,1,-1,9007199254740993,18446744073709551615,-9223372036854775808]"
        );
        let floats: Value = serde_json::from_str("[1.0, 1e3, -0.0, 2.5e1]").unwrap();
        assert_eq!(canon(floats), "[1,1000,0,25]");
        assert!(to_canonical(&serde_json::from_str::<Value>("[1.5]").unwrap()).is_err());
        assert!(to_canonical(&serde_json::from_str::<Value>("[1e300]").unwrap()).is_err());
    }

    #[test]
    fn go_decoded_numbers_pass_through_float64() {
        let v: Value = serde_json::from_str("[9007199254740993, 12, -3]").unwrap();
        assert_eq!(
            to_canonical_as_go_decoded(&v).unwrap(),
            b"[9007199254740992,12,-3]"
        );
    }

    #[test]
    fn embedded_escapes_match_go_marshal() {
        let canonical = "{\"a<b>&c\":\"\u{2028}x\u{2029}é\u{2027}\"}".as_bytes();
        assert_eq!(
            String::from_utf8(escape_embedded(canonical).unwrap()).unwrap(),
            "{\"a\\u003cb\\u003e\\u0026c\":\"\\u2028x\\u2029é\u{2027}\"}"
        );
        assert!(escape_embedded(b"{\"a\":\"x\ny\"}").is_err());
        assert_eq!(
            escape_embedded(b"{\"a\":\"\x7f\"}").unwrap(),
            b"{\"a\":\"\x7f\"}"
        );
    }

    #[test]
    fn go_stdlib_strings() {
        let mut out = Vec::new();
        write_go_string(&mut out, "q\"b\\<>&\n\r\t\u{8}\u{1f}\u{2028}é");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"q\\\"b\\\\\\u003c\\u003e\\u0026\\n\\r\\t\\u0008\\u001f\\u2028é\""
        );
    }
}
