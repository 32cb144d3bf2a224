//! Bridging an answered leg with the caller: the ACK of the leg's 2xx and the RTP relay
//! between the caller's and the leg's socket pairs.

use super::actor::{Input, Node};
use super::rtp::{RelayConfig, RelaySide, spawn_relay};
use super::sipmsg;

impl Node {
    /// Starts the RTP relay between the caller and leg `idx`.
    pub(super) fn bridge(&mut self, key: &str, idx: usize) {
        let inbox = self.inbox.clone();
        let inactivity = self.cfg.media_timeout;
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let caller_side = RelaySide {
            remote: call.media.negotiated.remote,
            codec: call.media.negotiated.codec,
            telephone_event: call.media.negotiated.telephone_event,
        };
        let Some(leg) = call.legs.get_mut(idx) else {
            return;
        };
        let (Some(n), Some(agent_pair), Some(caller_pair)) =
            (leg.negotiated, leg.pair.take(), call.media.pair.take())
        else {
            return;
        };
        let agent_side = RelaySide {
            remote: n.remote,
            codec: n.codec,
            telephone_event: n.telephone_event,
        };
        if agent_side.codec != caller_side.codec {
            tracing::info!(call_id = %key, caller = ?caller_side.codec, agent = ?agent_side.codec, "transcoding");
        }
        let call_key = key.to_owned();
        call.relay = Some(spawn_relay(
            caller_pair,
            agent_pair,
            RelayConfig {
                caller: caller_side,
                agent: agent_side,
                inactivity,
            },
            move || {
                let _ = inbox.try_send(Input::MediaTimeout { call: call_key });
            },
        ));
    }

    /// ACKs a 2xx on a leg (RFC 3261 §13.2.2.4), through the dialog's route.
    pub(super) fn ack_leg(&mut self, key: &str, idx: usize) {
        let Some(leg) = self.calls.get(key).and_then(|c| c.legs.get(idx)) else {
            return;
        };
        let Some(dialog) = leg.dialog.as_ref().and_then(|id| self.dialogs.get_mut(id)) else {
            return;
        };
        // Our INVITEs carry CSeq 1.
        let cseq = 1;
        let dest = sipmsg::peer_for_uri(&dialog.next_hop()).unwrap_or(leg.dest);
        match dialog.ack(cseq, None) {
            Ok(ack) => match self.layer.send_ack(ack, dest) {
                Ok(actions) => self.execute(actions),
                Err(e) => tracing::warn!(error = %e, "ACK not sent"),
            },
            Err(e) => tracing::warn!(error = %e, "ACK not built"),
        }
    }
}
