//! Images pushed to the stack's registry (plain HTTP, or HTTPS on a self-signed stack): a config
//! blob and one small layer,
//! under any of the manifest kinds docker and OCI tools write, with what the registry then serves.

use std::io::Write as _;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::services::get;
use super::{Stack, StackTls};

/// The kind of manifest [`Stack::push_image`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ManifestKind {
    /// `application/vnd.docker.distribution.manifest.v2+json`.
    DockerSchema2,
    /// `application/vnd.oci.image.manifest.v1+json`.
    OciManifest,
    /// `application/vnd.oci.image.index.v1+json` over one linux/amd64 OCI manifest.
    OciIndex,
}

/// What the registry holds for a pushed tag: the values a DCT target records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushedImage {
    /// `sha256:<hex>` of the manifest bytes, as the registry reports it.
    pub digest: String,
    /// Length of the manifest bytes.
    pub size: u64,
    /// The manifest's media type.
    pub media_type: String,
}

impl ManifestKind {
    /// Every kind, for tests that cover them all.
    pub const ALL: [ManifestKind; 3] = [Self::DockerSchema2, Self::OciManifest, Self::OciIndex];

    /// The media type of the manifest (the `Content-Type` and `Accept` value).
    pub fn media_type(self) -> &'static str {
        match self {
            Self::DockerSchema2 => "application/vnd.docker.distribution.manifest.v2+json",
            Self::OciManifest => "application/vnd.oci.image.manifest.v1+json",
            Self::OciIndex => "application/vnd.oci.image.index.v1+json",
        }
    }
}

impl Stack {
    /// Pushes a tiny image (a config blob and one small layer, new for each call so every push
    /// has its own digest) to the registry as `repo:tag`, with plain HTTP, and returns what the
    /// registry then serves for the tag.
    pub fn push_image(&self, repo: &str, tag: &str, kind: ManifestKind) -> PushedImage {
        let n = self.pushes.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos();
        let file = format!("tufa stack image {repo}:{tag}, push #{n} at {nanos} ns\n");
        let tar = tar_with_one_file("tufa-stack.txt", file.as_bytes());
        let layer = gzip(&tar);
        let oci = kind != ManifestKind::DockerSchema2;
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64",
            "os": "linux",
            "config": { "Labels": { "tufa.stack.push": n.to_string() } },
            "rootfs": { "type": "layers", "diff_ids": [sha256_digest(&tar)] },
            "history": [{ "created_by": "tufa-tests Stack::push_image" }],
        }))
        .expect("config JSON");
        self.upload_blob(repo, &layer);
        self.upload_blob(repo, &config);

        let (config_type, layer_type) = if oci {
            (
                "application/vnd.oci.image.config.v1+json",
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
        } else {
            (
                "application/vnd.docker.container.image.v1+json",
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
            )
        };
        let manifest_type = if oci {
            ManifestKind::OciManifest.media_type()
        } else {
            ManifestKind::DockerSchema2.media_type()
        };
        let manifest = serde_json::to_vec_pretty(&json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": { "mediaType": config_type, "size": config.len(), "digest": sha256_digest(&config) },
            "layers": [{ "mediaType": layer_type, "size": layer.len(), "digest": sha256_digest(&layer) }],
        }))
        .expect("manifest JSON");

        let (bytes, media_type) = if kind == ManifestKind::OciIndex {
            // The registry checks that an index's manifests exist, so the child goes first.
            self.put_manifest(repo, &sha256_digest(&manifest), manifest_type, &manifest);
            let index = serde_json::to_vec_pretty(&json!({
                "schemaVersion": 2,
                "mediaType": kind.media_type(),
                "manifests": [{
                    "mediaType": manifest_type,
                    "size": manifest.len(),
                    "digest": sha256_digest(&manifest),
                    "platform": { "architecture": "amd64", "os": "linux" },
                }],
            }))
            .expect("index JSON");
            (index, kind.media_type())
        } else {
            (manifest, manifest_type)
        };
        self.put_manifest(repo, tag, media_type, &bytes);
        PushedImage {
            digest: sha256_digest(&bytes),
            size: bytes.len() as u64,
            media_type: media_type.to_owned(),
        }
    }

    /// `GET /v2/<repo>/manifests/<reference>` from the registry with `Accept: <accept>`; panics
    /// unless the answer is 200.
    pub fn fetch_manifest(&self, repo: &str, reference: &str, accept: &str) -> Vec<u8> {
        let url = self.registry_url(&format!("/v2/{repo}/manifests/{reference}"));
        let (status, body) = get(self.http.get(&url).header("Accept", accept), &url);
        assert_eq!(
            status,
            200,
            "GET {url} (Accept: {accept}): {}",
            String::from_utf8_lossy(&body)
        );
        body
    }

    pub(super) fn registry_url(&self, path: &str) -> String {
        let scheme = match self.tls {
            StackTls::Ca => "http",
            StackTls::SelfSigned => "https",
        };
        format!("{scheme}://{}{path}", self.registry_addr())
    }

    /// Uploads a blob in two steps: `POST` for an upload URL, then a monolithic `PUT` on it.
    fn upload_blob(&self, repo: &str, blob: &[u8]) {
        let url = self.registry_url(&format!("/v2/{repo}/blobs/uploads/"));
        let resp = self
            .http
            .post(&url)
            .send_empty()
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        assert_eq!(resp.status(), 202, "POST {url}: {resp:?}");
        let location = resp
            .headers()
            .get("Location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or_else(|| panic!("POST {url}: no Location"));
        let location = if location.starts_with('/') {
            self.registry_url(location)
        } else {
            location.to_owned()
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{sep}digest={}", sha256_digest(blob));
        let resp = self
            .http
            .put(&put)
            .header("Content-Type", "application/octet-stream")
            .send(blob)
            .unwrap_or_else(|e| panic!("PUT {put}: {e}"));
        assert_eq!(resp.status(), 201, "PUT blob to {repo}: {resp:?}");
    }

    fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) {
        let url = self.registry_url(&format!("/v2/{repo}/manifests/{reference}"));
        let mut resp = self
            .http
            .put(&url)
            .header("Content-Type", media_type)
            .send(bytes)
            .unwrap_or_else(|e| panic!("PUT {url}: {e}"));
        let digest = resp
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|d| d.to_str().ok())
            .map(str::to_owned);
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        assert_eq!(resp.status(), 201, "PUT {url} ({media_type}): {body}");
        assert_eq!(
            digest.as_deref(),
            Some(sha256_digest(bytes).as_str()),
            "the registry's digest of {url} is not the sha256 of the bytes sent"
        );
    }
}

