//! The read phase of the internal token (see [`crate::desired::access`]): the value of the
//! existing generated Secret, kept as it is, or a new random one when there is none.

use std::io::Read;

use dialtone_model::resources::CallCenter;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use super::watches::Stores;
use crate::desired::BuildError;
use crate::desired::access::{
    INTERNAL_TOKEN_KEY, MIN_INTERNAL_TOKEN_CHARS, generates_internal_token, token_in,
};
use crate::desired::common::Names;

/// Random bytes in a generated internal token (hex-encoded: twice as many characters).
pub const INTERNAL_TOKEN_BYTES: usize = 32;

/// Why the internal token could not be read or made.
#[derive(Debug, thiserror::Error)]
pub enum InternalTokenError {
    /// The generated Secret exists but holds no usable token: a user can fix that.
    #[error(
        "Secret {namespace}/{name} (the generated internal token) has no usable key \
         {INTERNAL_TOKEN_KEY:?} (at least {MIN_INTERNAL_TOKEN_CHARS} printable ASCII characters): \
         delete it and the operator generates a new one, or name your own Secret in \
         spec.access.internalTokenSecretRef"
    )]
    Unusable {
        /// The Secret's namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The CallCenter's name gives no valid object names (reported like a build error).
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The system's random source failed (retried).
    #[error("cannot read random bytes from /dev/urandom for the internal token: {0}")]
    Random(#[source] std::io::Error),
}

/// 32 bytes from the kernel's CSPRNG, as 64 lowercase hex digits.
pub fn random_token() -> Result<String, std::io::Error> {
    let mut bytes = [0u8; INTERNAL_TOKEN_BYTES];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The internal token the generated Secret must hold: the existing Secret's value (stable across
/// reconciles and operator restarts), or a new random one when the Secret does not exist yet.
/// `None` when the CallCenter names its own Secret (`spec.access.internalTokenSecretRef`).
pub fn internal_token(
    stores: &Stores,
    ns: &str,
    cc: &CallCenter,
) -> Result<Option<String>, InternalTokenError> {
    if !generates_internal_token(&cc.spec) {
        return Ok(None);
    }
    let names = Names::of(&cc.name_any())?;
    let existing = stores
        .secrets
        .get(&ObjectRef::new(&names.internal_token).within(ns));
    match existing {
        Some(secret) => token_in(&secret)
            .map(Some)
            .ok_or_else(|| InternalTokenError::Unusable {
                namespace: ns.to_owned(),
                name: names.internal_token.clone(),
            }),
        None => random_token().map(Some).map_err(InternalTokenError::Random),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_tokens_are_64_hex_digits_and_differ() {
        let a = random_token().expect("a token");
        let b = random_token().expect("a token");
        assert_eq!(a.len(), 2 * INTERNAL_TOKEN_BYTES);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }
}
