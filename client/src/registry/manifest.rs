//! Manifests as the Distribution API serves them: media types, what a DCT target records of one
//! (its descriptor), tags and digests, and what the answer's headers tell.

use reqwest::header::{HeaderMap, CONTENT_LENGTH, CONTENT_TYPE};

use super::RegistryError;
use crate::tuf::Sha256Digest;

/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (multi-platform).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (multi-platform).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Every manifest type tufa asks for, in docker's order of preference.
pub const MANIFEST_TYPES: [&str; 4] = [
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    OCI_INDEX,
];

/// docker's cap on a manifest body (distribution `maxManifestBodySize`).
pub const MANIFEST_MAX_LEN: u64 = 4 << 20;

/// The header registries state a manifest's digest in.
pub(super) const CONTENT_DIGEST: &str = "docker-content-digest";

/// What a tag or digest points to: the values a DCT target records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// SHA-256 of the manifest bytes.
    pub digest: Sha256Digest,
    /// Length of the manifest bytes.
    pub size: u64,
    /// The manifest's media type, e.g. [`DOCKER_MANIFEST`].
    pub media_type: String,
}

/// A tag or a digest in `/v2/<repo>/manifests/<reference>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum ManifestRef {
    Tag(String),
    Digest(Sha256Digest),
}

impl Descriptor {
    /// The digest as OCI writes it: `sha256:<hex>`.
    pub fn oci_digest(&self) -> String {
        format!("sha256:{}", self.digest)
    }
}

impl ManifestRef {
    /// A tag as the reference grammar has it, or `sha256:` and 64 lowercase hex digits.
    pub(super) fn parse(reference: &str) -> Result<Self, RegistryError> {
        let bad = || RegistryError::BadReference {
            reference: reference.to_owned(),
        };
        if let Some(hex) = reference.strip_prefix("sha256:") {
            let lower = hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            return match lower.then(|| hex.parse::<Sha256Digest>()) {
                Some(Ok(d)) => Ok(Self::Digest(d)),
                _ => Err(bad()),
            };
        }
        // A tag, as the reference grammar has it: [\w][\w.-]{0,127}.
        let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let b = reference.as_bytes();
        let tag_ok = (1..=128).contains(&b.len())
            && word(b[0])
            && b[1..].iter().all(|&x| word(x) || x == b'.' || x == b'-');
        if tag_ok {
            Ok(Self::Tag(reference.to_owned()))
        } else {
            Err(bad())
        }
    }
}

/// What HEAD told, if it told all three: digest (sha256), length and media type.
pub(super) fn descriptor_from_headers(headers: &HeaderMap) -> Option<Descriptor> {
    let digest = header_str(headers, CONTENT_DIGEST)?
        .strip_prefix("sha256:")?
        .parse::<Sha256Digest>()
        .ok()?;
    let size = header_str(headers, CONTENT_LENGTH.as_str())?.parse().ok()?;
    Some(Descriptor {
        digest,
        size,
        media_type: content_type(headers)?,
    })
}

pub(super) fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)?
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The media type in `Content-Type`, without parameters.
pub(super) fn content_type(headers: &HeaderMap) -> Option<String> {
    let value = header_str(headers, CONTENT_TYPE.as_str())?;
    let media_type = value.split(';').next().unwrap_or(value).trim();
    (!media_type.is_empty()).then(|| media_type.to_owned())
}

/// The `mediaType` member of a manifest body.
pub(super) fn media_type_in_body(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Typed {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    serde_json::from_slice::<Typed>(body).ok()?.media_type
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#;

    fn sha(body: &str) -> String {
        format!("sha256:{}", Sha256Digest::of(body.as_bytes()))
    }

    #[test]
    fn headers_make_a_descriptor_only_when_complete() {
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            format!("{DOCKER_MANIFEST}; charset=utf-8").parse().unwrap(),
        );
        h.insert(CONTENT_LENGTH, "423".parse().unwrap());
        assert!(descriptor_from_headers(&h).is_none(), "no digest");
        h.insert(CONTENT_DIGEST, "sha512:abcd".parse().unwrap());
        assert!(descriptor_from_headers(&h).is_none(), "not sha256");
        h.insert(CONTENT_DIGEST, sha(MANIFEST).parse().unwrap());
        let d = descriptor_from_headers(&h).unwrap();
        assert_eq!((d.size, d.media_type.as_str()), (423, DOCKER_MANIFEST));
        h.remove(CONTENT_TYPE);
        assert!(descriptor_from_headers(&h).is_none(), "no type");
        assert_eq!(
            media_type_in_body(MANIFEST.as_bytes()).as_deref(),
            Some(OCI_MANIFEST)
        );
        assert_eq!(media_type_in_body(b"not json"), None);
    }
}
