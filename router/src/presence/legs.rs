//! An agent's call legs: reserved for a call (the check against `maxConcurrentCalls` and
//! the increment in one step), then alerting, answered, ended into wrap-up or released.

use jiff::Timestamp;

use super::{
    DEFAULT_HOLD_SECS, Leg, LegToken, Phase, Presence, PresenceError, Unavailable,
    UnavailableReason, after,
};

impl Presence {
    /// Reserves the agent for a call with the default hold. See [`Presence::reserve_for`].
    pub fn reserve(
        &mut self,
        agent: &str,
        call_id: &str,
        now: Timestamp,
    ) -> Result<LegToken, Unavailable> {
        self.reserve_for(agent, call_id, DEFAULT_HOLD_SECS, now)
    }

    /// Checks availability and counts a leg in one step, so two callers can never both take an
    /// agent's last free slot. An unanswered leg lapses after `hold_secs` (at least 1) unless
    /// answered: give the ring timeout plus a margin.
    pub fn reserve_for(
        &mut self,
        agent: &str,
        call_id: &str,
        hold_secs: u32,
        now: Timestamp,
    ) -> Result<LegToken, Unavailable> {
        let id = self.next_leg;
        let outcome = self.update(agent, now, |rec| {
            if let Some(reason) = rec.unavailable(now) {
                return Err(reason);
            }
            if rec.live_legs(now).any(|l| l.call_id == call_id) {
                return Err(UnavailableReason::AlreadyOffered);
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

    /// The live leg of `agent` for `call_id`, for edges that receive leg events by name.
    pub fn find_leg(&self, agent: &str, call_id: &str) -> Option<LegToken> {
        let rec = self.agents.get(agent)?;
        rec.legs
            .iter()
            .find(|l| l.call_id == call_id)
            .map(|l| LegToken {
                agent: agent.to_owned(),
                call_id: call_id.to_owned(),
                id: l.id,
            })
    }

    /// The leg got 180/183. The state stays `ringing`; kept for the leg's history.
    pub fn alerting(&mut self, token: &LegToken) -> Result<(), PresenceError> {
        let leg = self
            .agents
            .get_mut(&token.agent)
            .and_then(|rec| rec.legs.iter_mut().find(|l| l.id == token.id))
            .ok_or_else(|| unknown_leg(token))?;
        if leg.phase == Phase::Reserved {
            leg.phase = Phase::Alerting;
        }
        Ok(())
    }

    /// The agent answered: on a call, counted in `answered_today`. An answer for a leg whose
    /// reservation lapsed is still believed (the agent *is* on that call), even past the max.
    pub fn answered(&mut self, token: &LegToken, now: Timestamp) -> Result<(), PresenceError> {
        let day = self.today(now);
        self.update(&token.agent, now, |rec| {
            let leg = rec.legs.iter_mut().find(|l| l.id == token.id);
            let leg = leg.ok_or_else(|| unknown_leg(token))?;
            let first_answer = leg.phase != Phase::Answered;
            leg.phase = Phase::Answered;
            if first_answer {
                let n = rec.answered_on(day).saturating_add(1);
                rec.answered = Some((day, n));
            }
            Ok(())
        })?
    }

    /// The leg's call ended. If it had been answered, the agent's last call ends now and a
    /// wrap-up of `wrap_up_secs` (the queue's; 0 for none) starts; otherwise it is a release.
    pub fn ended(
        &mut self,
        token: &LegToken,
        now: Timestamp,
        wrap_up_secs: u32,
    ) -> Result<(), PresenceError> {
        self.update(&token.agent, now, |rec| {
            let i = rec.legs.iter().position(|l| l.id == token.id);
            let leg = rec.legs.remove(i.ok_or_else(|| unknown_leg(token))?);
            if leg.phase == Phase::Answered {
                rec.last_call_ended_at = Some(now);
                if wrap_up_secs > 0 {
                    let until = after(now, wrap_up_secs);
                    rec.wrap_up_until = Some(rec.wrap_up_until.map_or(until, |w| w.max(until)));
                }
            }
            Ok(())
        })?
    }

    /// The leg rang (or was reserved) but was not answered: failed, cancelled, timed out.
    pub fn released(&mut self, token: &LegToken, now: Timestamp) -> Result<(), PresenceError> {
        self.ended(token, now, 0)
    }
}

fn unknown_leg(token: &LegToken) -> PresenceError {
    PresenceError::UnknownLeg {
        agent: token.agent.clone(),
        call_id: token.call_id.clone(),
    }
}
