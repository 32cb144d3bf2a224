//! What presence reads out: one agent's state and availability, the counts routing
//! strategies use, and the live board.

use jiff::Timestamp;
use jiff::civil::Date;

use super::{
    AgentRecord, AgentState, Availability, BoardLine, Presence, PresenceError, UnavailableReason,
};

impl Presence {
    /// The agent's board state and since when, settled at `now`.
    pub fn state(
        &mut self,
        agent: &str,
        now: Timestamp,
    ) -> Result<(AgentState, Timestamp), PresenceError> {
        self.update(agent, now, |_| ())?;
        let rec = self.record(agent)?;
        Ok((rec.state.clone(), rec.since))
    }

    /// The agent's state at `now` and whether any destination is reachable, derived without
    /// recording anything — cheap enough to ask for every agent a plan names, under the lock.
    pub fn peek(&self, agent: &str, now: Timestamp) -> Option<(AgentState, bool)> {
        self.agents
            .get(agent)
            .map(|rec| (rec.derive(now), rec.reachable(now)))
    }

    /// Whether a reservation for `agent` would succeed now, and why not.
    pub fn availability(&self, agent: &str, now: Timestamp) -> Availability {
        let reason = match self.agents.get(agent) {
            Some(rec) => rec.unavailable(now),
            None => Some(UnavailableReason::Unknown),
        };
        let available = reason.is_none();
        Availability { available, reason }
    }

    /// Ringing and answered legs of the agent now (0 for unknown agents).
    pub fn active_legs(&self, agent: &str, now: Timestamp) -> u32 {
        self.agents.get(agent).map_or(0, |r| r.active(now))
    }

    /// When the agent's last answered call ended (for `longestIdle`).
    pub fn last_call_ended_at(&self, agent: &str) -> Option<Timestamp> {
        self.agents.get(agent)?.last_call_ended_at
    }

    /// Calls answered since local midnight (for `fewestCalls`); 0 on a new day.
    pub fn answered_today(&self, agent: &str, now: Timestamp) -> u32 {
        let day = self.today(now);
        self.agents.get(agent).map_or(0, |r| r.answered_on(day))
    }

    /// The live board at `now`, by agent name (settles every agent first).
    pub fn board(&mut self, now: Timestamp) -> Vec<BoardLine> {
        self.expire(now);
        let day = self.today(now);
        self.agents
            .values()
            .map(|rec| board_line(rec, now, day))
            .collect()
    }

    /// One agent's line of the board at `now`, without settling the others: what a change
    /// of that agent publishes. Building the whole board for each change cost every
    /// REGISTER a pass over (and a copy of) all agents.
    pub fn board_line(&self, agent: &str, now: Timestamp) -> Option<BoardLine> {
        let rec = self.agents.get(agent)?;
        Some(board_line(rec, now, self.today(now)))
    }
}

fn board_line(rec: &AgentRecord, now: Timestamp, day: Date) -> BoardLine {
    BoardLine {
        agent: rec.config.name.clone(),
        display_name: rec.config.display_name.clone(),
        state: rec.state.clone(),
        since: rec.since,
        label: match &rec.state {
            AgentState::Away { label } => Some(label.clone()),
            _ => None,
        },
        active_legs: rec.active(now),
        max_concurrent_calls: rec.config.max_concurrent_calls,
        call_ids: rec.live_legs(now).map(|l| l.call_id.clone()).collect(),
        available: rec.unavailable(now).is_none(),
        reachable: rec.reachable(now),
        wrap_up_until: rec.wrap_up(now),
        last_call_ended_at: rec.last_call_ended_at,
        answered_today: rec.answered_on(day),
        contacts: rec.live_contacts(now),
    }
}
