//! Image references as docker reads them: `alpine`, `user/app:v1`, `127.0.0.1:5000/a/b@sha256:…`.
//!
//! This follows distribution/reference's `ParseNormalizedNamed`, which the docker CLI uses for
//! every image argument (and so for `docker trust`):
//! - the first path component is the registry only if it contains `.` or `:`, is `localhost`, or
//!   has an uppercase letter; otherwise the registry is `docker.io`, and a one-component name on
//!   `docker.io` gets the `library/` namespace (`alpine` → `docker.io/library/alpine`);
//!   `index.docker.io` is the same registry as `docker.io`;
//! - the grammar: lowercase path components `[a-z0-9]+` joined by `.`, `_`, `__` or dashes;
//!   tags `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`; digests `algorithm:hex` with sha256, sha384 or
//!   sha512 of exactly the right length in lowercase hex; a bare 64-hex-digit name is refused;
//! - errors in docker's words (`invalid reference format`, `repository name (…) must be
//!   lowercase`, `invalid checksum digest length`, …), each followed by what was refused.
//!
//! Where tufa is stricter than docker: a first component with `.` or `:` that is not a valid
//! host (`a_b.c/x`, docker silently takes it as a path with no registry) is refused, and the 255
//! character limit applies to the whole name with the registry (it becomes the trust GUN, which
//! notary limits to 255), not to the path alone.
//!
//! Per registry (see [`Registry`]): the Distribution API host (`docker.io` →
//! `registry-1.docker.io`), docker's default notary server, and whether docker treats the
//! registry as insecure.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use url::Url;

use crate::tuf::Gun;

/// Docker Hub's name in references and GUNs.
const DOCKER_HUB: &str = "docker.io";

/// Docker Hub's legacy name, normalised to [`DOCKER_HUB`].
const LEGACY_DOCKER_HUB: &str = "index.docker.io";

/// Where Docker Hub's Distribution API answers.
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// Docker Hub's notary server (docker CLI `trust.NotaryServer`).
const DOCKER_HUB_NOTARY: &str = "https://notary.docker.io";

/// The namespace of Docker Hub's official images.
const OFFICIAL_PREFIX: &str = "library/";

/// The tag docker pulls and pushes when none is given.
pub const DEFAULT_TAG: &str = "latest";

/// The longest full name (registry and path) accepted.
pub const NAME_MAX_LEN: usize = 255;

/// A parsed, normalised image reference: `registry/repository[:tag][@digest]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageRef {
    registry: Registry,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// A registry as named in references: a host (name, IPv4, or `[IPv6]`) and an optional port,
/// e.g. `docker.io`, `127.0.0.1:5000`, `[::1]:5000`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Registry(String);

/// A reference that docker would refuse, in docker's words, then what was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// Not `[HOST[:PORT]/]NAME[:TAG][@DIGEST]`.
    #[error(
        "invalid reference format: {input:?} is not [HOST[:PORT]/]NAME[:TAG][@DIGEST] with a \
         lowercase NAME, e.g. 127.0.0.1:5000/app:v1 or alpine:3"
    )]
    InvalidFormat {
        /// The reference as given.
        input: String,
    },

    /// The repository name has uppercase letters.
    #[error("invalid reference format: repository name ({repository}) must be lowercase")]
    Uppercase {
        /// The repository part that was checked, as docker shows it (`library/Alpine`).
        repository: String,
    },

    /// A 64-hex-digit name looks like an image ID, which docker refuses as a name.
    #[error(
        "invalid repository name ({input}), cannot specify 64-byte hexadecimal strings; \
         give NAME@sha256:{input} to name an image by digest"
    )]
    HexName {
        /// The reference as given.
        input: String,
    },

    /// The registry and repository together are too long.
    #[error("repository name must not be more than 255 characters: {name}")]
    NameTooLong {
        /// The full name.
        name: String,
    },

    /// The digest is malformed, too short or long, or of an unknown algorithm.
    #[error("{problem}: {digest}; a digest is sha256: and 64 lowercase hex digits")]
    Digest {
        /// The digest as given.
        digest: String,
        /// go-digest's words: "invalid checksum digest format", "invalid checksum digest
        /// length" or "unsupported digest algorithm".
        problem: &'static str,
    },

    /// `DOCKER_CONTENT_TRUST_SERVER` (or a server option) is not an https URL.
    #[error(
        "valid https URL required for trust server, got {url}; set DOCKER_CONTENT_TRUST_SERVER \
         to the notary server, e.g. https://notary.example.com:4443"
    )]
    TrustServer {
        /// The value given.
        url: String,
    },

    /// A registry name (e.g. in an insecure-registries list) is not `host[:port]`.
    #[error("invalid registry {input:?}: give HOST or HOST:PORT, e.g. 127.0.0.1:5000")]
    InvalidRegistry {
        /// The name as given.
        input: String,
    },
}

