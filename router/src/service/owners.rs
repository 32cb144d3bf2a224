//! `Router` RPCs about clients' owners: set one by API, or look one up (stored, else asked of
//! the CRM webhook with a deadline, so a slow CRM never holds a call).

use std::sync::Arc;
use std::time::Duration;

use dialtone_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::core::{Owner, RouterCore, owner_response, required};
use crate::owner::OwnerLookupError;
use crate::plan;

pub(super) fn set_owner(
    core: &Arc<RouterCore>,
    req: Request<pb::SetOwnerRequest>,
) -> Result<Response<pb::OwnerResponse>, Status> {
    let r = req.into_inner();
    required("client", &r.client)?;
    let client = plan::normalize_number(&r.client);
    let mut st = core.lock();
    let now = core.clock.now();
    if r.agent.is_empty() {
        st.owners.remove(&client);
        core.touch();
        return Ok(Response::new(pb::OwnerResponse {
            client,
            outcome: pb::OwnerLookupOutcome::NotFound as i32,
            ..Default::default()
        }));
    }
    if !st.applied.agents.contains_key(&r.agent) {
        return Err(Status::not_found(format!("no Agent named {:?}", r.agent)));
    }
    let owner = Owner {
        agent: r.agent.clone(),
        source: if r.set_by.is_empty() {
            "api".to_owned()
        } else {
            format!("api:{}", r.set_by)
        },
        set_at: now,
    };
    st.owners.insert(client.clone(), owner.clone());
    core.touch();
    Ok(Response::new(owner_response(&mut st, &client, &owner, now)))
}

pub(super) async fn get_owner(
    core: &Arc<RouterCore>,
    req: Request<pb::GetOwnerRequest>,
) -> Result<Response<pb::OwnerResponse>, Status> {
    let r = req.into_inner();
    required("client", &r.client)?;
    let client = plan::normalize_number(&r.client);
    // Stored owners answer at once; the CRM is asked only when none is stored.
    let (webhook, key) = {
        let mut st = core.lock();
        let now = core.clock.now();
        if let Some(owner) = st.owners.get(&client).cloned() {
            return Ok(Response::new(owner_response(&mut st, &client, &owner, now)));
        }
        if r.webhook.is_empty() {
            return Ok(Response::new(pb::OwnerResponse {
                client,
                outcome: pb::OwnerLookupOutcome::NotFound as i32,
                ..Default::default()
            }));
        }
        let cc = &st.applied.call_center;
        let hook = cc
            .spec
            .webhooks
            .iter()
            .find(|w| w.name == r.webhook)
            .ok_or_else(|| Status::not_found(format!("no webhook named {:?}", r.webhook)))?;
        (hook.url.clone(), cc.webhook_keys.get(&r.webhook).cloned())
    };
    let timeout = r
        .timeout
        .as_ref()
        .and_then(|d| Duration::try_from(*d).ok())
        .unwrap_or(Duration::from_millis(800));
    let span =
        tracing::info_span!("router.owner_lookup", call_id = %r.call_id, webhook = %r.webhook);
    let _guard = span.enter();
    let looked_up = tokio::time::timeout(
        timeout,
        core.owner_source
            .lookup(&webhook, key.as_deref(), &client, &r.call_id),
    )
    .await;
    let outcome = match looked_up {
        Err(_) => Err(OwnerLookupError::Timeout),
        Ok(result) => result,
    };
    let mut st = core.lock();
    let now = core.clock.now();
    Ok(Response::new(match outcome {
        Ok(Some(agent)) if st.applied.agents.contains_key(&agent) => {
            let owner = Owner {
                agent,
                source: format!("webhook:{}", r.webhook),
                set_at: now,
            };
            owner_response(&mut st, &client, &owner, now)
        }
        Ok(Some(unknown)) => {
            tracing::warn!(agent = %unknown, "the CRM named an owner who is not an Agent");
            pb::OwnerResponse {
                client,
                outcome: pb::OwnerLookupOutcome::NotFound as i32,
                ..Default::default()
            }
        }
        Ok(None) => pb::OwnerResponse {
            client,
            outcome: pb::OwnerLookupOutcome::NotFound as i32,
            ..Default::default()
        },
        Err(e) => {
            let outcome = match e {
                OwnerLookupError::Timeout => pb::OwnerLookupOutcome::Timeout,
                _ => pb::OwnerLookupOutcome::Error,
            };
            tracing::warn!(error = %e, "owner lookup failed; the call moves on");
            pb::OwnerResponse {
                client,
                outcome: outcome as i32,
                ..Default::default()
            }
        }
    }))
}
