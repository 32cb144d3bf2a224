//! What survives a router restart: agents' own choices (DND, away, logged out), their
//! registrations, and client owners — written to a small JSON file on every change.
//!
//! Registrations are also re-learned from the media nodes (`SyncContacts` when a node
//! reconnects), but a node cannot know an agent chose DND, so the file is the source for
//! choices. Writes are debounced and atomic (temporary file + rename), so a crash mid-write
//! leaves the previous file intact.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::presence::{Contact, ContactAddr, Manual, Presence};

/// The file's format version; a file of another version is ignored with a warning.
const VERSION: u32 = 1;

/// The persisted state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Persisted {
    /// Format version.
    pub version: u32,
    /// Agents' choices and registrations.
    pub agents: Vec<PersistedAgent>,
    /// Client → owner.
    pub owners: Vec<PersistedOwner>,
}

/// One agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PersistedAgent {
    /// Agent name.
    pub agent: String,
    /// `available`, `dnd`, `away` or `offline`.
    pub choice: String,
    /// The away label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub away_label: Option<String>,
    /// Live registrations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<PersistedContact>,
}

/// One registration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PersistedContact {
    /// Contact URI.
    pub uri: String,
    /// Media node holding it.
    pub node: String,
    /// That node's SIP address (absent in files written before it was kept).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_address: String,
    /// Source address.
    pub source: String,
    /// When it expires.
    pub expires_at: Timestamp,
}

/// One owner.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PersistedOwner {
    /// Client number.
    pub client: String,
    /// Owning agent.
    pub agent: String,
    /// Who set it.
    pub source: String,
    /// When.
    pub set_at: Timestamp,
}

/// Reading or writing the file failed.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not our JSON.
    #[error("{path}: not a router state file ({source}); it is ignored")]
    Format {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
}

/// Captures presence (choices and live registrations) and owners.
pub fn capture(
    presence: &Presence,
    owners: impl Iterator<Item = PersistedOwner>,
    now: Timestamp,
) -> Persisted {
    let agents = presence
        .agent_names()
        .into_iter()
        .map(|agent| {
            let (choice, away_label) = match presence.manual(&agent) {
                Some(Manual::Dnd) => ("dnd", None),
                Some(Manual::Away(label)) => ("away", Some(label.clone())),
                Some(Manual::Offline) => ("offline", None),
                Some(Manual::Available) | None => ("available", None),
            };
            let contacts = presence
                .contacts(&agent, now)
                .unwrap_or_default()
                .into_iter()
                .map(|c: Contact| PersistedContact {
                    uri: c.uri,
                    node: c.node,
                    node_address: c.node_address,
                    source: c.source,
                    expires_at: c.expires_at,
                })
                .collect();
            PersistedAgent {
                agent,
                choice: choice.to_owned(),
                away_label,
                contacts,
            }
        })
        .collect();
    Persisted {
        version: VERSION,
        agents,
        owners: owners.collect(),
    }
}

/// Applies a persisted state to presence: choices, then registrations that have not expired.
/// Agents no longer in the configuration are skipped.
pub fn restore(persisted: &Persisted, presence: &mut Presence, now: Timestamp) {
    for a in &persisted.agents {
        let manual = match a.choice.as_str() {
            "dnd" => Manual::Dnd,
            "away" => Manual::Away(a.away_label.clone().unwrap_or_else(|| "away".to_owned())),
            "offline" => Manual::Offline,
            _ => Manual::Available,
        };
        if presence.set_state(&a.agent, manual, now).is_err() {
            continue;
        }
        for c in &a.contacts {
            let left = c.expires_at.duration_since(now).as_secs();
            let Ok(left) = u32::try_from(left) else {
                continue;
            };
            if left == 0 {
                continue;
            }
            let addr = ContactAddr {
                uri: c.uri.clone(),
                source: c.source.clone(),
            };
            let _ = presence.register_via(&a.agent, addr, left, &c.node, &c.node_address, now);
        }
    }
}

/// Reads the file; `Ok(None)` when there is none yet.
pub fn read(path: &Path) -> Result<Option<Persisted>, PersistError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(PersistError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let p: Persisted = serde_json::from_str(&text).map_err(|source| PersistError::Format {
        path: path.to_owned(),
        source,
    })?;
    Ok((p.version == VERSION).then_some(p))
}

/// Writes the file atomically.
pub fn write(path: &Path, state: &Persisted) -> Result<(), PersistError> {
    let io = |source| PersistError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(state).map_err(|source| PersistError::Format {
        path: path.to_owned(),
        source,
    })?;
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
