//! Access control in a cluster (`spec.access`): the internal token the components show each
//! other, and the dashboard / client API credentials.
//!
//! - **Internal token.** The router's and the reporter's internal gRPC services (Router, Ingest)
//!   accept a peer only when it shows the shared token; without one they accept loopback peers
//!   only, which in a cluster means nobody. So every component gets the same token as
//!   `DIALTONE_INTERNAL_TOKEN`, through a `secretKeyRef` (the value never appears in a pod
//!   template). It comes from `spec.access.internalTokenSecretRef`, or else from a Secret the
//!   operator generates once, `<callcenter>-internal-token` (key [`INTERNAL_TOKEN_KEY`], 32
//!   random bytes in hex), owned by the CallCenter. The generated value must never change under
//!   running pods (each pod read it at start), so the reconcile reads the existing Secret and
//!   builds the desired one from its value ([`internal_token_secret`] is pure: the value is an
//!   input), and the Secret is applied create-only ([`super::DesiredObject::GeneratedSecret`]).
//!   To rotate it: delete the Secret (the operator generates a new one), then restart the
//!   router, reporter and media-node Deployments.
//! - **Tokens.** `spec.access.tokensSecretRef` names a key holding `name:role:token` lines; the
//!   reporter (dashboard, Reports API) and the router (CallControl API) get it as a file
//!   ([`TOKENS_DIR`]`/`[`TOKENS_FILE`], `DIALTONE_TOKENS_FILE`), mounted from the Secret by the
//!   kubelet. Media nodes never see it.

use std::collections::BTreeMap;

use dialtone_model::resources::{CallCenter, CallCenterSpec};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    EnvVar, EnvVarSource, KeyToPath, Secret, SecretKeySelector, SecretVolumeSource, Volume,
    VolumeMount,
};

use super::BuildError;
use super::common::{Component, Names, Owner, env, mount};

/// The environment variable holding the internal token.
pub const INTERNAL_TOKEN_ENV: &str = "DIALTONE_INTERNAL_TOKEN";
/// The environment variable naming the tokens file.
pub const TOKENS_FILE_ENV: &str = "DIALTONE_TOKENS_FILE";
/// The key of the generated internal-token Secret.
pub const INTERNAL_TOKEN_KEY: &str = "token";
/// Where the tokens Secret's key is mounted.
pub const TOKENS_DIR: &str = "/etc/dialtone/tokens";
/// The file name of the tokens inside [`TOKENS_DIR`].
pub const TOKENS_FILE: &str = "tokens";
/// Shortest internal token the operator accepts from an existing generated Secret.
pub const MIN_INTERNAL_TOKEN_CHARS: usize = 16;

/// Whether the operator generates the internal token (no `internalTokenSecretRef`).
pub fn generates_internal_token(spec: &CallCenterSpec) -> bool {
    spec.access
        .as_ref()
        .and_then(|a| a.internal_token_secret_ref.as_ref())
        .is_none()
}

/// Where the components' internal token comes from: the user's Secret key, or the generated
/// Secret's [`INTERNAL_TOKEN_KEY`].
pub fn internal_token_selector(names: &Names, spec: &CallCenterSpec) -> SecretKeySelector {
    match spec
        .access
        .as_ref()
        .and_then(|a| a.internal_token_secret_ref.as_ref())
    {
        Some(r) => SecretKeySelector {
            name: r.name.clone(),
            key: r.key.clone(),
            optional: Some(false),
        },
        None => SecretKeySelector {
            name: names.internal_token.clone(),
            key: INTERNAL_TOKEN_KEY.to_owned(),
            optional: Some(false),
        },
    }
}

/// `DIALTONE_INTERNAL_TOKEN` from the internal token's Secret. Not optional: a component
/// without the token could not reach the router or the reporter, so its pod waits for the
/// Secret instead of starting half-connected.
pub fn internal_token_env(names: &Names, spec: &CallCenterSpec) -> EnvVar {
    EnvVar {
        name: INTERNAL_TOKEN_ENV.to_owned(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(internal_token_selector(names, spec)),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// The tokens file of the reporter and the router, when `spec.access.tokensSecretRef` is set:
/// the volume (the one key, as [`TOKENS_FILE`]), its read-only mount at [`TOKENS_DIR`], and
/// `DIALTONE_TOKENS_FILE`. A whole-folder mount (no `subPath`), so the kubelet keeps the file
/// current when the Secret changes.
pub fn tokens_file(spec: &CallCenterSpec) -> Option<(Volume, VolumeMount, EnvVar)> {
    let r = spec.access.as_ref()?.tokens_secret_ref.as_ref()?;
    let volume = Volume {
        name: "tokens".to_owned(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(r.name.clone()),
            items: Some(vec![KeyToPath {
                key: r.key.clone(),
                path: TOKENS_FILE.to_owned(),
                mode: None,
            }]),
            default_mode: Some(0o440),
            optional: Some(false),
        }),
        ..Volume::default()
    };
    Some((
        volume,
        mount("tokens", TOKENS_DIR, true),
        env(TOKENS_FILE_ENV, format!("{TOKENS_DIR}/{TOKENS_FILE}")),
    ))
}

/// The internal token held by an existing generated Secret, if it holds a usable one (at least
/// [`MIN_INTERNAL_TOKEN_CHARS`] printable ASCII characters under [`INTERNAL_TOKEN_KEY`]).
pub fn token_in(secret: &Secret) -> Option<String> {
    let from_data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(INTERNAL_TOKEN_KEY))
        .and_then(|v| String::from_utf8(v.0.clone()).ok());
    let from_string_data = || {
        secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(INTERNAL_TOKEN_KEY).cloned())
    };
    let token = from_data.or_else(from_string_data)?;
    let token = token.trim();
    (token.len() >= MIN_INTERNAL_TOKEN_CHARS && token.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| token.to_owned())
}

/// The generated internal-token Secret holding `token`, or `None` when the CallCenter names
/// its own (`spec.access.internalTokenSecretRef`). Pure: the reconcile passes the existing
/// Secret's value, or a freshly generated one when there is none.
pub fn internal_token_secret(cc: &CallCenter, token: &str) -> Result<Option<Secret>, BuildError> {
    if !generates_internal_token(&cc.spec) {
        return Ok(None);
    }
    let owner = Owner::of(cc)?;
    let names = Names::of(&owner.name)?;
    Ok(Some(Secret {
        metadata: owner.meta(&names.internal_token, Component::Access),
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            INTERNAL_TOKEN_KEY.to_owned(),
            ByteString(token.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }))
}
