//! `tufa key migrate`: every private key of a docker or notary trust directory into the agent,
//! each checked before it counts as moved; the files are deleted only when asked, and only
//! those whose key was checked.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;

use clap::Args;
use secrecy::SecretString;
use tufa_proto::v1;

use super::context::Ctx;
use super::error::CliError;
use super::key::short_location;
use super::table;
use crate::agent::{AgentClient, AgentKey};
use crate::migrate::{self, FileKey, Found, KeyError, KeyFile, Target};
use crate::tuf::KeyId;

/// Arguments of `key migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The trust directory whose `private/` keys to move [default: $DOCKER_CONFIG/trust, else
    /// ~/.docker/trust; notary's is ~/.notary].
    #[arg(long)]
    pub trust_dir: Option<PathBuf>,
    /// The device to put the keys on: a token label or a YubiKey serial [default: the agent's
    /// first device].
    #[arg(long)]
    pub device: Option<String>,
    /// Delete the key files once every key is in the agent and checked (asks first).
    #[arg(long)]
    pub remove: bool,
    /// Delete without asking (with --remove).
    #[arg(long, requires = "remove")]
    pub yes: bool,
}

/// What became of one key file.
enum Outcome {
    /// Imported and checked.
    Moved(AgentKey),
    /// The agent already held it (and, with --remove, it was checked).
    Held { key: AgentKey, checked: bool },
    /// Not moved, and why.
    Failed(KeyError),
}

/// One file and what became of it.
struct Done {
    path: PathBuf,
    role: String,
    gun: String,
    id: Option<KeyId>,
    outcome: Outcome,
}