impl ImageRef {
    /// Parses `input` as docker does (`ParseNormalizedNamed`).
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        let invalid = || ReferenceError::InvalidFormat {
            input: input.to_owned(),
        };
        if input.len() == 64 && is_lower_hex(input) {
            return Err(ReferenceError::HexName {
                input: input.to_owned(),
            });
        }
        let (domain, remainder) = split_docker_domain(input);
        // docker checks the case of everything before the first ':' (so also "name@sha256").
        let remote = remainder.split(':').next().unwrap_or_default();
        if remote.to_lowercase() != remote {
            return Err(ReferenceError::Uppercase {
                repository: remote.to_owned(),
            });
        }
        let (name_tag, digest) = match remainder.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (remainder.as_str(), None),
        };
        let (path, tag) = match name_tag.split_once(':') {
            Some((p, t)) => (p, Some(t)),
            None => (name_tag, None),
        };
        if !is_domain(&domain) || !is_remote_name(path) {
            return Err(invalid());
        }
        if tag.is_some_and(|t| !is_tag(t)) || digest.is_some_and(|d| !is_digest_syntax(d)) {
            return Err(invalid());
        }
        if domain.len() + 1 + path.len() > NAME_MAX_LEN {
            return Err(ReferenceError::NameTooLong {
                name: format!("{domain}/{path}"),
            });
        }
        if let Some(d) = digest {
            check_digest(d)?;
        }
        Ok(Self {
            registry: Registry(domain),
            repository: path.to_owned(),
            tag: tag.map(str::to_owned),
            digest: digest.map(str::to_owned),
        })
    }

    /// The registry, e.g. `docker.io` or `127.0.0.1:5000`.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The repository path in the registry, e.g. `library/alpine`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if one was given.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest (`sha256:<hex>`), if one was given.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The full name without tag or digest: `docker.io/library/alpine`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The trust repository's GUN, the full name: `docker.io/library/alpine`.
    pub fn gun(&self) -> Gun {
        self.name()
            .parse()
            .expect("a parsed reference's name is a valid GUN")
    }

    /// The name as docker prints it (`FamiliarName`): `alpine`, `user/app`, `localhost:5000/a/b`.
    pub fn familiar_name(&self) -> String {
        if self.registry.is_docker_hub() {
            match self.repository.strip_prefix(OFFICIAL_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_owned(),
                _ => self.repository.clone(),
            }
        } else {
            self.name()
        }
    }

    /// The reference as docker prints it (`FamiliarString`): `alpine:3`, `user/app@sha256:…`.
    pub fn familiar(&self) -> String {
        self.with_suffixes(self.familiar_name())
    }

    /// This reference with `tag` instead of its tag (the digest is kept).
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        if !is_tag(tag) {
            return Err(ReferenceError::InvalidFormat {
                input: format!("{}:{tag}", self.name()),
            });
        }
        Ok(Self {
            tag: Some(tag.to_owned()),
            ..self.clone()
        })
    }

    /// docker's `TagNameOnly`: `latest` when neither tag nor digest was given.
    pub fn with_default_tag(&self) -> Self {
        let mut out = self.clone();
        if out.tag.is_none() && out.digest.is_none() {
            out.tag = Some(DEFAULT_TAG.to_owned());
        }
        out
    }

    fn with_suffixes(&self, mut name: String) -> String {
        if let Some(tag) = &self.tag {
            name.push(':');
            name.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            name.push('@');
            name.push_str(digest);
        }
        name
    }
}

impl FromStr for ImageRef {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The full normalised form: `docker.io/library/alpine:3@sha256:…`.
impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.with_suffixes(self.name()))
    }
}

impl Registry {
    /// Docker Hub, `docker.io`.
    pub fn docker_hub() -> Self {
        Self(DOCKER_HUB.to_owned())
    }

