//! Voicemail steps: the greeting, the beep, then the caller's message recorded to
//! `voicemail/<date>/<call>.wav` under the recordings folder until the caller hangs up,
//! `silenceSeconds` pass without voice, or `maxSeconds` is reached.
//!
//! The demo's greetings end with their own beep (`scripts/make-prompts.sh`), so the node adds
//! none after a greeting; with no greeting (or a greeting that cannot be read) it plays its
//! own. The message is announced with `voicemail_left` (path relative to the recordings
//! folder, duration) just before `call_ended`, so that the reporter marks the call
//! `voicemail: true`; a message without any voice is deleted and not announced.

use std::path::PathBuf;
use std::time::Duration;

use dialtone_model::snapshot::Step;
use dialtone_proto::v1 as pb;

use super::actor::Node;
use super::ending::Ending;
use super::events::from_duration;
use super::plan::Mode;
use super::record;
use super::session::{self, Cmd, Sound};

/// Where a voicemail step is.
#[derive(Debug)]
pub(super) struct VoicemailStage {
    /// The greeting's playlist id while it plays; `None` once the message is recorded.
    pub(super) greeting: Option<u64>,
    /// The greeting's prompt name (for VoicemailLeft).
    name: String,
    root: PathBuf,
    max: Duration,
    silence: Duration,
}

impl Node {
    /// A voicemail step. False when it cannot run: no recordings folder (the step is skipped,
    /// loudly), or the caller is gone.
    pub(super) fn start_voicemail(
        &mut self,
        key: &str,
        step: pb::VoicemailStep,
        index: u32,
    ) -> bool {
        let Some(root) = self.cfg.recordings_dir.clone() else {
            tracing::error!(call_id = %key, "voicemail step but no recordings folder configured: skipped");
            return false;
        };
        if !self.answer_caller(key) {
            return false;
        }
        let max = from_duration(step.max_length.as_ref())
            .filter(|d| !d.is_zero())
            .unwrap_or(self.cfg.voicemail_max);
        let silence = self
            .silence_of(key, index)
            .unwrap_or(self.cfg.voicemail_silence);
        let beep = Sound::Tone(session::beep());
        let once = if step.greeting.is_empty() {
            vec![beep.clone()]
        } else {
            vec![Sound::Prompt(step.greeting.clone())]
        };
        let Some(play) = self.play(key, once, None, Some(beep)) else {
            return false;
        };
        let Some(call) = self.calls.get_mut(key) else {
            return false;
        };
        call.phase = pb::CallPhase::Voicemail;
        call.exec.mode = Mode::Voicemail(VoicemailStage {
            greeting: Some(play),
            name: step.greeting,
            root,
            max,
            silence,
        });
        tracing::info!(call_id = %key, ?max, ?silence, "voicemail: greeting");
        true
    }

    /// The step's `silenceSeconds` from the snapshot (the plan does not carry it).
    fn silence_of(&self, key: &str, index: u32) -> Option<Duration> {
        let scheme = self.calls.get(key)?.exec.scheme.clone();
        let snapshot = self.snapshot();
        let step = snapshot
            .schemes
            .get(&scheme)?
            .steps
            .get(usize::try_from(index).ok()?)?;
        match step {
            Step::Voicemail {
                silence_seconds, ..
            } => Some(Duration::from_secs(u64::from(*silence_seconds))),
            _ => None,
        }
    }

    /// The greeting played: record the message.
    pub(super) fn start_message(&mut self, key: &str) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let Mode::Voicemail(stage) = &mut call.exec.mode else {
            return;
        };
        stage.greeting = None;
        let path = record::relative_path("voicemail", key);
        let (recorder, handle) = record::start(&stage.root, path, 1, Some(stage.max));
        let silence = stage.silence;
        if let Some(session) = &call.session {
            session.send(Cmd::Record { recorder, silence });
        }
        tracing::info!(call_id = %key, path = %handle.path, "voicemail: recording");
        call.voicemail = Some((handle, std::mem::take(&mut stage.name)));
    }

    /// The message ended by silence or its maximum length: we hang up.
    pub(super) fn voicemail_stopped(&mut self, key: &str, silence: bool) {
        let reason = if silence {
            "voicemail ended by silence"
        } else {
            "voicemail reached its maximum length"
        };
        self.end_call(
            key,
            Ending {
                party: pb::HangupParty::System,
                disposition: pb::CallDisposition::Voicemail,
                sip_code: 0,
                reason: reason.into(),
                cancel_cause: pb::LegCancelCause::System,
            },
        );
    }
}
