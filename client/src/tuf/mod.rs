//! TUF metadata as Notary writes it.