    /// The name as in references: `docker.io`, `127.0.0.1:5000`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is Docker Hub.
    pub fn is_docker_hub(&self) -> bool {
        self.0 == DOCKER_HUB
    }

    /// The host without the port, IPv6 addresses without brackets.
    pub fn host(&self) -> &str {
        let s = self.0.as_str();
        if let Some(rest) = s.strip_prefix('[') {
            return rest.split(']').next().unwrap_or(rest);
        }
        s.split(':').next().unwrap_or(s)
    }

    /// Where the Distribution API answers, as `host[:port]`: `registry-1.docker.io` for Docker
    /// Hub, the registry's own name otherwise.
    pub fn api_host(&self) -> &str {
        if self.is_docker_hub() {
            DOCKER_HUB_API
        } else {
            &self.0
        }
    }

    /// Whether docker treats this registry as insecure without configuration: its host is
    /// `localhost` or a loopback address (127.0.0.0/8, ::1). docker then skips TLS verification
    /// toward the registry and its notary server, and falls back to plain HTTP for the registry.
    ///
    /// docker also resolves other host names and checks their addresses; tufa does not look
    /// names up, so only `localhost` and literal addresses count.
    pub fn is_insecure_by_default(&self) -> bool {
        let host = self.host();
        if host.eq_ignore_ascii_case("localhost") {
            return true;
        }
        match host.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => v4.is_loopback(),
            Ok(IpAddr::V6(v6)) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
            Err(_) => false,
        }
    }

    /// docker's notary server for this registry: `trust_server` if set (the caller passes
    /// `DOCKER_CONTENT_TRUST_SERVER`; it must be https), else `https://notary.docker.io` for
    /// Docker Hub and `https://<registry>` for any other registry.
    pub fn notary_server(&self, trust_server: Option<&str>) -> Result<Url, ReferenceError> {
        match trust_server.filter(|s| !s.is_empty()) {
            Some(s) => match Url::parse(s) {
                Ok(url) if url.scheme() == "https" && url.host_str().is_some() => Ok(url),
                _ => Err(ReferenceError::TrustServer { url: s.to_owned() }),
            },
            None if self.is_docker_hub() => {
                Ok(Url::parse(DOCKER_HUB_NOTARY).expect("a valid constant URL"))
            }
            None => Url::parse(&format!("https://{}", self.0)).map_err(|_| {
                ReferenceError::TrustServer {
                    url: self.0.clone(),
                }
            }),
        }
    }
}

impl FromStr for Registry {
    type Err = ReferenceError;

    /// `host[:port]`; `index.docker.io` is read as `docker.io`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if !is_domain(s) {
            return Err(ReferenceError::InvalidRegistry {
                input: s.to_owned(),
            });
        }
        Ok(Self(
            if s == LEGACY_DOCKER_HUB {
                DOCKER_HUB
            } else {
                s
            }
            .to_owned(),
        ))
    }
}

impl fmt::Display for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// distribution/reference `splitDockerDomain`: the registry and the rest (path, tag, digest).
fn split_docker_domain(input: &str) -> (String, String) {
    let Some((first, rest)) = input.split_once('/') else {
        return (DOCKER_HUB.to_owned(), format!("{OFFICIAL_PREFIX}{input}"));
    };
    let (domain, mut remainder) =
        if first == "localhost" || first.contains(['.', ':']) || first.to_lowercase() != first {
            (first, rest.to_owned())
        } else {
            (DOCKER_HUB, input.to_owned())
        };
    let domain = if domain == LEGACY_DOCKER_HUB {
        DOCKER_HUB
    } else {
        domain
    };
    if domain == DOCKER_HUB && !remainder.contains('/') {
        remainder = format!("{OFFICIAL_PREFIX}{remainder}");
    }
    (domain.to_owned(), remainder)
}

/// `host[:port]`: a DNS-like name or IPv4 address, or `[IPv6]`, then optional `:digits`.
fn is_domain(s: &str) -> bool {
    let (host_ok, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return false;
        };
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(p) => Some(p),
                None => return false,
            },
        };
        let ok = !inside.is_empty() && inside.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
        (ok, port)
    } else {
        match s.split_once(':') {
            Some((host, port)) => (is_domain_name(host), Some(port)),
            None => (is_domain_name(s), None),
        }
    };
    host_ok && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Dot-separated components `[a-zA-Z0-9]` or `[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`.
