//! RFC 7512 `pkcs11:` URIs: parsing (percent-encoding, the RFC's case rules, every attribute
//! it defines; anything else refused by name) and writing a key's URI.
//!
//! Case: the scheme is case-insensitive (RFC 3986), percent-encoded octets are read in either
//! case and written in upper case; attribute names and values are case-sensitive. A URI wrapped
//! over lines (as the RFC prints its examples) is read with the line breaks and the indentation
//! after them removed; any other space must be written `%20`.
//!
//! Which attributes make sense depends on where a URI is used: a key reference names a key
//! (token, object, id, type, module-path), the agent's config names a token (token, serial,
//! model, manufacturer, module-path, pin-source). [`Pkcs11Uri::refuse`] says no to the rest,
//! naming the attribute. `pin-value` is refused while parsing, and its value never kept.

use std::fmt;

use percent_encoding::{percent_decode, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Bytes written as they are in a value: RFC 3986 `unreserved`. Everything else is %XX.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `pk11-path-res-avail` and `pk11-query-res-avail`: the reserved characters a value may hold
/// unencoded in the path, and in the query.
const PATH_RESERVED: &[u8] = b":[]@!$'()*+,=&";
const QUERY_RESERVED: &[u8] = b":[]@!$'()*+,=/?|";

/// What a `type` attribute names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectType {
    /// `public`
    Public,
    /// `private`
    Private,
    /// `cert`
    Cert,
    /// `secret-key`
    SecretKey,
    /// `data`
    Data,
}

/// A parsed `pkcs11:` URI. Values are decoded; `id` is bytes, the rest UTF-8 text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pkcs11Uri {
    /// `token`: the token label.
    pub token: Option<String>,
    /// `manufacturer`: the token's manufacturer ID.
    pub manufacturer: Option<String>,
    /// `serial`: the token's serial number.
    pub serial: Option<String>,
    /// `model`: the token's model.
    pub model: Option<String>,
    /// `library-manufacturer`.
    pub library_manufacturer: Option<String>,
    /// `library-description`.
    pub library_description: Option<String>,
    /// `library-version`, as written (`1` or `1.23`).
    pub library_version: Option<String>,
    /// `object`: the object's label.
    pub object: Option<String>,
    /// `type`.
    pub object_type: Option<ObjectType>,
    /// `id`: the object's `CKA_ID`.
    pub id: Option<Vec<u8>>,
    /// `slot-description`.
    pub slot_description: Option<String>,
    /// `slot-manufacturer`.
    pub slot_manufacturer: Option<String>,
    /// `slot-id`.
    pub slot_id: Option<u64>,
    /// `module-name` (query).
    pub module_name: Option<String>,
    /// `module-path` (query).
    pub module_path: Option<String>,
    /// `pin-source` (query).
    pub pin_source: Option<String>,
}

/// A URI that cannot be read, or names what cannot be used where it is given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid PKCS#11 URI: {0}")]
pub struct UriError(pub String);

fn err(why: impl Into<String>) -> UriError {
    UriError(why.into())
}

impl std::str::FromStr for Pkcs11Uri {
    type Err = UriError;

    fn from_str(s: &str) -> Result<Self, UriError> {
        let unwrapped = unwrap_lines(s);
        let rest = unwrapped
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("pkcs11:"))
            .map(|_| &unwrapped[7..])
            .ok_or_else(|| err("it does not start with pkcs11:"))?;
        if let Some(c) = rest.chars().find(|c| c.is_whitespace()) {
            return Err(err(format!(
                "it holds a space ({c:?}): write spaces in values as %20"
            )));
        }
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let mut uri = Self::default();
        if !path.is_empty() {
            for attr in path.split(';') {
                uri.path_attribute(attr)?;
            }
        }
        if let Some(query) = query.filter(|q| !q.is_empty()) {
            let mut pin_value = false;
            for attr in query.split('&') {
                pin_value |= uri.query_attribute(attr)?;
            }
            if pin_value {
                return Err(err(
                    "pin-value puts a PIN in the URI, and tufa never takes one there: give the agent a pin_file (or pin-source=file:PATH in its config), or use `tufa agent unlock`",
                ));
            }
        }
        Ok(uri)
    }
}

/// Removes line breaks and the indentation after them (a URI wrapped for display).
fn unwrap_lines(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut lines = s.trim().lines();
    if let Some(first) = lines.next() {
        out.push_str(first.trim_end());
    }
    for line in lines {
        out.push_str(line.trim());
    }
    out
}

