//! The notary server as a [`Publisher`]: its server-held keys, and atomic updates whose
//! version conflicts the publish loop retries.

use crate::notary::NotaryRepo;
use crate::repo::{PublishRejected, Publisher};
use crate::tuf::{PublicKey, RemoteError, RoleName};

impl Publisher for NotaryRepo {
    async fn server_key(&self, role: &RoleName) -> Result<PublicKey, RemoteError> {
        NotaryRepo::server_key(self, role)
            .await
            .map_err(|e| Box::new(e) as RemoteError)
    }

    async fn publish(&self, files: &[(RoleName, Vec<u8>)]) -> Result<(), PublishRejected> {
        NotaryRepo::publish(self, files).await.map_err(|e| {
            if e.is_version_conflict() {
                PublishRejected::VersionConflict(Box::new(e))
            } else {
                PublishRejected::Other(Box::new(e))
            }
        })
    }
}
