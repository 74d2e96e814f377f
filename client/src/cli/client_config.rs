//! The notary CLI's client config file (`-c FILE`, JSON): the parts tufa uses.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::error::CliError;
use crate::tuf::{KeyId, TrustPinning};

/// The notary CLI's client config file, the parts tufa uses.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct ClientConfig {
    pub(crate) trust_dir: Option<PathBuf>,
    #[serde(default)]
    pub(crate) remote_server: RemoteServer,
    #[serde(default)]
    trust_pinning: PinningConfig,
}

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct RemoteServer {
    pub(crate) url: Option<String>,
    pub(crate) root_ca: Option<PathBuf>,
    pub(crate) tls_client_cert: Option<PathBuf>,
    pub(crate) tls_client_key: Option<PathBuf>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct PinningConfig {
    #[serde(default)]
    certs: HashMap<String, Vec<String>>,
    #[serde(default)]
    ca: HashMap<String, PathBuf>,
    #[serde(default)]
    disable_tofu: bool,
}

impl ClientConfig {
    /// Reads the file; relative paths are relative to its directory, as notary reads them.
    pub(crate) fn load(path: &Path) -> Result<Self, CliError> {
        let bad = |message: String| CliError::File {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read(path).map_err(|e| bad(format!("cannot read the config: {e}")))?;
        let mut c: Self = serde_json::from_slice(&text)
            .map_err(|e| bad(format!("not a notary client config: {e}")))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        c.trust_dir.iter_mut().for_each(fix);
        c.remote_server.root_ca.iter_mut().for_each(fix);
        c.remote_server.tls_client_cert.iter_mut().for_each(fix);
        c.remote_server.tls_client_key.iter_mut().for_each(fix);
        c.trust_pinning.ca.values_mut().for_each(fix);
        Ok(c)
    }

    pub(crate) fn pinning(&self, path: &Path) -> Result<TrustPinning, CliError> {
        let mut certs = HashMap::new();
        for (gun, ids) in &self.trust_pinning.certs {
            let ids = ids
                .iter()
                .map(|id| {
                    id.parse::<KeyId>().map_err(|e| CliError::File {
                        path: path.to_owned(),
                        message: format!("trust_pinning.certs.{gun}: {e}"),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            certs.insert(gun.clone(), ids);
        }
        Ok(TrustPinning {
            certs,
            ca: self.trust_pinning.ca.clone(),
            disable_tofu: self.trust_pinning.disable_tofu,
        })
    }
}
