//! Builders of realistic call-event streams, as a media node would emit them (a copy of the
//! reporter's test builder, `reporter/tests/support/mod.rs`, which a benchmark cannot import): `inbound("c1").from(..).to(..).at(..).open("ads").ring(&["anna"])...`.
//!
//! Every method appends the events of one step and advances the call's clock where the step
//! takes time (`wait`). Legs are addressed by agent name (or `"client"` / a number for legs
//! without an agent). The builder also tracks the call's phase and the legs still ringing, so
//! that `caller_hangs_up` / `answer` / `timeout` emit exactly the cancels a media node would.

use dialtone_proto::v1::{self, call_event::Kind};
use dialtone_reporter::time::to_proto_timestamp;
use jiff::{SignedDuration, Timestamp};

/// Parses an RFC 3339 instant.
pub fn t(s: &str) -> Timestamp {
    s.parse().expect("valid RFC 3339 instant")
}

/// Our two numbers (demo manifests): `main-line` (welcome + menu) and `ads-landing` (sales).
pub const MAIN: &str = "+380441234567";
/// The ads landing number.
pub const ADS: &str = "+380441234568";

fn name_of(number: &str) -> String {
    // The synthetic PhoneNumbers are named `n{index}` (see `synth::call_center`).
    let index: u64 = number
        .trim_start_matches("+38044")
        .parse()
        .unwrap_or_default();
    format!("n{index}")
}

/// A call being built.
#[derive(Debug, Clone)]
pub struct CallBuilder {
    call_id: String,
    direction: v1::Direction,
    caller: String,
    number: String,
    agent: String,
    callback_id: String,
    anonymous: bool,
    clock: Timestamp,
    seq: u64,
    events: Vec<v1::CallEvent>,
    phase: v1::CallPhase,
    /// (key, leg id, still ringing)
    legs: Vec<(String, String, bool)>,
}

/// An inbound call.
pub fn inbound(call_id: &str) -> CallBuilder {
    CallBuilder::new(call_id, v1::Direction::Inbound)
}

/// An outbound call (an agent dialling out, or a callback).
pub fn outbound(call_id: &str) -> CallBuilder {
    CallBuilder::new(call_id, v1::Direction::Outbound)
}

impl CallBuilder {
    fn new(call_id: &str, direction: v1::Direction) -> Self {
        CallBuilder {
            call_id: call_id.to_owned(),
            direction,
            caller: String::new(),
            number: String::new(),
            agent: String::new(),
            callback_id: String::new(),
            anonymous: false,
            clock: Timestamp::UNIX_EPOCH,
            seq: 0,
            events: Vec::new(),
            phase: v1::CallPhase::Routing,
            legs: Vec::new(),
        }
    }

    fn push(mut self, kind: Kind) -> Self {
        self.seq += 1;
        self.events.push(v1::CallEvent {
            event_id: format!("{}-e{}", self.call_id, self.seq),
            call_id: self.call_id.clone(),
            node_id: "media-node-0".into(),
            sequence: self.seq,
            at: Some(to_proto_timestamp(self.clock)),
            trace_id: format!("{:0>32}", self.call_id.len()),
            kind: Some(kind),
        });
        self
    }

    fn leg_id(&self, key: &str) -> String {
        self.legs
            .iter()
            .rev()
            .find(|(k, _, _)| k == key)
            .map(|(_, id, _)| id.clone())
            .unwrap_or_else(|| panic!("no leg {key} in {}", self.call_id))
    }

    fn settle(&mut self, key: &str) {
        if let Some(leg) = self.legs.iter_mut().rev().find(|(k, _, _)| k == key) {
            leg.2 = false;
        }
    }

    fn ringing(&self) -> Vec<String> {
        self.legs
            .iter()
            .filter(|(_, _, open)| *open)
            .map(|(k, _, _)| k.clone())
            .collect()
    }

    // ---- who and when ----

    /// The client's number (inbound) / our caller ID (outbound).
    pub fn from(mut self, number: &str) -> Self {
        self.caller = number.to_owned();
        self
    }

    /// Our number (inbound) / the client's number (outbound).
    pub fn to(mut self, number: &str) -> Self {
        self.number = number.to_owned();
        self
    }

    /// A withheld number.
    pub fn anonymous(mut self) -> Self {
        self.anonymous = true;
        self.caller.clear();
        self
    }

    /// Outbound: the agent who dials (or for whom the callback rings).
    pub fn by(mut self, agent: &str) -> Self {
        self.agent = agent.to_owned();
        self
    }

