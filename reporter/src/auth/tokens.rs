//! The token store: which bearer tokens exist, whose they are and what they may do.
//!
//! Tokens come from two places, so that one store serves both modes:
//!
//! - `supervisor.token` in the data folder ([`SUPERVISOR_TOKEN_FILE`]): standalone mode writes
//!   it on first start and the CLI finds it there; it carries the supervisor role under the
//!   name `supervisor`.
//! - a tokens text of `name:role:token` lines: the key [`TOKENS_SECRET_KEY`] of a Secret the
//!   CallCenter references in a cluster (or the same text in a file). Blank lines and lines
//!   starting with `#` are comments.
//!
//! Only SHA-256 digests of the tokens are kept: a lookup hashes the presented token and looks
//! the digest up, so comparing never depends on how many leading characters of a real token
//! an attacker guessed, and a memory dump does not reveal the tokens.

use std::collections::HashMap;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::{Principal, Role};

/// The file standalone mode writes in the data folder, holding the supervisor's token.
pub const SUPERVISOR_TOKEN_FILE: &str = "supervisor.token";

/// The key of the tokens Secret (referenced by the CallCenter) whose value is the tokens text.
pub const TOKENS_SECRET_KEY: &str = "tokens";

/// The name the token of `supervisor.token` is known by (who handled a group, in reports).
pub const SUPERVISOR_NAME: &str = "supervisor";

/// Tokens shorter than this are refused: a token is the whole credential, so it must be too
/// long to guess within the login throttle's budget.
pub const MIN_TOKEN_LEN: usize = 16;

/// A SHA-256 digest of a token.
pub(crate) type TokenDigest = [u8; 32];

pub(crate) fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// Why tokens could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A line of a tokens text is wrong.
    #[error("{origin}:{line}: {message}")]
    Line {
        /// Where the text came from (a file path, `Secret/<name>`).
        origin: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong (never the token itself).
        message: String,
    },
}

/// Bearer tokens by digest. Build one, then hand it to [`super::Auth::new`] or
/// [`super::Auth::set_tokens`] (when a Secret changes).
#[derive(Debug, Clone, Default)]
pub struct TokenStore {
    by_digest: HashMap<TokenDigest, Principal>,
}

impl TokenStore {
    /// No tokens: nobody gets in.
    pub fn new() -> Self {
        Self::default()
    }

    /// The standalone store: `supervisor.token` in `data`.
    ///
    /// # Errors
    ///
    /// The file is missing, unreadable or holds a bad token.
    pub fn standalone(data: &Path) -> Result<Self, TokenError> {
        let mut store = Self::new();
        store.add_supervisor_file(&data.join(SUPERVISOR_TOKEN_FILE))?;
        Ok(store)
    }

    /// Adds one token.
    ///
    /// # Errors
    ///
    /// The name is empty or has characters other than letters, digits and `._@-`; the token
    /// is shorter than [`MIN_TOKEN_LEN`] or has whitespace; the same token is already given to
    /// someone else.
    pub fn add(&mut self, name: &str, role: Role, token: &str) -> Result<(), String> {
        let name_ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
        if !name_ok {
            return Err(format!(
                "name {name:?}: use letters, digits and . _ @ - only"
            ));
        }
        if token.chars().count() < MIN_TOKEN_LEN {
            return Err(format!(
                "the token of {name} is shorter than {MIN_TOKEN_LEN} characters"
            ));
        }
        if token.chars().any(char::is_whitespace) {
            return Err(format!("the token of {name} contains whitespace"));
        }
        let principal = Principal {
            name: name.to_owned(),
            role,
        };
        match self.by_digest.get(&digest(token)) {
            Some(existing) if *existing != principal => Err(format!(
                "the token of {name} is also given to {}",
                existing.name
            )),
            _ => {
                self.by_digest.insert(digest(token), principal);
                Ok(())
            }
        }
    }

    /// Adds the token of a `supervisor.token` file (its whole content, trimmed) with the
    /// supervisor role.
    ///
    /// # Errors
    ///
    /// As [`TokenStore::standalone`].
    pub fn add_supervisor_file(&mut self, path: &Path) -> Result<(), TokenError> {
        let text = read(path)?;
        self.add(SUPERVISOR_NAME, Role::Supervisor, text.trim())
            .map_err(|message| TokenError::Line {
                origin: path.display().to_string(),
                line: 1,
                message,
            })
    }

    /// Adds every `name:role:token` line of `text`; `source` names it in errors
    /// (`Secret/dashboard-tokens`, a path). The token is everything after the second colon.
    ///
    /// # Errors
    ///
    /// The first bad line: not three fields, an unknown role, or what [`TokenStore::add`]
    /// refuses. Nothing is added then.
    pub fn add_tokens_text(&mut self, text: &str, source: &str) -> Result<(), TokenError> {
        let mut next = self.clone();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |message: String| TokenError::Line {
                origin: source.to_owned(),
                line: i + 1,
                message,
            };
            let mut fields = line.splitn(3, ':');
            let (Some(name), Some(role), Some(token)) =
                (fields.next(), fields.next(), fields.next())
            else {
                return Err(bad("expected name:role:token".into()));
            };
            let role: Role = role.trim().parse().map_err(bad)?;
            next.add(name.trim(), role, token.trim()).map_err(bad)?;
        }
        *self = next;
        Ok(())
    }

    /// Adds the tokens file at `path` (the format of [`TokenStore::add_tokens_text`]).
    ///
    /// # Errors
    ///
    /// The file cannot be read, or a line is bad.
    pub fn add_tokens_file(&mut self, path: &Path) -> Result<(), TokenError> {
        let text = read(path)?;
        self.add_tokens_text(&text, &path.display().to_string())
    }

    /// How many tokens are known.
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    /// True when no token is known (nobody can sign in).
    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    /// Who holds `token`, with its digest (sessions remember it to die with the token).
    pub(crate) fn lookup(&self, token: &str) -> Option<(Principal, TokenDigest)> {
        let d = digest(token);
        self.by_digest.get(&d).map(|p| (p.clone(), d))
    }

    /// Whether a token with this digest still exists, still for `principal`.
    pub(crate) fn holds(&self, d: &TokenDigest, principal: &Principal) -> bool {
        self.by_digest.get(d) == Some(principal)
    }
}

fn read(path: &Path) -> Result<String, TokenError> {
    std::fs::read_to_string(path).map_err(|source| TokenError::Io {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_and_refuses_bad_ones_without_echoing_tokens() {
        let mut s = TokenStore::new();
        let text =
            "# team\n\nmarta:supervisor:0123456789abcdef0123\nivan:viewer:abc:def:0123456789\n";
        assert!(s.add_tokens_text(text, "Secret/t").is_ok());
        assert_eq!(s.len(), 2);
        assert_eq!(
            s.lookup("abc:def:0123456789").map(|(p, _)| p.role),
            Some(Role::Viewer)
        );
        let err = s
            .add_tokens_text("x:admin:0123456789abcdef", "Secret/t")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("Secret/t:1: unknown role \"admin\" (viewer or supervisor)")
        );
        let short = s.add_tokens_text("\nx:viewer:tiny9", "f").err();
        assert!(short.is_some_and(|e| {
            let e = e.to_string();
            !e.contains("tiny9") && e.starts_with("f:2: ")
        }));
    }
}