/// Decodes a value, checking each character is one the RFC allows unencoded there.
fn decode(name: &str, value: &str, reserved: &[u8]) -> Result<Vec<u8>, UriError> {
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit));
            if hex.is_none() {
                return Err(err(format!(
                    "{name}: '%' must start a percent-encoded byte such as %20"
                )));
            }
            i += 3;
            continue;
        }
        if !(b.is_ascii_alphanumeric() || b"-._~".contains(&b) || reserved.contains(&b)) {
            return Err(err(format!(
                "{name}: the character {:?} must be percent-encoded (%{b:02X})",
                b as char
            )));
        }
        i += 1;
    }
    Ok(percent_decode(bytes).collect())
}

fn text(name: &str, value: &str, reserved: &[u8]) -> Result<String, UriError> {
    String::from_utf8(decode(name, value, reserved)?)
        .map_err(|_| err(format!("{name}: the value is not UTF-8 text")))
}

fn set<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), UriError> {
    if slot.is_some() {
        return Err(err(format!("{name} is given twice")));
    }
    *slot = Some(value);
    Ok(())
}

impl Pkcs11Uri {
    fn path_attribute(&mut self, attr: &str) -> Result<(), UriError> {
        let (name, value) = attr
            .split_once('=')
            .ok_or_else(|| err(format!("'{attr}' is not NAME=VALUE")))?;
        let t = |v: &str| text(name, v, PATH_RESERVED);
        match name {
            "token" => set(&mut self.token, name, t(value)?),
            "manufacturer" => set(&mut self.manufacturer, name, t(value)?),
            "serial" => set(&mut self.serial, name, t(value)?),
            "model" => set(&mut self.model, name, t(value)?),
            "library-manufacturer" => set(&mut self.library_manufacturer, name, t(value)?),
            "library-description" => set(&mut self.library_description, name, t(value)?),
            "library-version" => {
                let ok = value
                    .split_once('.')
                    .map_or(Some(value), |(major, minor)| {
                        (!minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit()))
                            .then_some(major)
                    })
                    .is_some_and(|major| !major.is_empty() && major.bytes().all(|b| b.is_ascii_digit()));
                if !ok {
                    return Err(err("library-version: write it as MAJOR or MAJOR.MINOR"));
                }
                set(&mut self.library_version, name, value.to_owned())
            }
            "object" => set(&mut self.object, name, t(value)?),
            "type" => {
                let kind = match value {
                    "public" => ObjectType::Public,
                    "private" => ObjectType::Private,
                    "cert" => ObjectType::Cert,
                    "secret-key" => ObjectType::SecretKey,
                    "data" => ObjectType::Data,
                    other => {
                        return Err(err(format!(
                            "type '{other}': use public, private, cert, secret-key or data"
                        )))
                    }
                };
                set(&mut self.object_type, name, kind)
            }
            "id" => set(&mut self.id, name, decode(name, value, PATH_RESERVED)?),
            "slot-description" => set(&mut self.slot_description, name, t(value)?),
            "slot-manufacturer" => set(&mut self.slot_manufacturer, name, t(value)?),
            "slot-id" => {
                let id = value
                    .parse()
                    .ok()
                    .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| err("slot-id: it is a decimal number"))?;
                set(&mut self.slot_id, name, id)
            }
            other => Err(err(format!(
                "unknown path attribute '{other}' (RFC 7512 has token, manufacturer, serial, model, object, type, id, library-*, slot-*)"
            ))),
        }
    }

    /// Reads a query attribute; `true` for `pin-value`, whose value is dropped unread.
    fn query_attribute(&mut self, attr: &str) -> Result<bool, UriError> {
        let (name, value) = attr.split_once('=').ok_or_else(|| {
            err(format!(
                "'{}' is not NAME=VALUE",
                attr.split('=').next().unwrap_or("")
            ))
        })?;
        let t = |v: &str| text(name, v, QUERY_RESERVED);
        match name {
            "pin-value" => Ok(true),
            "pin-source" => set(&mut self.pin_source, name, t(value)?).map(|()| false),
            "module-name" => set(&mut self.module_name, name, t(value)?).map(|()| false),
            "module-path" => set(&mut self.module_path, name, t(value)?).map(|()| false),
            other => Err(err(format!(
                "unknown query attribute '{other}' (RFC 7512 has pin-source, pin-value, module-name, module-path)"
            ))),
        }
    }

    /// The names of the attributes given, path then query.
    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        let mut has = |given: bool, name| {
            if given {
                v.push(name);
            }
        };
        has(self.token.is_some(), "token");
        has(self.manufacturer.is_some(), "manufacturer");
        has(self.serial.is_some(), "serial");
        has(self.model.is_some(), "model");
        has(self.library_manufacturer.is_some(), "library-manufacturer");
        has(self.library_description.is_some(), "library-description");
        has(self.library_version.is_some(), "library-version");
        has(self.object.is_some(), "object");
        has(self.object_type.is_some(), "type");
        has(self.id.is_some(), "id");
        has(self.slot_description.is_some(), "slot-description");
        has(self.slot_manufacturer.is_some(), "slot-manufacturer");
        has(self.slot_id.is_some(), "slot-id");
        has(self.module_name.is_some(), "module-name");
        has(self.module_path.is_some(), "module-path");
        has(self.pin_source.is_some(), "pin-source");
        v
    }

    /// Refuses the first attribute not in `allowed`, saying where it was given (`used_as`) and
    /// what is taken there.
    pub fn refuse(&self, allowed: &[&str], used_as: &str) -> Result<(), UriError> {
        match self.names().into_iter().find(|n| !allowed.contains(n)) {
            Some(name) => Err(err(format!(
                "{name} has no use in {used_as} (there tufa takes {})",
                allowed.join(", ")
            ))),
            None => Ok(()),
        }
    }
}