    /// Outbound: the callback id this call carries out.
    pub fn callback(mut self, id: &str) -> Self {
        self.callback_id = id.to_owned();
        self
    }

    /// The INVITE arrives (or leaves) at `at`: `CallStarted`.
    pub fn at(self, at: &str) -> Self {
        self.at_instant(t(at))
    }

    /// [`CallBuilder::at`] with an instant.
    pub fn at_instant(mut self, at: Timestamp) -> Self {
        self.clock = at;
        let started = v1::CallStarted {
            caller: self.caller.clone(),
            number: self.number.clone(),
            direction: self.direction as i32,
            carrier: "primary-trunk".into(),
            anonymous: self.anonymous,
            agent: self.agent.clone(),
            callback_id: self.callback_id.clone(),
            sip_call_id: format!("{}@carrier", self.call_id),
            ..Default::default()
        };
        self.push(Kind::CallStarted(started))
    }

    /// Time passes.
    pub fn wait(mut self, secs: f64) -> Self {
        self.clock += SignedDuration::try_from_secs_f64(secs).expect("a sane duration");
        self
    }

    // ---- routing ----

    fn route(self, state: v1::ScheduleState, scheme: &str) -> Self {
        let number_name = name_of(&self.number);
        self.push(Kind::RouteSelected(v1::RouteSelected {
            number_name,
            schedule_state: state as i32,
            schedule: "office-hours".into(),
            scheme: scheme.into(),
            backup: false,
            backup_reason: String::new(),
            config_version: "v1".into(),
        }))
    }

    /// Open hours: the number's open route.
    pub fn open(self, scheme: &str) -> Self {
        self.route(v1::ScheduleState::Open, scheme)
    }

    /// Closed: the closed route (after-hours).
    pub fn closed(self) -> Self {
        self.route(v1::ScheduleState::Closed, "after-hours")
    }

    /// Holiday: the holiday route.
    pub fn holiday(self) -> Self {
        self.route(v1::ScheduleState::Holiday, "after-hours")
    }

    /// No scheme resolves: the call is ended at once with 480.
    pub fn no_scheme(self, state: v1::ScheduleState) -> Self {
        let number_name = name_of(&self.number);
        self.push(Kind::NoForwardingScheme(v1::NoForwardingScheme {
            number_name,
            schedule_state: state as i32,
            detail: "scheme sales: queue support not found".into(),
        }))
        .end(
            v1::HangupParty::System,
            v1::CallDisposition::NoForwardingScheme,
            480,
        )
    }

    /// Blocklisted: rejected with 403.
    pub fn blocked(self) -> Self {
        self.push(Kind::CallBlocked(v1::CallBlocked {
            reason: "spam calls".into(),
            blocklist: "spam".into(),
            entry: "+38050999".into(),
        }))
        .end(v1::HangupParty::System, v1::CallDisposition::Blocked, 403)
    }

    // ---- prompts and menus ----

    /// The welcome prompt plays for `secs` to its end.
    pub fn welcome(mut self, secs: f64) -> Self {
        self.phase = v1::CallPhase::Welcome;
        let prompt = || "welcome".to_owned();
        self = self
            .push(Kind::WelcomeStarted(v1::WelcomeStarted {
                prompt: prompt(),
            }))
            .wait(secs)
            .push(Kind::WelcomeFinished(v1::WelcomeFinished {
                prompt: prompt(),
            }));
        self.phase = v1::CallPhase::Routing;
        self
    }

    /// The welcome prompt starts (and is still playing).
    pub fn welcome_starts(mut self) -> Self {
        self.phase = v1::CallPhase::Welcome;
        self.push(Kind::WelcomeStarted(v1::WelcomeStarted {
            prompt: "welcome".into(),
        }))
    }

    /// The menu starts; after `secs` the caller presses `digit`, taking an option.
    pub fn menu(mut self, secs: f64, digit: &str, target: &str) -> Self {
        self = self.menu_starts().wait(secs);
        self = self
            .push(Kind::MenuDigit(v1::MenuDigit {
                digit: digit.into(),
            }))
            .push(Kind::MenuLeft(v1::MenuLeft {
                exit: v1::MenuExit::Option as i32,
                digits: digit.into(),
                target: target.into(),
            }));
        self.phase = v1::CallPhase::Routing;
        self
    }

