//! REGISTER at the edge: the sans-IO [`Registrar`](crate::registrar::Registrar) decides
//! (digest authentication, rate limits, bindings); this file turns the request into its
//! input, sends its answer, exempts the registered address from flood bans, and makes the
//! router calls it asks for through the ordered report queue.
//!
//! The 200 is sent at once, from the registrar's own bindings, rather than after the
//! router's answer: a softphone must not lose its registration because the router is slow,
//! and the router re-learns this node's bindings from the report queue (and from
//! SyncContacts each time the node session opens).

use std::time::{Duration, Instant, SystemTime};

use dialtone_model::Snapshot;
use dialtone_proto::v1 as pb;
use rsipstack::sip::Request;

use super::actor::Node;
use super::events::duration;
use super::router::Report;
use crate::registrar::{RegisterOutcome, RegisterRequest, RouterCall, uri_user};
use crate::sip::transaction::TxId;
use crate::sip::{Peer, Transport};

impl Node {
    /// A REGISTER outside any dialog.
    pub(super) fn on_register(&mut self, tx: TxId, request: Box<Request>, source: Peer) {
        let span = tracing::info_span!("sip.register", %source);
        let _g = span.enter();
        let headers: Vec<(String, String)> = request
            .headers
            .iter()
            .filter_map(|h| {
                let text = h.to_string();
                let (n, v) = text.split_once(':')?;
                Some((n.trim().to_owned(), v.trim().to_owned()))
            })
            .collect();
        let parsed = RegisterRequest::from_headers(
            &request.uri.to_string(),
            headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            source.addr,
        );
        let register = match parsed {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(error = %e, "malformed REGISTER: 400");
                self.reply(tx, &request, 400, None, &[]);
                return;
            }
        };
        let snapshot = self.snapshot();
        let outcome = self
            .registrar
            .on_register(&register, &snapshot, SystemTime::now());
        let tag = self.layer.new_tag();
        let mut extra = outcome.headers();
        match &outcome {
            RegisterOutcome::Registered(r) => {
                tracing::info!(agent = %r.agent, aor = %r.aor, contacts = r.contacts.len(), "registered");
                let longest = r.contacts.iter().map(|c| c.expires).max().unwrap_or(0);
                if longest > 0 {
                    let until = Instant::now() + Duration::from_secs(u64::from(longest));
                    self.guard
                        .exempt_until(source.addr.ip(), until, Instant::now());
                }
                for call in r.router.clone() {
                    self.router_call(&snapshot, call, source);
                }
                extra.push((
                    "Date",
                    jiff::Timestamp::now()
                        .strftime("%a, %d %b %Y %H:%M:%S GMT")
                        .to_string(),
                ));
            }
            RegisterOutcome::Forbidden { cause } => {
                tracing::warn!(target: "security", %source, ?cause, "REGISTER refused: 403");
            }
            other => tracing::debug!(status = other.status(), "REGISTER answered"),
        }
        let extra: Vec<(&str, String)> = extra.iter().map(|(n, v)| (*n, v.clone())).collect();
        self.reply(tx, &request, outcome.status(), Some(&tag), &extra);
    }

    /// One router call the registrar asked for.
    pub(super) fn router_call(&mut self, snapshot: &Snapshot, call: RouterCall, source: Peer) {
        match call {
            RouterCall::Register {
                aor,
                agent,
                uri,
                expires,
                source: from,
                instance_id,
                user_agent,
                refresh: _,
            } => {
                let transport = match source.transport {
                    Transport::Udp => "udp",
                    Transport::Tcp => "tcp",
                };
                let req = pb::RegisterContactRequest {
                    aor,
                    agent,
                    uri,
                    expires: Some(duration(expires)),
                    node_id: self.cfg.node_id.clone(),
                    node_address: self.advertised_sip_address(),
                    source: from.to_string(),
                    transport: transport.to_owned(),
                    user_agent: user_agent.unwrap_or_default(),
                    instance_id: instance_id.unwrap_or_default(),
                };
                self.router.report(Report::Register(req));
            }
            RouterCall::Remove { aor, uri } => {
                // The router keys contacts by agent: name the agent whose SIP username the
                // canonical AOR carries.
                let user = uri_user(&aor).unwrap_or_default().to_owned();
                let agent = snapshot
                    .agents
                    .values()
                    .find(|a| a.sip.as_ref().is_some_and(|s| s.username == user))
                    .map_or(user, |a| a.name.clone());
                self.router.report(Report::Remove(pb::RemoveContactRequest {
                    aor: agent,
                    uri: uri.unwrap_or_default(),
                }));
            }
        }
    }

    /// The node session opened: tell the router every unexpired binding, replacing what it
    /// has for this node. Goes through the ordered report queue so that a REGISTER answered
    /// before this list reaches the router before it, and one answered after, after it.
    ///
    /// A node just started with nothing registered stays quiet: its empty list would only
    /// erase what the router restored from its file for this node's previous run, and
    /// those softphones are still reachable at their contact URIs until they refresh.
    pub(super) fn sync_contacts(&mut self, first_session: bool) {
        let bindings = self.registrar.bindings(SystemTime::now());
        if first_session && bindings.is_empty() {
            return;
        }
        let span = tracing::info_span!("router.sync_contacts", contacts = bindings.len());
        let _g = span.enter();
        let node_address = self.advertised_sip_address();
        let contacts = bindings
            .into_iter()
            .map(|b| pb::Contact {
                aor: b.aor,
                agent: b.agent,
                uri: b.uri,
                expires_at: Some(b.expires_at.into()),
                node_id: self.cfg.node_id.clone(),
                node_address: node_address.clone(),
                source: b.source.to_string(),
                user_agent: b.user_agent.unwrap_or_default(),
                instance_id: b.instance_id.unwrap_or_default(),
                ..Default::default()
            })
            .collect();
        self.router.sync(pb::SyncContactsRequest {
            node_id: self.cfg.node_id.clone(),
            contacts,
        });
    }

    /// The node's SIP address ("host:port") as the router hands it to other nodes.
    fn advertised_sip_address(&self) -> String {
        format!(
            "{}:{}",
            super::actor::host_text(self.cfg.advertised()),
            self.udp_port
        )
    }

    /// After a configuration change: drop bindings of agents that are gone, refresh the
    /// guard's carrier exemptions.
    pub(super) fn on_snapshot(&mut self) {
        let snapshot = self.snapshot();
        self.guard.update_from_snapshot(&snapshot);
        let calls = self.registrar.retain_agents(&snapshot);
        let none = Peer::udp(std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
        for call in calls {
            self.router_call(&snapshot, call, none);
        }
    }

    /// Housekeeping every few seconds: lapsed bindings, idle guard entries.
    pub(super) fn sweep(&mut self) {
        let dropped = self.registrar.expire(SystemTime::now());
        if !dropped.is_empty() {
            tracing::debug!(bindings = dropped.len(), "registrations lapsed");
        }
        self.guard.sweep(Instant::now());
    }
}