impl MigrateArgs {
    /// Moves the keys, prints what became of each, and removes the files if asked.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let trust_dir = self
            .trust_dir
            .clone()
            .unwrap_or_else(|| ctx.trust_dir.clone());
        if !trust_dir.is_dir() {
            return Err(CliError::File {
                path: trust_dir,
                message: "no trust directory here: give docker's (~/.docker/trust) or notary's (~/.notary) with --trust-dir".into(),
            });
        }
        let Some(private) = migrate::private_dir(&trust_dir) else {
            println!(
                "No private keys in {}: nothing to migrate",
                trust_dir.display()
            );
            return Ok(());
        };
        let found = migrate::scan(&private).map_err(|e| CliError::File {
            path: private.clone(),
            message: format!("cannot read the key directory: {e}"),
        })?;
        if found.is_empty() {
            println!(
                "No private keys in {}: nothing to migrate",
                private.display()
            );
            return Ok(());
        }
        let agent = ctx.agent().await?;
        let (target, place) = target(agent, self.device.as_deref()).await?;
        let held: BTreeMap<KeyId, AgentKey> = agent
            .list_keys()
            .await?
            .into_iter()
            .map(|k| (k.id, k))
            .collect();
        let names = plan_names(&found, &held);
        println!(
            "Moving {} key{} from {} into {place}",
            found.len(),
            if found.len() == 1 { "" } else { "s" },
            private.display()
        );
        let mut passphrases = Passphrases::new();
        let mut done = Vec::new();
        let total = found.len();
        for (f, name) in found.into_iter().zip(names) {
            let (outcome, role, gun, named_id) = match f.file {
                Err(e) => (Outcome::Failed(e), None, None, None),
                Ok(file) => {
                    let step = Step {
                        agent,
                        file: &file,
                        held: &held,
                        name: &name,
                        target: &target,
                        remove: self.remove,
                    };
                    let outcome = step.run(&mut passphrases).await;
                    (outcome, file.role, file.gun, file.named_id)
                }
            };
            let d = Done {
                path: f.path,
                role: role.unwrap_or_default(),
                gun: gun.unwrap_or_default(),
                id: match &outcome {
                    Outcome::Moved(k) | Outcome::Held { key: k, .. } => Some(k.id),
                    Outcome::Failed(_) => named_id,
                },
                outcome,
            };
            println!("{}", progress(&d));
            done.push(d);
        }
        print!("\n{}", summary(&done));
        let failed: Vec<&Done> = done
            .iter()
            .filter(|d| matches!(d.outcome, Outcome::Failed(_)))
            .collect();
        if self.remove {
            remove(&done, self.yes)?;
        } else {
            println!(
                "\nThe key files are still in {}: once the keys are where you want them (`tufa key list`), delete the files with `tufa key migrate --remove`, or keep them as an encrypted backup",
                private.display()
            );
        }
        if failed.is_empty() {
            return Ok(());
        }
        Err(CliError::Refused(format!(
            "{} of {} key files were not moved ({}): fix what is said above and run `tufa key migrate` again (keys already moved are skipped)",
            failed.len(),
            total,
            failed
                .iter()
                .map(|d| d.path.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}

/// One key file's move: skip it if held, else open, import and check it.
struct Step<'a> {
    agent: &'a AgentClient,
    file: &'a KeyFile,
    held: &'a BTreeMap<KeyId, AgentKey>,
    name: &'a str,
    target: &'a Target,
    remove: bool,
}

impl Step<'_> {
    async fn run(&self, passphrases: &mut Passphrases) -> Outcome {
        match self.try_run(passphrases).await {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Failed(e),
        }
    }

    async fn try_run(&self, passphrases: &mut Passphrases) -> Result<Outcome, KeyError> {
        // Held already: nothing to open, unless the file is to be deleted.
        if let Some(key) = self.file.named_id.and_then(|id| self.held.get(&id)) {
            if !self.remove {
                return Ok(Outcome::Held {
                    key: key.clone(),
                    checked: false,
                });
            }
            let (opened, _) = passphrases.open(self.file)?;
            migrate::check(self.agent, key, self.file, &opened).await?;
            return Ok(Outcome::Held {
                key: key.clone(),
                checked: true,
            });
        }
        let (opened, passphrase) = passphrases.open(self.file)?;
        if let Some(named) = self.file.named_id.filter(|n| *n != opened.id) {
            return Err(KeyError::IdMismatch {
                named,
                held: opened.id,
            });
        }
        // A renamed file of a key the agent holds.
        if let Some(key) = self.held.get(&opened.id) {
            migrate::check(self.agent, key, self.file, &opened).await?;
            return Ok(Outcome::Held {
                key: key.clone(),
                checked: true,
            });
        }
        let key = migrate::import(
            self.agent,
            self.file,
            &opened,
            self.name,
            passphrase.as_ref(),
            self.target,
        )
        .await?;
        Ok(Outcome::Moved(key))
    }
}

/// The agent name of each file's key, for those it will import.
fn plan_names(found: &[Found], held: &BTreeMap<KeyId, AgentKey>) -> Vec<String> {
    let taken: BTreeSet<String> = held.values().map(|k| k.name.clone()).collect();
    // A file without an ID in its name is named after a hash of its path until it is opened.
    let keys: Vec<(KeyId, String)> = found
        .iter()
        .map(|f| match &f.file {
            Ok(file) => {
                let id = file.named_id.unwrap_or_else(|| {
                    KeyId::for_ecdsa_spki(f.path.as_os_str().as_encoded_bytes())
                });
                (id, migrate::base_name(file, &id))
            }
            Err(_) => (KeyId::from_bytes([0; 32]), String::new()),
        })
        .collect();
    let importing: Vec<(KeyId, String)> = keys
        .iter()
        .filter(|(id, base)| !base.is_empty() && !held.contains_key(id))
        .cloned()
        .collect();
    let mut names = migrate::names(&importing, &taken).into_iter();
    keys.iter()
        .map(|(id, base)| {
            if base.is_empty() || held.contains_key(id) {
                String::new()
            } else {
                names.next().unwrap_or_default()
            }
        })
        .collect()
}

/// The device new keys go to, and how to name it in the first line.
async fn target(agent: &AgentClient, device: Option<&str>) -> Result<(Target, String), CliError> {
    let status = agent.status().await?;
    let Some(wanted) = device else {
        let first = status
            .devices
            .first()
            .map(|d| format!("the agent (device {})", d.name))
            .unwrap_or_else(|| "the agent".into());
        return Ok((Target::default(), first));
    };
    let Some(found) = status.devices.iter().find(|d| d.name == wanted) else {
        let names: Vec<_> = status.devices.iter().map(|d| d.name.as_str()).collect();
        return Err(CliError::Usage(format!(
            "the agent has no device '{wanted}' (it has: {}): give --device a token label or a YubiKey serial from `tufa agent status`",
            names.join(", ")
        )));
    };
    let backend = found.backend();
    let what = if backend == v1::Backend::Yubikey {
        format!("YubiKey {wanted} (free slots, retired 82-95 first)")
    } else {
        format!("device {wanted}")
    };
    Ok((
        Target {
            backend,
            device: wanted.to_owned(),
        },
        what,
    ))
}

/// The passphrases to try: each key's variables, then those typed so far; then a prompt.
struct Passphrases {
    typed: Vec<SecretString>,
    terminal: bool,
}

impl Passphrases {
    fn new() -> Self {
        Self {
            typed: Vec::new(),
            terminal: std::io::stdin().is_terminal(),
        }
    }

    /// Opens `file`: its public key, and the passphrase that opened it (to give the agent).
    fn open(&mut self, file: &KeyFile) -> Result<(FileKey, Option<SecretString>), KeyError> {
        if !file.encrypted() {
            return Ok((file.open(None)?, None));
        }
        let vars = migrate::passphrase_vars(file.role.as_deref());
        let mut tried = Vec::new();
        let from_env = vars.iter().filter_map(|v| {
            std::env::var(v)
                .ok()
                .filter(|p| !p.is_empty())
                .map(|p| (*v, SecretString::from(p)))
        });
        for (var, pass) in from_env {
            tried.push(var);
            match file.open(Some(&pass)) {
                Ok(key) => return Ok((key, Some(pass))),
                Err(KeyError::WrongPassphrase(_)) => {}
                Err(e) => return Err(e),
            }
        }
        for pass in &self.typed {
            if let Ok(key) = file.open(Some(pass)) {
                return Ok((key, Some(pass.clone())));
            }
        }
        if !self.terminal {
            return Err(if tried.is_empty() {
                KeyError::NoPassphrase(vars[1..].join(" or "))
            } else {
                KeyError::WrongPassphrase(tried.join(", "))
            });
        }
        let what = match (&file.role, &file.gun) {
            (Some(r), Some(g)) => format!("{r} key for {g}"),
            (Some(r), None) => format!("{r} key"),
            _ => "key".into(),
        };
        let id = file
            .named_id
            .map(|i| format!(" with ID {}", i.short()))
            .unwrap_or_default();
        for attempt in 0..3 {
            let pass = rpassword::prompt_password(format!(
                "Enter passphrase for {what}{id} ({}): ",
                file.path.display()
            ))
            .map(SecretString::from)
            .map_err(KeyError::Read)?;
            match file.open(Some(&pass)) {
                Ok(key) => {
                    self.typed.push(pass.clone());
                    return Ok((key, Some(pass)));
                }
                Err(KeyError::WrongPassphrase(_)) if attempt < 2 => {
                    eprintln!("Passphrase incorrect. Please retry.");
                }
                Err(KeyError::WrongPassphrase(_)) => break,
                Err(e) => return Err(e),
            }
        }
        tried.push("3 typed passphrases");
        Err(KeyError::WrongPassphrase(tried.join(", ")))
    }
}

/// One line per file as it is done.
fn progress(d: &Done) -> String {
    let what = describe(&d.role, &d.gun, d.id.as_ref());
    match &d.outcome {
        Outcome::Moved(k) => format!(
            "{what}: moved to '{}' in {}, checked by a test signature",
            k.name,
            place(k)
        ),
        Outcome::Held { key, checked } => format!(
            "{what}: already in the agent as '{}' ({}), skipped{}",
            key.name,
            place(key),
            if *checked {
                "; checked by a test signature"
            } else {
                ""
            }
        ),
        Outcome::Failed(e) => format!("{what} ({}): not moved: {e}", d.path.display()),
    }
}

/// `root key 5af2455`, `targets key 83cb508 for GUN`, `jeff key ca92f1c`.
fn describe(role: &str, gun: &str, id: Option<&KeyId>) -> String {
    let role = if role.is_empty() { "a" } else { role };
    let id = id.map(|i| format!(" {}", i.short())).unwrap_or_default();
    if gun.is_empty() {
        format!("{role} key{id}")
    } else {
        format!("{role} key{id} for {gun}")
    }
}

/// Where a key is: `pkcs11:token=..;serial=..` or `yubikey:SERIAL/SLOT`.
fn place(k: &AgentKey) -> String {
    k.location
        .as_ref()
        .map(short_location)
        .unwrap_or_else(|| "the agent".into())
}

/// The table of every file: role, GUN, key ID, what happened, its agent name and place.
fn summary(done: &[Done]) -> String {
    let mut rows = vec![["ROLE", "GUN", "KEY ID", "RESULT", "NAME", "LOCATION"]
        .map(String::from)
        .to_vec()];
    for d in done {
        let (result, name, location) = match &d.outcome {
            Outcome::Moved(k) => ("moved".to_owned(), k.name.clone(), place(k)),
            Outcome::Held { key, .. } => ("already held".to_owned(), key.name.clone(), place(key)),
            Outcome::Failed(_) => (
                "not moved".to_owned(),
                String::new(),
                d.path.display().to_string(),
            ),
        };
        rows.push(vec![
            if d.role.is_empty() {
                "-".into()
            } else {
                d.role.clone()
            },
            if d.gun.is_empty() {
                "-".into()
            } else {
                d.gun.clone()
            },
            d.id.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
            result,
            name,
            location,
        ]);
    }
    let moved = done
        .iter()
        .filter(|d| matches!(d.outcome, Outcome::Moved(_)))
        .count();
    let held = done
        .iter()
        .filter(|d| matches!(d.outcome, Outcome::Held { .. }))
        .count();
    format!(
        "{}{moved} moved, {held} already in the agent, {} not moved\n",
        table::render(&rows),
        done.len() - moved - held
    )
}

/// Deletes the files whose key is in the agent and was checked in this run, after asking.
fn remove(done: &[Done], yes: bool) -> Result<(), CliError> {
    let checked: Vec<&Done> = done
        .iter()
        .filter(|d| {
            matches!(
                d.outcome,
                Outcome::Moved(_) | Outcome::Held { checked: true, .. }
            )
        })
        .collect();
    if checked.is_empty() {
        println!("\nNo key file was removed: no key was checked in the agent");
        return Ok(());
    }
    if !yes {
        print!(
            "\nDelete {} key file{} whose key is now in the agent? A deleted file cannot be restored. [y/N] ",
            checked.len(),
            if checked.len() == 1 { "" } else { "s" }
        );
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(|source| CliError::Io {
                doing: "cannot read the answer",
                source,
            })?;
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
            println!("\nThe key files were kept");
            return Ok(());
        }
    }
    println!();
    let mut failed = Vec::new();
    for d in checked {
        match std::fs::remove_file(&d.path) {
            Ok(()) => println!("Removed {}", d.path.display()),
            Err(e) => failed.push(format!("{}: {e}", d.path.display())),
        }
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(CliError::Refused(format!(
        "could not remove {}: the keys are in the agent; remove the files by hand",
        failed.join(", ")
    )))
}
