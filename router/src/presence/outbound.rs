//! Reserving an agent for a call they make themselves (dialling out from their softphone).
//!
//! Offers are about *others* asking for the agent's attention, so wrap-up, DND and away keep
//! inbound calls and callbacks away ([`Presence::reserve_for`]). A call the agent dials is
//! their own choice — calling a client back during wrap-up is the normal case — so only
//! what makes the call impossible refuses it: being logged out or unreachable (no live
//! registration: the call comes from a softphone), and `maxConcurrentCalls` already used.
//!
//! Nothing of the agent's own state is changed: the leg alone makes them ringing, then on a
//! call once answered (busy to offers within `maxConcurrentCalls`, as any answered leg), and
//! when it ends the state they had comes back by derivation — DND stays DND, away keeps its
//! label, a wrap-up still running resumes and one that ran out meanwhile is over. The leg is
//! released without a wrap-up of its own: a call out belongs to no queue.

use super::{Leg, LegToken, Manual, Phase, Presence, Unavailable, UnavailableReason, after};
use jiff::Timestamp;

impl Presence {
    /// Checks that `agent` may dial out now and counts the call's leg, in one step (see the
    /// module documentation). An unanswered leg lapses after `hold_secs` (at least 1).
    pub fn reserve_outbound(
        &mut self,
        agent: &str,
        call_id: &str,
        hold_secs: u32,
        now: Timestamp,
    ) -> Result<LegToken, Unavailable> {
        let id = self.next_leg;
        let outcome = self.update(agent, now, |rec| {
            let registered = rec.contacts.iter().any(|c| c.expires_at > now);
            if rec.manual == Manual::Offline || !registered {
                return Err(UnavailableReason::Offline);
            }
            if rec.live_legs(now).any(|l| l.call_id == call_id) {
                return Err(UnavailableReason::AlreadyOffered);
            }
            let active = rec.active(now);
            let max = rec.config.max_concurrent_calls;
            if active >= max {
                return Err(UnavailableReason::Busy { active, max });
            }
            rec.legs.push(Leg {
                id,
                call_id: call_id.to_owned(),
                phase: Phase::Reserved,
                hold_until: after(now, hold_secs.max(1)),
            });
            Ok(())
        });
        let refused = |reason| Unavailable {
            agent: agent.to_owned(),
            call_id: call_id.to_owned(),
            reason,
        };
        match outcome {
            Err(_) => Err(refused(UnavailableReason::Unknown)),
            Ok(Err(reason)) => Err(refused(reason)),
            Ok(Ok(())) => {
                self.next_leg += 1;
                Ok(LegToken {
                    agent: agent.to_owned(),
                    call_id: call_id.to_owned(),
                    id,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use dialtone_model::snapshot::{AgentConfig, Destination};

    use super::super::tests::{snapshot, t};
    use super::super::{AgentState, ContactAddr, Manual, Presence, UnavailableReason as Why};

    /// A softphone agent with `max` concurrent calls.
    fn softphone(name: &str, max: u32) -> AgentConfig {
        AgentConfig {
            name: name.to_owned(),
            display_name: name.to_owned(),
            extension: None,
            labels: Default::default(),
            destinations: vec![Destination::Softphone],
            max_concurrent_calls: max,
            sip: None,
        }
    }

    /// anna (softphone, one call at a time), registered for an hour.
    fn anna() -> Presence {
        let mut p = Presence::new(&snapshot(vec![softphone("anna", 1)], vec![]), t(0));
        let contact = ContactAddr {
            uri: "sip:anna@127.0.0.2:5060".into(),
            source: "127.0.0.2:5060".into(),
        };
        p.register("anna", contact, 3600, "node-a", t(0))
            .expect("anna registers");
        p
    }

    fn state(p: &mut Presence, now: i64) -> AgentState {
        p.state("anna", t(now)).expect("known agent").0
    }

    /// One call out from `from` to `to` (answered at `from + 2`).
    fn call_out(p: &mut Presence, call: &str, from: i64, to: i64) {
        let leg = p
            .reserve_outbound("anna", call, 75, t(from))
            .expect("anna may dial out");
        assert_eq!(state(p, from), AgentState::Ringing);
        p.answered(&leg, t(from + 2)).expect("known leg");
        assert_eq!(state(p, from + 2), AgentState::OnCall);
        // No offer meanwhile.
        assert!(p.reserve("anna", "inbound", t(from + 3)).is_err());
        p.released(&leg, t(to)).expect("known leg");
    }

    #[test]
    fn dnd_and_away_dial_out_and_come_back_as_they_were() {
        let mut p = anna();
        p.set_state("anna", Manual::Dnd, t(1)).expect("dnd");
        call_out(&mut p, "out-1", 10, 40);
        assert_eq!(state(&mut p, 40), AgentState::Dnd);

        p.set_state("anna", Manual::Away("lunch".into()), t(50))
            .expect("away");
        call_out(&mut p, "out-2", 60, 90);
        assert_eq!(
            state(&mut p, 90),
            AgentState::Away {
                label: "lunch".into()
            }
        );
        // Still refused to offers.
        assert!(p.reserve("anna", "inbound-2", t(91)).is_err());
    }

    #[test]
    fn wrap_up_resumes_if_still_running_and_is_over_if_it_ran_out() {
        let mut p = anna();
        // An inbound call from a queue with a 60 s wrap-up: wrap-up until t(80).
        let leg = p.reserve("anna", "in-1", t(10)).expect("offer");
        p.answered(&leg, t(12)).expect("answered");
        p.ended(&leg, t(20), 60).expect("ended");
        assert_eq!(state(&mut p, 21), AgentState::WrapUp);

        // A short call back during the wrap-up: wrap-up again afterwards, until t(80).
        call_out(&mut p, "out-1", 30, 50);
        assert_eq!(state(&mut p, 50), AgentState::WrapUp);
        // A long one outlasting it: available afterwards.
        call_out(&mut p, "out-2", 60, 120);
        assert_eq!(state(&mut p, 120), AgentState::Available);
        assert!(p.reserve("anna", "in-2", t(121)).is_ok());
    }

    #[test]
    fn offline_unregistered_or_at_the_maximum_are_refused() {
        let mut p = anna();
        let refused = |p: &mut Presence, call: &str, now: i64| {
            p.reserve_outbound("anna", call, 75, t(now))
                .expect_err("refused")
                .reason
        };
        let _first = p
            .reserve_outbound("anna", "out-1", 75, t(1))
            .expect("first call");
        assert_eq!(refused(&mut p, "out-2", 2), Why::Busy { active: 1, max: 1 });
        assert_eq!(refused(&mut p, "out-1", 2), Why::AlreadyOffered);
        // The call out keeps offers away too.
        assert_eq!(
            p.reserve("anna", "inbound", t(2)).expect_err("busy").reason,
            Why::Busy { active: 1, max: 1 }
        );

        p.set_state("anna", Manual::Offline, t(3))
            .expect("logs out");
        assert_eq!(refused(&mut p, "out-3", 200), Why::Offline);

        // Registered an hour: past it, the softphone is gone.
        p.set_state("anna", Manual::Available, t(4)).expect("back");
        assert_eq!(refused(&mut p, "out-4", 3601), Why::Offline);
        assert_eq!(
            p.reserve_outbound("nobody", "out-5", 75, t(5))
                .expect_err("unknown")
                .reason,
            Why::Unknown
        );
    }
}