/// `sha256:<hex>` of `bytes`.
fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A ustar archive holding one regular file.
fn tar_with_one_file(name: &str, contents: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..name.len()].copy_from_slice(name.as_bytes());
    let mut field = |at: usize, value: &str| {
        header[at..at + value.len()].copy_from_slice(value.as_bytes());
    };
    field(100, "0000644\0"); // mode
    field(108, "0000000\0"); // uid
    field(116, "0000000\0"); // gid
    field(124, &format!("{:011o}\0", contents.len())); // size
    field(136, "00000000000\0"); // mtime
    field(156, "0"); // regular file
    field(257, "ustar\0");
    field(263, "00");
    // The checksum is computed with its own field as spaces.
    header[148..156].fill(b' ');
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());

    let mut tar = header.to_vec();
    tar.extend_from_slice(contents);
    tar.resize(tar.len().next_multiple_of(512), 0);
    tar.resize(tar.len() + 1024, 0); // two zero blocks end the archive
    tar
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};

    use super::*;

    #[test]
    fn tar_round_trips_through_gzip_and_has_a_valid_checksum() {
        let tar = tar_with_one_file("a.txt", b"hello\n");
        assert_eq!(tar.len(), 512 * 4);
        let mut unsum = tar[..512].to_vec();
        unsum[148..156].fill(b' ');
        let sum: u32 = unsum.iter().map(|&b| u32::from(b)).sum();
        assert_eq!(&tar[148..155], format!("{sum:06o}\0").as_bytes());
        let mut back = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&gzip(&tar)[..]),
            &mut back,
        )
        .expect("gunzip");
        assert_eq!(back, tar);
    }

    #[test]
    fn gnu_tar_reads_the_layer() {
        let layer = gzip(&tar_with_one_file("tufa-stack.txt", b"hello\n"));
        let mut tar = Command::new("tar")
            .args(["-tvzf", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run tar");
        tar.stdin
            .take()
            .expect("stdin")
            .write_all(&layer)
            .expect("write");
        let out = tar.wait_with_output().expect("tar output");
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{out:?}");
        assert!(listing.starts_with("-rw-r--r--"), "{listing}");
        assert!(
            listing.contains(" 6 ") && listing.trim_end().ends_with("tufa-stack.txt"),
            "{listing}"
        );
    }
}
