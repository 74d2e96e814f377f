//! The publish body: `multipart/form-data`, one part per role, laid out as Go's `mime/multipart`
//! writes it (notary and docker send exactly this).

use sha2::{Digest, Sha256};

use crate::tuf::RoleName;

/// An encoded form and the boundary its `Content-Type` must name.
pub(crate) struct Multipart {
    pub boundary: String,
    pub body: Vec<u8>,
}

impl Multipart {
    /// Each file becomes a part with field name `files` and `filename="<role>"` (no `.json`).
    pub(crate) fn encode(files: &[(RoleName, Vec<u8>)]) -> Self {
        let boundary = boundary_for(files);
        let mut body = Vec::with_capacity(files.iter().map(|(_, b)| b.len() + 160).sum());
        for (i, (role, bytes)) in files.iter().enumerate() {
            if i > 0 {
                body.extend_from_slice(b"\r\n");
            }
            // Role names are [a-z0-9_/-]+, so the filename needs no quoting.
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; \
                     filename=\"{role}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(bytes);
        }
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        Self { boundary, body }
    }

    /// The `Content-Type` header value.
    pub(crate) fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }
}

/// A boundary that appears in none of the parts, derived from their contents.
fn boundary_for(files: &[(RoleName, Vec<u8>)]) -> String {
    let mut seed = Sha256::new();
    for (role, bytes) in files {
        seed.update(role.as_str().as_bytes());
        seed.update((bytes.len() as u64).to_be_bytes());
        seed.update(bytes);
    }
    let seed = seed.finalize();
    (0u32..)
        .map(|n| {
            let mut h = Sha256::new();
            h.update(seed);
            h.update(n.to_be_bytes());
            hex::encode(&h.finalize()[..30])
        })
        .find(|b| !files.iter().any(|(_, bytes)| contains(bytes, b.as_bytes())))
        .expect("some boundary is absent from finite parts")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_laid_out_like_go_writes_them() {
        let files = vec![
            (RoleName::ROOT, br#"{"signed":{}}"#.to_vec()),
            (RoleName::RELEASES, b"x".to_vec()),
        ];
        let m = Multipart::encode(&files);
        let b = &m.boundary;
        assert_eq!(b.len(), 60);
        let expected = format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"root\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n{{\"signed\":{{}}}}\r\n\
             --{b}\r\nContent-Disposition: form-data; name=\"files\"; \
             filename=\"targets/releases\"\r\nContent-Type: application/octet-stream\r\n\r\nx\r\n\
             --{b}--\r\n"
        );
        assert_eq!(String::from_utf8(m.body.clone()).unwrap(), expected);
        assert_eq!(
            m.content_type(),
            format!("multipart/form-data; boundary={b}")
        );
    }

    #[test]
    fn no_parts_is_just_the_closing_boundary() {
        // What docker sends when nothing changed (wire-docker/017); the server answers 200.
        let m = Multipart::encode(&[]);
        assert_eq!(m.body, format!("\r\n--{}--\r\n", m.boundary).into_bytes());
    }

    #[test]
    fn boundary_avoids_the_content() {
        let first = Multipart::encode(&[(RoleName::TARGETS, b"a".to_vec())]).boundary;
        let sneaky = format!("a{first}b").into_bytes();
        let m = Multipart::encode(&[(RoleName::TARGETS, sneaky.clone())]);
        assert!(!contains(&sneaky, m.boundary.as_bytes()));
    }
}