fn is_domain_name(s: &str) -> bool {
    s.split('.').all(|c| {
        let b = c.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
    })
}

/// Slash-separated path components.
fn is_remote_name(s: &str) -> bool {
    s.split('/').all(is_path_component)
}

/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or one or more `-`.
fn is_path_component(s: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let b = s.as_bytes();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &s[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}` with ASCII `\w`.
fn is_tag(s: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = s.as_bytes();
    (1..=128).contains(&b.len())
        && word(b[0])
        && b[1..].iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

/// The reference grammar's digest: `[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[hex]{32,}`.
fn is_digest_syntax(s: &str) -> bool {
    let Some((algorithm, hex)) = s.split_once(':') else {
        return false;
    };
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(|x| x.is_ascii_alphanumeric())
    };
    algorithm.split(['-', '_', '+', '.']).all(component_ok)
        && hex.len() >= 32
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// go-digest's `Digest.Validate` on a digest that passed [`is_digest_syntax`].
fn check_digest(digest: &str) -> Result<(), ReferenceError> {
    let fail = |problem| ReferenceError::Digest {
        digest: digest.to_owned(),
        problem,
    };
    let (algorithm, hex) = digest.split_once(':').unwrap_or((digest, ""));
    let size = match algorithm {
        "sha256" => 32,
        "sha384" => 48,
        "sha512" => 64,
        _ => return Err(fail("unsupported digest algorithm")),
    };
    if hex.len() != size * 2 {
        return Err(fail("invalid checksum digest length"));
    }
    if !is_lower_hex(hex) {
        return Err(fail("invalid checksum digest format"));
    }
    Ok(())
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa";

    fn parts(input: &str) -> (String, String, Option<String>, Option<String>) {
        let r = ImageRef::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        (
            r.registry().to_string(),
            r.repository().to_owned(),
            r.tag().map(Into::into),
            r.digest().map(Into::into),
        )
    }

    fn err(input: &str) -> ReferenceError {
        ImageRef::parse(input).expect_err(input)
    }

    #[test]
    fn docker_normalisation_examples() {
        // From distribution/reference's normalize_test.go and the docker docs.
        let cases: &[(&str, &str, &str, &str)] = &[
            // input, full name, familiar name, familiar string
            ("alpine", "docker.io/library/alpine", "alpine", "alpine"),
            (
                "ubuntu:latest",
                "docker.io/library/ubuntu:latest",
                "ubuntu",
                "ubuntu:latest",
            ),
            ("user/app", "docker.io/user/app", "user/app", "user/app"),
            (
                "docker.io/alpine",
                "docker.io/library/alpine",
                "alpine",
                "alpine",
            ),
            (
                "docker.io/library/alpine",
                "docker.io/library/alpine",
                "alpine",
                "alpine",
            ),
            (
                "index.docker.io/user/app:v1",
                "docker.io/user/app:v1",
                "user/app",
                "user/app:v1",
            ),
            (
                "library/foo/bar",
                "docker.io/library/foo/bar",
                "library/foo/bar",
                "library/foo/bar",
            ),
            (
                "docker.io/library/foo/bar",
                "docker.io/library/foo/bar",
                "library/foo/bar",
                "library/foo/bar",
            ),
            ("localhost/a", "localhost/a", "localhost/a", "localhost/a"),
            (
                "localhost:5000/a/b",
                "localhost:5000/a/b",
                "localhost:5000/a/b",
                "localhost:5000/a/b",
            ),
            (
                "127.0.0.1:5000/a:tag",
                "127.0.0.1:5000/a:tag",
                "127.0.0.1:5000/a",
                "127.0.0.1:5000/a:tag",
            ),
            (
                "example.com/a/b/c",
                "example.com/a/b/c",
                "example.com/a/b/c",
                "example.com/a/b/c",
            ),
            (
                "[::1]:5000/a",
                "[::1]:5000/a",
                "[::1]:5000/a",
                "[::1]:5000/a",
            ),
            (
                "[2001:db8::1]/a",
                "[2001:db8::1]/a",
                "[2001:db8::1]/a",
                "[2001:db8::1]/a",
            ),
            ("Foo/bar", "Foo/bar", "Foo/bar", "Foo/bar"),
            (
                "xn--bcher-kva.example/a",
                "xn--bcher-kva.example/a",
                "xn--bcher-kva.example/a",
                "xn--bcher-kva.example/a",
            ),
            // A bare "localhost:5000" is docker.io/library/localhost with tag 5000, as in docker.
            (
                "localhost:5000",
                "docker.io/library/localhost:5000",
                "localhost",
                "localhost:5000",
            ),
            (
                "a__b/c---d",
                "docker.io/a__b/c---d",
                "a__b/c---d",
                "a__b/c---d",
            ),
        ];
        for &(input, full, familiar_name, familiar) in cases {
            let r = ImageRef::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(r.to_string(), full, "{input}");
            assert_eq!(r.familiar_name(), familiar_name, "{input}");
            assert_eq!(r.familiar(), familiar, "{input}");
        }
    }

    #[test]
    fn tags_and_digests() {
        let d = format!("sha256:{HEX}");
        // "host" has no '.' or ':' and is not localhost: a path on Docker Hub.
        assert_eq!(
            parts(&format!("host/a@{d}")),
            ("docker.io".into(), "host/a".into(), None, Some(d.clone()))
        );
        let (reg, repo, tag, digest) = parts(&format!("busybox:latest@{d}"));
        assert_eq!(
            (
                reg.as_str(),
                repo.as_str(),
                tag.as_deref(),
                digest.as_deref()
            ),
            (
                "docker.io",
                "library/busybox",
                Some("latest"),
                Some(d.as_str())
            )
        );
        let r = ImageRef::parse(&format!("127.0.0.1:5000/dct/app:v1@{d}")).unwrap();
        assert_eq!(r.to_string(), format!("127.0.0.1:5000/dct/app:v1@{d}"));
        assert_eq!(r.familiar(), format!("127.0.0.1:5000/dct/app:v1@{d}"));
        // sha512 digests are accepted as docker does; sha384 too.
        let long = "a".repeat(128);
        assert!(ImageRef::parse(&format!("a@sha512:{long}")).is_ok());
        assert!(ImageRef::parse(&format!("a@sha384:{}", "b".repeat(96))).is_ok());
        // Longest tag is 128 characters; tags may have uppercase, '.', '-', '_'.
        let t128 = format!("_{}", "A.b-".repeat(31) + "zzz");
        assert_eq!(t128.len(), 128);
        assert_eq!(
            parts(&format!("a:{t128}")).2.as_deref(),
            Some(t128.as_str())
        );
        assert!(matches!(
            err(&format!("a:{t128}x")),
            ReferenceError::InvalidFormat { .. }
        ));
    }

    #[test]
    fn gun_and_registry_hosts() {
        let r = ImageRef::parse("alpine").unwrap();
        assert_eq!(r.gun().as_str(), "docker.io/library/alpine");
        assert_eq!(r.registry().api_host(), "registry-1.docker.io");
        assert_eq!(
            r.registry().notary_server(None).unwrap().as_str(),
            "https://notary.docker.io/"
        );
        let r = ImageRef::parse("127.0.0.1:5000/dct/app:v1").unwrap();
        assert_eq!(r.gun().as_str(), "127.0.0.1:5000/dct/app");
        assert_eq!(r.registry().api_host(), "127.0.0.1:5000");
        assert_eq!(r.registry().host(), "127.0.0.1");
        assert_eq!(
            r.registry().notary_server(None).unwrap().as_str(),
            "https://127.0.0.1:5000/"
        );
        let over = r
            .registry()
            .notary_server(Some("https://127.0.0.1:4443"))
            .unwrap();
        assert_eq!(over.as_str(), "https://127.0.0.1:4443/");
        // An empty variable is unset, as in docker.
        assert!(r.registry().notary_server(Some("")).is_ok());
        for bad in ["http://127.0.0.1:4443", "127.0.0.1:4443", "not a url"] {
            let e = r.registry().notary_server(Some(bad)).unwrap_err();
            assert_eq!(e, ReferenceError::TrustServer { url: bad.into() }, "{bad}");
            assert!(
                e.to_string().starts_with(&format!(
                    "valid https URL required for trust server, got {bad}"
                )),
                "{e}"
            );
        }
        let r = ImageRef::parse("[::1]:5000/a").unwrap();
        assert_eq!(r.registry().host(), "::1");
        assert_eq!(
            r.registry().notary_server(None).unwrap().as_str(),
            "https://[::1]:5000/"
        );
    }

    #[test]
    fn insecure_by_default_is_loopback_and_localhost() {
        for insecure in [
            "localhost/a",
            "localhost:5000/a",
            "127.0.0.1:5000/a",
            "127.1.2.3/a",
            "[::1]:5000/a",
            "[::1]/a",
            "[::ffff:7f00:1]:5000/a",
        ] {
            let r = ImageRef::parse(insecure).unwrap();
            assert!(r.registry().is_insecure_by_default(), "{insecure}");
        }
        for secure in [
            "alpine",
            "example.com/a",
            "10.0.0.1:5000/a",
            "128.0.0.1/a",
            "[::2]/a",
            "localhost.example.com/a",
        ] {
            let r = ImageRef::parse(secure).unwrap();
            assert!(!r.registry().is_insecure_by_default(), "{secure}");
        }
    }

    #[test]
    fn docker_error_messages() {
        // `docker pull 'a b'` → "invalid reference format".
        for bad in [
            "",
            "a b",
            ":",
            "a:",
            "a/",
            "/a",
            "a//b",
            "-a",
            "a-",
            "a..b",
            "a___b",
            "a@",
            "a@sha256",
            "a:b:c",
            "a:-b",
            "a@sha256:abc",
            "a/c-_-d",
            "host:5000:6000/a",
            "host:/a",
            "[::1/a",
            "[::1]x/a",
            "[]/a",
            "a_b.c/x",
            "é",
            "a/b@sha256:gg",
        ] {
            let e = err(bad);
            assert!(
                matches!(e, ReferenceError::InvalidFormat { .. }),
                "{bad:?}: {e:?}"
            );
            assert!(e.to_string().starts_with("invalid reference format"), "{e}");
        }
        assert_eq!(
            err("Alpine").to_string(),
            "invalid reference format: repository name (library/Alpine) must be lowercase"
        );
        assert_eq!(
            err("127.0.0.1:5000/My/App:v1"),
            ReferenceError::Uppercase {
                repository: "My/App".into()
            }
        );
        assert!(err(HEX).to_string().starts_with(&format!(
            "invalid repository name ({HEX}), cannot specify 64-byte"
        )));
        // A 64-hex name with a registry is a normal name.
        assert!(ImageRef::parse(&format!("h.io/{HEX}")).is_ok());
        let digest_problem = |input: &str| match err(input) {
            ReferenceError::Digest { problem, .. } => problem,
            other => panic!("{input}: {other:?}"),
        };
        assert_eq!(
            digest_problem(&format!("a@sha256:{}", &HEX[..40])),
            "invalid checksum digest length"
        );
        assert_eq!(
            digest_problem(&format!("a@sha256:{}", HEX.to_uppercase())),
            "invalid checksum digest format"
        );
        assert_eq!(
            digest_problem(&format!("a@md5:{HEX}")),
            "unsupported digest algorithm"
        );
        let long = format!("h.io/{}", "a".repeat(250));
        assert!(ImageRef::parse(&long).is_ok(), "255 characters");
        assert!(matches!(
            err(&format!("{long}a")),
            ReferenceError::NameTooLong { .. }
        ));
    }

    #[test]
    fn tags_are_replaced_and_defaulted() {
        let r = ImageRef::parse("alpine").unwrap();
        assert_eq!(
            r.with_default_tag().to_string(),
            "docker.io/library/alpine:latest"
        );
        let r = ImageRef::parse("alpine:3").unwrap();
        assert_eq!(r.with_default_tag().tag(), Some("3"));
        assert_eq!(r.with_tag("edge").unwrap().familiar(), "alpine:edge");
        assert!(r.with_tag("-bad").is_err());
        let d = format!("alpine@sha256:{HEX}");
        assert_eq!(ImageRef::parse(&d).unwrap().with_default_tag().tag(), None);
    }

    #[test]
    fn registries_parse_alone() {
        for ok in [
            "docker.io",
            "127.0.0.1:5000",
            "localhost",
            "[::1]:5000",
            "Host.example",
        ] {
            assert_eq!(ok.parse::<Registry>().unwrap().as_str(), ok);
        }
        assert!("index.docker.io"
            .parse::<Registry>()
            .unwrap()
            .is_docker_hub());
        for bad in [
            "", "a/b", "host:", "host:x", "-a.com", "[::1", "[::1]:", "[::1]5",
        ] {
            assert!(bad.parse::<Registry>().is_err(), "{bad:?}");
        }
    }
}
