//! Bridging an answered leg with the caller: the ACK of the leg's 2xx and the RTP relay
//! between the caller's and the leg's socket pairs (run by the call's media task, which has
//! held the caller's sockets since the INVITE).

use dialtone_proto::v1 as pb;

use super::actor::Node;
use super::record;
use super::rtp::RelaySide;
use super::session::Cmd;
use super::sipmsg;

impl Node {
    /// Turns the caller's media task into the relay between the caller and leg `idx`, with
    /// the call recording when the number's policy asks for one (and a recordings folder is
    /// configured).
    pub(super) fn bridge(&mut self, key: &str, idx: usize) {
        let root = self.cfg.recordings_dir.clone();
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let caller_codec = call.media.negotiated.codec;
        let policy = call
            .plan
            .as_ref()
            .and_then(|p| p.recording)
            .unwrap_or_default();
        let Some(leg) = call.legs.get_mut(idx) else {
            return;
        };
        let (Some(n), Some(agent_pair)) = (leg.negotiated, leg.pair.take()) else {
            return;
        };
        let agent_side = RelaySide {
            remote: n.remote,
            codec: n.codec,
            telephone_event: n.telephone_event,
        };
        if agent_side.codec != caller_codec {
            tracing::info!(call_id = %key, caller = ?caller_codec, agent = ?agent_side.codec, "transcoding");
        }
        let mode = pb::RecordingMode::try_from(policy.mode).unwrap_or(pb::RecordingMode::None);
        let limit = super::events::from_duration(policy.limit.as_ref());
        let recorder = match (mode, root) {
            (pb::RecordingMode::Full, Some(root)) => Some((root, None)),
            (pb::RecordingMode::First, Some(root)) if limit.is_some_and(|l| !l.is_zero()) => {
                Some((root, limit))
            }
            (pb::RecordingMode::Full | pb::RecordingMode::First, None) => {
                tracing::warn!(call_id = %key, "the number records calls but no recordings folder is configured");
                None
            }
            _ => None,
        }
        .map(|(root, limit)| {
            let path = record::relative_path("calls", key);
            let (recorder, handle) = record::start(&root, path, 2, limit);
            call.recording = Some((handle, mode));
            recorder
        });
        call.ringback = false;
        match &call.session {
            Some(session) => session.send(Cmd::Bridge {
                agent: agent_pair,
                side: agent_side,
                recorder,
            }),
            None => tracing::warn!(call_id = %key, "no caller media to bridge"),
        }
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