    /// The menu starts (and waits).
    pub fn menu_starts(mut self) -> Self {
        self.phase = v1::CallPhase::Menu;
        self.push(Kind::StepEntered(v1::StepEntered {
            scheme: "main-menu".into(),
            step_index: 0,
            kind: v1::StepKind::Menu as i32,
        }))
        .push(Kind::MenuEntered(v1::MenuEntered {
            scheme: "main-menu".into(),
            step_index: 0,
            prompt: "main-menu".into(),
        }))
    }

    /// The call joins a queue.
    pub fn queue(mut self, name: &str) -> Self {
        self.phase = v1::CallPhase::Queue;
        self.push(Kind::QueueJoined(v1::QueueJoined {
            queue: name.into(),
            position: 1,
        }))
    }

    // ---- legs ----

    fn create_leg(
        mut self,
        key: &str,
        agent: &str,
        destination: &str,
        kind: v1::DestinationKind,
    ) -> Self {
        if self.phase != v1::CallPhase::Queue {
            self.phase = v1::CallPhase::Ringing;
        }
        let leg_id = format!("{}-leg{}", self.call_id, self.legs.len() + 1);
        self.legs.push((key.to_owned(), leg_id.clone(), true));
        self.push(Kind::LegCreated(v1::LegCreated {
            leg_id,
            agent: agent.into(),
            destination: destination.into(),
            destination_kind: kind as i32,
            carrier: String::new(),
            queue: String::new(),
            owner: false,
        }))
    }

    /// Rings each agent's softphone (simultaneously).
    pub fn ring(mut self, agents: &[&str]) -> Self {
        for agent in agents {
            self = self.create_leg(
                agent,
                agent,
                &format!("sip:{agent}@10.0.0.5"),
                v1::DestinationKind::Softphone,
            );
        }
        self
    }

    /// Rings an agent's mobile (a second leg of the same agent, keyed `key`).
    pub fn ring_mobile(self, key: &str, agent: &str, mobile: &str) -> Self {
        self.create_leg(key, agent, mobile, v1::DestinationKind::Number)
    }

    /// Outbound: dials the client (leg keyed `"client"`).
    pub fn dial_client(self) -> Self {
        let number = self.number.clone();
        self.create_leg("client", "", &number, v1::DestinationKind::Number)
    }

    /// 180 Ringing on a leg.
    pub fn alert(self, key: &str) -> Self {
        let leg_id = self.leg_id(key);
        self.push(Kind::LegAlerting(v1::LegAlerting {
            leg_id,
            sip_code: 180,
        }))
    }

    /// 183 Session Progress on a leg.
    pub fn progress(self, key: &str) -> Self {
        let leg_id = self.leg_id(key);
        self.push(Kind::LegAlerting(v1::LegAlerting {
            leg_id,
            sip_code: 183,
        }))
    }

    /// 200 OK on a leg, without bridging (outbound: the agent picks up before the client is
    /// dialled).
    pub fn pick_up(mut self, key: &str) -> Self {
        let leg_id = self.leg_id(key);
        self.settle(key);
        self = self.push(Kind::LegAnswered(v1::LegAnswered { leg_id }));
        self
    }

    /// A leg answers: the other ringing legs are cancelled (a colleague answered) and media is
    /// bridged.
    pub fn answer(mut self, key: &str) -> Self {
        let leg_id = self.leg_id(key);
        self.settle(key);
        self = self.push(Kind::LegAnswered(v1::LegAnswered {
            leg_id: leg_id.clone(),
        }));
        for other in self.ringing() {
            self = self.cancel(&other, v1::LegCancelCause::ColleagueAnswered);
        }
        let agent = self
            .events
            .iter()
            .find_map(|e| match &e.kind {
                Some(Kind::LegCreated(c)) if c.leg_id == leg_id => Some(c.agent.clone()),
                _ => None,
            })
            .unwrap_or_default();
        self.phase = v1::CallPhase::Bridged;
        self.push(Kind::Bridged(v1::Bridged { leg_id, agent }))
    }

    /// A final failure on a leg (486 busy / declined, 603, 408, 480, 404, 0 unreachable...).
    pub fn fail(mut self, key: &str, sip_code: u32) -> Self {
        let leg_id = self.leg_id(key);
        self.settle(key);
        self.push(Kind::LegFailed(v1::LegFailed {
            leg_id,
            sip_code,
            reason: "failed".into(),
        }))
    }

    /// Dialtone cancels a leg.
    pub fn cancel(mut self, key: &str, cause: v1::LegCancelCause) -> Self {
        let leg_id = self.leg_id(key);
        self.settle(key);
        self.push(Kind::LegCancelled(v1::LegCancelled {
            leg_id,
            cause: cause as i32,
        }))
    }

