//! `Router` RPCs about agents' presence: SIP contacts (register, remove, look up, a node's
//! full sync), manual states, the live board and its update stream.

use std::sync::Arc;

use dialtone_proto::v1 as pb;
use tokio::sync::{broadcast, mpsc};
use tonic::{Request, Response, Status};

use super::BoxStream;
use super::convert::{self, from_ts, ts};
use super::core::{RouterCore, presence_status, required};
use crate::presence::{ContactAddr, Manual};

pub(super) fn register_contact(
    core: &Arc<RouterCore>,
    req: Request<pb::RegisterContactRequest>,
) -> Result<Response<pb::RegisterContactResponse>, Status> {
    let r = req.into_inner();
    let agent = if r.agent.is_empty() { &r.aor } else { &r.agent };
    required("agent", agent)?;
    required("uri", &r.uri)?;
    let expires = r.expires.as_ref().map_or(3600, convert::to_secs);
    let mut st = core.lock();
    let now = core.clock.now();
    let contacts = st
        .presence
        .register_via(
            agent,
            ContactAddr {
                uri: r.uri.clone(),
                source: r.source.clone(),
            },
            expires,
            &r.node_id,
            &r.node_address,
            now,
        )
        .map_err(presence_status)?;
    core.publish(&mut st, now);
    Ok(Response::new(pb::RegisterContactResponse {
        contacts: contacts.iter().map(convert::contact).collect(),
    }))
}

pub(super) fn remove_contact(
    core: &Arc<RouterCore>,
    req: Request<pb::RemoveContactRequest>,
) -> Result<Response<pb::RemoveContactResponse>, Status> {
    let r = req.into_inner();
    required("aor", &r.aor)?;
    let mut st = core.lock();
    let now = core.clock.now();
    let contacts = if r.uri.is_empty() {
        st.presence
            .unregister_all(&r.aor, now)
            .map_err(presence_status)?;
        Vec::new()
    } else {
        st.presence
            .unregister(&r.aor, &r.uri, now)
            .map_err(presence_status)?
    };
    core.publish(&mut st, now);
    Ok(Response::new(pb::RemoveContactResponse {
        contacts: contacts.iter().map(convert::contact).collect(),
    }))
}

pub(super) fn lookup_contacts(
    core: &Arc<RouterCore>,
    req: Request<pb::LookupContactsRequest>,
) -> Result<Response<pb::LookupContactsResponse>, Status> {
    let r = req.into_inner();
    let agent = if r.agent.is_empty() { &r.aor } else { &r.agent };
    required("agent", agent)?;
    let st = core.lock();
    let contacts = st
        .presence
        .contacts(agent, core.clock.now())
        .map_err(presence_status)?;
    Ok(Response::new(pb::LookupContactsResponse {
        contacts: contacts.iter().map(convert::contact).collect(),
    }))
}

pub(super) fn sync_contacts(
    core: &Arc<RouterCore>,
    req: Request<pb::SyncContactsRequest>,
) -> Result<Response<pb::SyncContactsResponse>, Status> {
    let r = req.into_inner();
    required("node_id", &r.node_id)?;
    let mut st = core.lock();
    let now = core.clock.now();
    let live: Vec<(&str, &pb::Contact, u32)> = r
        .contacts
        .iter()
        .filter_map(|c| {
            let agent = if c.agent.is_empty() { &c.aor } else { &c.agent };
            let expires = c
                .expires_at
                .as_ref()
                .and_then(from_ts)
                .map(|t| t.duration_since(now).as_secs())
                .unwrap_or(0);
            let expires = u32::try_from(expires).ok().filter(|e| *e > 0)?;
            Some((agent.as_str(), c, expires))
        })
        .collect();
    // The node lists everything it holds: what the router has for it beyond that lapsed
    // or was removed while the two were apart (the file restored at start included).
    let kept = live.iter().map(|(a, c, _)| (*a, c.uri.as_str())).collect();
    st.presence.retain_node_contacts(&r.node_id, &kept, now);
    for (agent, c, expires) in live {
        if let Err(e) = st.presence.register_via(
            agent,
            ContactAddr {
                uri: c.uri.clone(),
                source: c.source.clone(),
            },
            expires,
            &r.node_id,
            &c.node_address,
            now,
        ) {
            tracing::warn!(node = %r.node_id, error = %e, "contact from a node ignored");
        }
    }
    core.publish(&mut st, now);
    Ok(Response::new(pb::SyncContactsResponse {}))
}

pub(super) fn set_agent_state(
    core: &Arc<RouterCore>,
    req: Request<pb::SetAgentStateRequest>,
) -> Result<Response<pb::AgentPresence>, Status> {
    let r = req.into_inner();
    required("agent", &r.agent)?;
    let manual = match pb::AgentState::try_from(r.state) {
        Ok(pb::AgentState::Available) => Manual::Available,
        Ok(pb::AgentState::Dnd) => Manual::Dnd,
        Ok(pb::AgentState::Away) => Manual::Away(if r.away_label.is_empty() {
            "away".to_owned()
        } else {
            r.away_label.clone()
        }),
        Ok(pb::AgentState::Offline) => Manual::Offline,
        _ => {
            return Err(Status::invalid_argument(
                "state must be available, dnd, away or offline; ringing, on_call and \
                 wrap_up follow from calls",
            ));
        }
    };
    core.set_state(&r.agent, manual)?;
    tracing::info!(agent = %r.agent, by = %r.set_by, state = r.state, "agent state set");
    let board = core.live_board(false);
    board
        .agents
        .into_iter()
        .find(|a| a.agent == r.agent)
        .map(Response::new)
        .ok_or_else(|| Status::not_found(format!("no Agent named {:?}", r.agent)))
}

pub(super) fn get_live_board(
    core: &Arc<RouterCore>,
    req: Request<pb::GetLiveBoardRequest>,
) -> Result<Response<pb::LiveBoard>, Status> {
    Ok(Response::new(
        core.live_board(!req.into_inner().omit_contacts),
    ))
}

pub(super) fn watch_presence(
    core: &Arc<RouterCore>,
    req: Request<pb::WatchPresenceRequest>,
) -> Result<Response<BoxStream<pb::PresenceUpdate>>, Status> {
    let with_contacts = !req.into_inner().omit_contacts;
    let core = core.clone();
    let mut rx = core.subscribe();
    let (tx, out) = mpsc::channel::<Result<pb::PresenceUpdate, Status>>(64);
    tokio::spawn(async move {
        let first = pb::PresenceUpdate {
            at: Some(ts(core.clock.now())),
            revision: 0,
            update: Some(pb::presence_update::Update::Snapshot(
                core.live_board(with_contacts),
            )),
        };
        if tx.send(Ok(first)).await.is_err() {
            return;
        }
        loop {
            let next = match rx.recv().await {
                Ok(update) => update,
                // Fell behind: start over from a fresh snapshot rather than miss changes.
                Err(broadcast::error::RecvError::Lagged(_)) => pb::PresenceUpdate {
                    at: Some(ts(core.clock.now())),
                    revision: 0,
                    update: Some(pb::presence_update::Update::Snapshot(
                        core.live_board(with_contacts),
                    )),
                },
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if tx.send(Ok(next)).await.is_err() {
                return;
            }
        }
    });
    Ok(Response::new(Box::pin(
        tokio_stream::wrappers::ReceiverStream::new(out),
    )))
}