/// Writes a key's URI: its token and serial, its label, `type=private` and its `CKA_ID`.
pub fn key_uri(token: &str, serial: &str, object: &str, id: &[u8]) -> String {
    let enc = |s: &str| utf8_percent_encode(s, ENCODE).to_string();
    let mut out = format!("pkcs11:token={}", enc(token));
    if !serial.is_empty() {
        out.push_str(&format!(";serial={}", enc(serial)));
    }
    if !object.is_empty() {
        out.push_str(&format!(";object={}", enc(object)));
    }
    out.push_str(";type=private");
    if !id.is_empty() {
        out.push_str(";id=");
        for &b in id {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Public => "public",
            Self::Private => "private",
            Self::Cert => "cert",
            Self::SecretKey => "secret-key",
            Self::Data => "data",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Pkcs11Uri {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn the_rfc_examples_parse() {
        // RFC 7512 section 3, each example as the RFC prints it.
        assert_eq!(parse("pkcs11:"), Pkcs11Uri::default());
        let u = parse("pkcs11:object=my-pubkey;type=public");
        assert_eq!(u.object.as_deref(), Some("my-pubkey"));
        assert_eq!(u.object_type, Some(ObjectType::Public));
        let u = parse("pkcs11:object=my-key;type=private?pin-source=file:/etc/token");
        assert_eq!(u.pin_source.as_deref(), Some("file:/etc/token"));
        let u = parse(
            "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;
                manufacturer=Snake%20Oil,%20Inc.;
                model=1.0;
                object=my-certificate;
                type=cert;
                id=%69%95%3E%5C%F4%BD%EC%91;
                serial=
                ?pin-source=file:/etc/token_pin",
        );
        assert_eq!(u.token.as_deref(), Some("The Software PKCS#11 Softtoken"));
        assert_eq!(u.manufacturer.as_deref(), Some("Snake Oil, Inc."));
        assert_eq!(u.model.as_deref(), Some("1.0"));
        assert_eq!(u.object_type, Some(ObjectType::Cert));
        assert_eq!(
            u.id.as_deref(),
            Some(&[0x69, 0x95, 0x3e, 0x5c, 0xf4, 0xbd, 0xec, 0x91][..])
        );
        assert_eq!(u.serial.as_deref(), Some(""));
        let u = parse("pkcs11:object=my-sign-key;type=private?module-name=mypkcs11");
        assert_eq!(u.module_name.as_deref(), Some("mypkcs11"));
        let u = parse("pkcs11:object=my-sign-key;type=private?module-path=/mnt/libmypkcs11.so.1");
        assert_eq!(u.module_path.as_deref(), Some("/mnt/libmypkcs11.so.1"));
        let u = parse("pkcs11:slot-description=Sun%20Metaslot");
        assert_eq!(u.slot_description.as_deref(), Some("Sun Metaslot"));
        let u = parse(
            "pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;
                library-description=Soft%20Token%20Library;
                library-version=1.23",
        );
        assert_eq!(u.library_version.as_deref(), Some("1.23"));
        let u = parse("pkcs11:token=My%20token%25%20created%20by%20Joe;library-version=3;id=%01%02%03%Ba%dd%Ef%01%02");
        assert_eq!(u.token.as_deref(), Some("My token% created by Joe"));
        assert_eq!(
            u.id.as_deref(),
            Some(&[1, 2, 3, 0xba, 0xdd, 0xef, 1, 2][..])
        );
        let u = parse(
            "pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;object=my-certificate;type=cert",
        );
        assert_eq!(u.token.as_deref(), Some("A name with a substring %;"));
        let u = parse("pkcs11:token=Name%20with%20a%20small%20A%20with%20acute:%20%C3%A1;object=my-certificate;type=cert");
        assert_eq!(
            u.token.as_deref(),
            Some("Name with a small A with acute: \u{e1}")
        );
        // The RFC's last example carries vendor attributes, which tufa refuses by name.
        assert!("pkcs11:token=my-token;object=my-certificate;type=cert;vendor-aaa=value-a?pin-source=file:/etc/token_pin&vendor-bbb=value-b"
            .parse::<Pkcs11Uri>()
            .unwrap_err()
            .to_string()
            .contains("'vendor-aaa'"));
    }

    #[test]
    fn the_rfc_pin_value_example_is_refused_without_echoing_the_pin() {
        let e = "pkcs11:token=Software%20PKCS%2311%20softtoken;manufacturer=Snake%20Oil,%20Inc.?pin-value=the-pin"
            .parse::<Pkcs11Uri>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("pin-value") && !e.contains("the-pin"), "{e}");
    }

    #[test]
    fn case_rules_and_bad_input() {
        assert!("PKCS11:token=a".parse::<Pkcs11Uri>().is_ok());
        // Names are case-sensitive: TOKEN is not token.
        let bad = |s: &str| s.parse::<Pkcs11Uri>().unwrap_err().to_string();
        assert!(bad("pkcs11:TOKEN=a").contains("unknown path attribute 'TOKEN'"));
        assert!(bad("pkcs11:token=a;x-vendor=1").contains("'x-vendor'"));
        assert!(bad("pkcs11:token=a?frobnicate=1").contains("'frobnicate'"));
        assert!(bad("pkcs11:token=a;token=b").contains("twice"));
        assert!(bad("pkcs11:token=my token").contains("%20"));
        assert!(bad("pkcs11:token=a%2").contains("percent-encoded"));
        assert!(bad("pkcs11:token=a/b").contains("%2F"));
        assert!(bad("pkcs11:type=key").contains("type 'key'"));
        assert!(bad("pkcs11:slot-id=x").contains("slot-id"));
        assert!(bad("pkcs11:library-version=1.").contains("MAJOR"));
        assert!(bad("pkcs11:token").contains("NAME=VALUE"));
        assert!(bad("yubikey:1/9c").contains("pkcs11:"));
        // Percent-encoding is read in either case; values keep their case.
        assert_eq!(parse("pkcs11:token=%4a%4B").token.as_deref(), Some("JK"));
        assert_eq!(
            parse("pkcs11:object=Alice").object.as_deref(),
            Some("Alice")
        );
    }

    #[test]
    fn attributes_are_refused_where_they_make_no_sense() {
        let u = parse("pkcs11:token=dev;object=alice?pin-source=file:/p");
        let e = u
            .refuse(
                &["token", "object", "id", "type", "module-path"],
                "a key reference",
            )
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("pin-source has no use in a key reference"),
            "{e}"
        );
        assert!(u.refuse(&["token", "object", "pin-source"], "x").is_ok());
    }

    #[test]
    fn key_uris_round_trip() {
        let id = b"8c524f91aff70d4f";
        let s = key_uri("my token", "0001", "alice", id);
        assert_eq!(
            s,
            "pkcs11:token=my%20token;serial=0001;object=alice;type=private;id=8c524f91aff70d4f"
        );
        let u = parse(&s);
        assert_eq!(u.token.as_deref(), Some("my token"));
        assert_eq!(u.id.as_deref(), Some(&id[..]));
        let s = key_uri("t", "", "", &[0xa1, 0xb2]);
        assert_eq!(s, "pkcs11:token=t;type=private;id=%A1%B2");
        assert_eq!(parse(&s).id.as_deref(), Some(&[0xa1, 0xb2][..]));
    }
}