    /// The ring step's timeout: every ringing leg is cancelled.
    pub fn timeout(mut self) -> Self {
        for key in self.ringing() {
            self = self.cancel(&key, v1::LegCancelCause::Timeout);
        }
        self.phase = v1::CallPhase::Routing;
        self
    }

    // ---- endings ----

    /// `CallEnded`.
    pub fn end(
        self,
        party: v1::HangupParty,
        disposition: v1::CallDisposition,
        sip_code: u32,
    ) -> Self {
        self.push(Kind::CallEnded(v1::CallEnded {
            hangup_party: party as i32,
            disposition: disposition as i32,
            sip_code,
            reason: String::new(),
        }))
    }

    /// The caller hangs up before being bridged: ringing legs are cancelled, `CallerHungUp`
    /// names the phase, the call ends.
    pub fn caller_hangs_up(mut self) -> Self {
        for key in self.ringing() {
            self = self.cancel(&key, v1::LegCancelCause::CallerHungUp);
        }
        let phase = self.phase;
        self.push(Kind::CallerHungUp(v1::CallerHungUp {
            phase: phase as i32,
        }))
        .end(v1::HangupParty::Client, v1::CallDisposition::Abandoned, 0)
    }

    /// The plan ran out (or a hangup step): Dialtone ends the call.
    pub fn system_hangs_up(self) -> Self {
        self.push(Kind::StepEntered(v1::StepEntered {
            scheme: "sales".into(),
            step_index: 9,
            kind: v1::StepKind::Hangup as i32,
        }))
        .end(v1::HangupParty::System, v1::CallDisposition::NotAnswered, 0)
    }

    /// After `secs` of talk, `party` hangs up a bridged call; the recording is saved.
    pub fn talk(self, secs: f64, party: v1::HangupParty) -> Self {
        let path = format!("recordings/{}.wav", self.call_id);
        self.wait(secs)
            .push(Kind::Recording(v1::RecordingSaved {
                path,
                duration: Some(prost_types::Duration {
                    seconds: secs as i64,
                    nanos: 0,
                }),
                mode: v1::RecordingMode::Full as i32,
            }))
            .end(party, v1::CallDisposition::Answered, 0)
    }

    /// The voicemail step: the greeting plays, the caller records `secs`, hangs up.
    pub fn voicemail(mut self, greeting_secs: f64, secs: f64) -> Self {
        self.phase = v1::CallPhase::Voicemail;
        let path = format!("voicemail/{}.wav", self.call_id);
        self.push(Kind::StepEntered(v1::StepEntered {
            scheme: "sales".into(),
            step_index: 3,
            kind: v1::StepKind::Voicemail as i32,
        }))
        .wait(greeting_secs + secs)
        .push(Kind::VoicemailLeft(v1::VoicemailLeft {
            path,
            duration: Some(prost_types::Duration {
                seconds: secs as i64,
                nanos: 0,
            }),
            greeting: "sales-voicemail-greeting".into(),
        }))
        .end(v1::HangupParty::Client, v1::CallDisposition::Voicemail, 0)
    }

    /// The queue caller presses the callback digit and hangs up.
    pub fn chooses_callback(mut self, callback_id: &str, queue: &str) -> Self {
        for key in self.ringing() {
            self = self.cancel(&key, v1::LegCancelCause::CallerHungUp);
        }
        let to = self.caller.clone();
        let caller_id = self.number.clone();
        self.push(Kind::CallbackOrdered(v1::CallbackOrdered {
            callback_id: callback_id.into(),
            origin: v1::CallbackOrigin::Queue as i32,
            agent: String::new(),
            to,
            caller_id,
            ordered_by: "queue".into(),
            queue: queue.into(),
        }))
        .push(Kind::QueueLeft(v1::QueueLeft {
            queue: queue.into(),
            reason: v1::QueueLeaveReason::Callback as i32,
            waited: None,
        }))
        .end(
            v1::HangupParty::Client,
            v1::CallDisposition::CallbackChosen,
            0,
        )
    }

    /// Outbound: the client leg failed on every carrier with `sip_code`.
    pub fn client_fails(self, sip_code: u32) -> Self {
        self.fail("client", sip_code).end(
            v1::HangupParty::System,
            v1::CallDisposition::Failed,
            sip_code,
        )
    }

    /// The events, in emission order.
    pub fn events(self) -> Vec<v1::CallEvent> {
        self.events
    }
}
