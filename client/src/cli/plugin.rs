//! tufa as a docker CLI plugin: `docker tufa sign IMAGE:TAG`.
//!
//! Docker finds `docker-tufa` in `$DOCKER_CONFIG/cli-plugins/` (default `~/.docker/cli-plugins/`),
//! asks it for its metadata with `docker-tufa docker-cli-plugin-metadata`, and runs
//! `docker tufa ARGS` as `docker-tufa tufa ARGS`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Args;

use super::context::Ctx;
use super::error::CliError;

/// The argument docker passes to learn about a plugin.
pub const METADATA_COMMAND: &str = "docker-cli-plugin-metadata";

/// The plugin's metadata, as docker's plugin manager reads it.
pub fn metadata() -> String {
    serde_json::json!({
        "SchemaVersion": "0.1.0",
        "Vendor": "tufa",
        "Version": env!("CARGO_PKG_VERSION"),
        "ShortDescription": "Docker Content Trust with keys in hardware (tufad)",
    })
    .to_string()
}

/// What the process was asked to do, given its arguments.
#[derive(Debug, PartialEq, Eq)]
pub enum Invocation {
    /// Print the plugin metadata.
    Metadata,
    /// Run tufa with these arguments (docker's plugin name removed when run as a plugin).
    Run(Vec<OsString>),
}

/// Reads the arguments as docker passes them to a plugin, or as a person runs `tufa`.
pub fn invocation(mut args: Vec<OsString>) -> Invocation {
    if args.get(1).is_some_and(|a| a == METADATA_COMMAND) {
        return Invocation::Metadata;
    }
    let as_plugin = args
        .first()
        .and_then(|p| Path::new(p).file_name())
        .is_some_and(|n| n.to_string_lossy().starts_with("docker-"));
    if as_plugin && args.get(1).is_some_and(|a| a == "tufa") {
        args.remove(1);
    }
    Invocation::Run(args)
}

/// Where docker looks for plugins: `$DOCKER_CONFIG/cli-plugins`, else `~/.docker/cli-plugins`.
pub fn plugin_dir() -> Option<PathBuf> {
    std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
        .map(|d| d.join("cli-plugins"))
}

/// Arguments of `install-plugin`.
#[derive(Debug, Args)]
pub struct InstallPluginArgs {
    /// Plugin directory [default: $DOCKER_CONFIG/cli-plugins, else ~/.docker/cli-plugins].
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

impl InstallPluginArgs {
    /// Installs the plugin link and says where.
    pub async fn run(self, _ctx: &Ctx) -> Result<(), CliError> {
        let link = install(self.dir)?;
        println!(
            "Installed {}: `docker tufa ...` now runs tufa",
            link.display()
        );
        Ok(())
    }
}

/// Links `docker-tufa` in `dir` to this executable; returns the link.
pub fn install(dir: Option<PathBuf>) -> Result<PathBuf, CliError> {
    let dir = dir.or_else(plugin_dir).ok_or_else(|| {
        CliError::Usage("no plugin directory: set DOCKER_CONFIG or HOME, or pass --dir".into())
    })?;
    let exe = std::env::current_exe().map_err(|source| CliError::Io {
        doing: "cannot find tufa's own executable",
        source,
    })?;
    std::fs::create_dir_all(&dir).map_err(|e| CliError::File {
        path: dir.clone(),
        message: format!("cannot create the plugin directory: {e}"),
    })?;
    let link = dir.join("docker-tufa");
    match std::fs::symlink_metadata(&link) {
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::remove_file(&link).map_err(|e| CliError::File {
                path: link.clone(),
                message: format!("cannot replace the old link: {e}"),
            })?
        }
        Ok(_) => {
            return Err(CliError::File {
                path: link,
                message: "exists and is not a link made by tufa: remove it first".into(),
            })
        }
        Err(_) => {}
    }
    std::os::unix::fs::symlink(&exe, &link).map_err(|e| CliError::File {
        path: link.clone(),
        message: format!("cannot create the link: {e}"),
    })?;
    Ok(link)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn reads_docker_plugin_calls() {
        assert_eq!(
            invocation(args(&["/p/docker-tufa", METADATA_COMMAND])),
            Invocation::Metadata
        );
        assert_eq!(
            invocation(args(&["/p/docker-tufa", "tufa", "sign", "a:1"])),
            Invocation::Run(args(&["/p/docker-tufa", "sign", "a:1"]))
        );
        // Run as tufa, "tufa" is not swallowed.
        assert_eq!(
            invocation(args(&["tufa", "key", "list"])),
            Invocation::Run(args(&["tufa", "key", "list"]))
        );
        let m: serde_json::Value = serde_json::from_str(&metadata()).unwrap();
        assert_eq!(m["SchemaVersion"], "0.1.0");
    }
}
