//! docker/distribution's error JSON, as notary-server and registries send it.

use serde::Deserialize;
use serde_json::Value;

/// The first entry of docker/distribution's `{"errors":[{"code","message","detail"}]}`.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ErrCode {
    pub code: String,
    pub message: String,
    pub detail: Value,
}

impl ErrCode {
    /// Reads an error body; anything that is not errcode JSON keeps its first line as message.
    pub(crate) fn parse(body: &[u8]) -> Self {
        #[derive(Deserialize)]
        struct Body {
            errors: Vec<Entry>,
        }
        #[derive(Deserialize)]
        struct Entry {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
            #[serde(default)]
            detail: Value,
        }
        match serde_json::from_slice::<Body>(body) {
            Ok(Body { errors }) if !errors.is_empty() => {
                let e = errors.into_iter().next().expect("not empty");
                Self {
                    code: e.code,
                    message: e.message,
                    detail: e.detail,
                }
            }
            _ => {
                let text = String::from_utf8_lossy(body);
                let line = text.lines().next().unwrap_or("").trim();
                Self {
                    code: "-".into(),
                    message: line.chars().take(200).collect(),
                    detail: Value::Null,
                }
            }
        }
    }

    /// `INVALID_UPDATE`'s detail `{"Name":…,"Error":{"Msg":…}}` as (name, msg).
    pub(crate) fn invalid_update(&self) -> (String, String) {
        let name = self.detail["Name"]
            .as_str()
            .unwrap_or("ErrValidation")
            .to_owned();
        let msg = match &self.detail["Error"] {
            Value::Object(o) => match o.get("Msg") {
                Some(Value::String(s)) => s.clone(),
                _ => Value::Object(o.clone()).to_string(),
            },
            Value::String(s) => s.clone(),
            Value::Null => self.message.clone(),
            other => other.to_string(),
        };
        (name, msg)
    }

    /// The detail as short text: a string as is, an empty object or null as "".
    pub(crate) fn detail_text(&self) -> String {
        match &self.detail {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            Value::Object(o) if o.is_empty() => String::new(),
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_update_from_the_protocol_reference() {
        let body = br#"{"errors":[{"code":"INVALID_UPDATE","message":"Update sent by the client is invalid.","detail":{"Name":"ErrBadTargets","Error":{"Msg":"valid signatures did not meet threshold for targets"}}}]}"#;
        let e = ErrCode::parse(body);
        assert_eq!(e.code, "INVALID_UPDATE");
        assert_eq!(e.message, "Update sent by the client is invalid.");
        assert_eq!(
            e.invalid_update(),
            (
                "ErrBadTargets".into(),
                "valid signatures did not meet threshold for targets".into()
            )
        );
    }

    #[test]
    fn not_found_and_version_and_detail_less_codes() {
        let e = ErrCode::parse(
            br#"{"errors":[{"code":"METADATA_NOT_FOUND","message":"You have requested metadata that does not exist.","detail":{}}]}"#,
        );
        assert_eq!(e.code, "METADATA_NOT_FOUND");
        assert_eq!(e.detail_text(), "");
        let e = ErrCode::parse(
            br#"{"errors":[{"code":"VERSION","message":"A newer version of metadata is already available.","detail":{}}]}"#,
        );
        assert_eq!(e.code, "VERSION");
        // Seen from notary-server 0.7: no `detail` at all, or a bare string.
        let e = ErrCode::parse(
            br#"{"errors":[{"code":"MALFORMED_JSON","message":"JSON sent by the client could not be parsed by the server"}]}"#,
        );
        assert_eq!(
            (e.code.as_str(), e.detail_text()),
            ("MALFORMED_JSON", String::new())
        );
        let e = ErrCode::parse(
            br#"{"errors":[{"code":"INVALID_ROLE","message":"The role you are attempting to operate on is invalid.","detail":"bogus"}]}"#,
        );
        assert_eq!(e.detail_text(), "bogus");
    }

    #[test]
    fn unauthorized_detail_is_a_list() {
        let e = ErrCode::parse(
            br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":[{"Type":"repository","Class":"","Name":"docker.io/a/b","Action":"pull"}]}]}"#,
        );
        assert_eq!(e.code, "UNAUTHORIZED");
        assert!(e.detail_text().contains("docker.io/a/b"));
    }

    #[test]
    fn non_json_bodies_keep_their_first_line() {
        let e = ErrCode::parse(b"<html>502 Bad Gateway</html>\nmore");
        assert_eq!(e.code, "-");
        assert_eq!(e.message, "<html>502 Bad Gateway</html>");
        assert_eq!(ErrCode::parse(br#"{"errors":[]}"#).code, "-");
    }

    #[test]
    fn invalid_update_with_odd_details() {
        let e = ErrCode {
            code: "INVALID_UPDATE".into(),
            message: "Update sent by the client is invalid.".into(),
            detail: Value::Null,
        };
        assert_eq!(
            e.invalid_update(),
            (
                "ErrValidation".into(),
                "Update sent by the client is invalid.".into()
            )
        );
    }
}
