//! Missed groups: a client's misses from one miss until the client is reached (or the group is
//! handled). Shared by the unprocessed list and the callback discipline report, so that both
//! speak of the same groups.
//!
//! Per client, every relevant fact is put on one timeline and walked in order:
//!
//! - a **miss** opens a group when none is open, else joins the open one;
//! - an **outbound call** that dialled the client while a group is open is a callback attempt;
//!   when the client answers it, the group is processed (`callback_answered`);
//! - an **inbound call** from the client, started after the group's first miss and answered by
//!   an agent, processes the group (`inbound_answered`);
//! - a **handling** naming the client (or the open group's id) processes it manually.
//!
//! A miss after processing opens a new group. Anonymous callers cannot be called back or
//! recognised again: each of their missed calls is a group of its own, processed only by a
//! handling that names its id. A group's id is its first missed call's id: stable as long as
//! that call stays in the window, and unique.

use std::collections::HashMap;

use jiff::Timestamp;

use super::unprocessed::{HandleTarget, Handling, ProcessedHow, Processing};
use super::{Dataset, Filter};
use crate::cdr::{Cdr, CdrStatus, Direction, MissedReason};

/// A missed call of a group: what the reports show of it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupMiss {
    /// The call.
    pub call_id: String,
    /// Its start.
    pub started_at: Timestamp,
    /// Its effective missed reason.
    pub reason: MissedReason,
    /// The PhoneNumber dialled (E.164).
    pub number: String,
    /// The PhoneNumber's resource name, when known.
    pub number_name: Option<String>,
    /// Agents who missed it (alerted, not answered; declined included), in order.
    pub agents: Vec<String>,
}

impl GroupMiss {
    fn of(cdr: &Cdr, reason: MissedReason) -> Self {
        GroupMiss {
            call_id: cdr.call_id.clone(),
            started_at: cdr.started_at,
            reason,
            number: cdr.number.clone(),
            number_name: cdr.number_name.clone(),
            agents: cdr.agents_missed().into_iter().map(str::to_owned).collect(),
        }
    }
}

/// A callback attempt of a group: an outbound call that dialled the client while it was open.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupAttempt {
    /// The outbound call.
    pub call_id: String,
    /// Its start.
    pub started_at: Timestamp,
    /// Who called: the outbound call's agent, else whoever answered on our side.
    pub agent: Option<String>,
    /// The client answered.
    pub answered: bool,
}

impl GroupAttempt {
    fn of(cdr: &Cdr) -> Self {
        GroupAttempt {
            call_id: cdr.call_id.clone(),
            started_at: cdr.started_at,
            agent: cdr.agent.clone().or_else(|| cdr.answered_by.clone()),
            answered: cdr.status == CdrStatus::Answered,
        }
    }
}

/// One group, before it becomes a report row. It owns what the rows need, so that groups
/// kept by the store (computed at ingestion) and groups built here are the same values.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Its first missed call's id.
    pub id: String,
    /// The client; `None` for an anonymous caller.
    pub client: Option<String>,
    /// Missed calls, oldest first.
    pub misses: Vec<GroupMiss>,
    /// Callback attempts while open, oldest first.
    pub attempts: Vec<GroupAttempt>,
    /// How it was processed; `None` while open.
    pub processed: Option<Processing>,
    /// Automatic processing: when the answered call started (a call started before the
    /// group's first miss does not process it).
    pub processed_by_call_started_at: Option<Timestamp>,
}

/// Why a stored group cannot be cut to a shorter window exactly; the caller then builds the
/// groups from the CDRs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotCuttable;

impl Group {
    /// Time of the first miss.
    pub fn first_missed_at(&self) -> Timestamp {
        self.misses
            .first()
            .map_or(Timestamp::UNIX_EPOCH, |m| m.started_at)
    }

    /// Time of the last miss.
    pub fn last_missed_at(&self) -> Timestamp {
        self.misses
            .last()
            .map_or(Timestamp::UNIX_EPOCH, |m| m.started_at)
    }

    /// The latest fact the group depends on: its last miss, last attempt, processing. A
    /// group whose facts are all before a report's `now` is the same as of that `now`.
    pub fn last_fact_at(&self) -> Timestamp {
        let mut t = self.last_missed_at();
        if let Some(a) = self.attempts.last() {
            t = t.max(a.started_at);
        }
        if let Some(p) = &self.processed {
            t = t.max(p.at);
        }
        t
    }

    /// Agents who missed the group's calls, in order of first miss, each once.
    pub fn agents(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for m in &self.misses {
            for agent in &m.agents {
                if !names.contains(agent) {
                    names.push(agent.clone());
                }
            }
        }
        names
    }

    /// Every number dialled, in order of first appearance.
    pub fn numbers(&self) -> Vec<String> {
        let mut numbers: Vec<String> = Vec::new();
        for m in &self.misses {
            if !numbers.contains(&m.number) {
                numbers.push(m.number.clone());
            }
        }
        numbers
    }

    /// One of the group's calls concerns `filter`'s number.
    pub(crate) fn number_matches(&self, filter: &Filter) -> bool {
        self.misses
            .iter()
            .any(|m| filter.number_is(&m.number, m.number_name.as_deref()))
    }

    fn handled_by(&self, h: &Handling) -> bool {
        match &h.target {
            HandleTarget::Client(c) => self.client.as_deref() == Some(c.as_str()),
            HandleTarget::Group(id) => *id == self.id,
        }
    }

    /// The group as [`build_groups`] sees it when only misses from `since` on count: the
    /// same group when it starts then or later, its misses from `since` on (a group of its
    /// own, named after the first of them) when it started before, `None` when it has none.
    ///
    /// A group built from every miss splits the same way as one built from the later misses,
    /// except when the call that processed it started before the later misses began (it would
    /// not process the shorter group), or when a handling names one of its calls by id (it
    /// would name another group): then [`NotCuttable`].
    ///
    /// # Errors
    ///
    /// [`NotCuttable`] in the two cases above.
    pub fn since(
        &self,
        since: Timestamp,
        handlings: &[Handling],
    ) -> Result<Option<Group>, NotCuttable> {
        if self.first_missed_at() >= since {
            return Ok(Some(self.clone()));
        }
        let Some(k) = self.misses.iter().position(|m| m.started_at >= since) else {
            return Ok(None);
        };
        let first = self.misses[k].started_at;
        if self
            .processed_by_call_started_at
            .is_some_and(|started| started < first)
        {
            return Err(NotCuttable);
        }
        let named = handlings.iter().any(|h| match &h.target {
            HandleTarget::Group(id) => self.misses.iter().any(|m| m.call_id == *id),
            HandleTarget::Client(_) => false,
        });
        if named {
            return Err(NotCuttable);
        }
        Ok(Some(Group {
            id: self.misses[k].call_id.clone(),
            client: self.client.clone(),
            misses: self.misses[k..].to_vec(),
            attempts: self
                .attempts
                .iter()
                .filter(|a| a.started_at >= first)
                .cloned()
                .collect(),
            processed: self.processed.clone(),
            processed_by_call_started_at: self.processed_by_call_started_at,
        }))
    }
}

/// Facts on a client's timeline; the declaration order breaks ties at the same instant.
#[derive(Debug, Clone, Copy)]
enum Item<'a> {
    Miss(&'a Cdr, MissedReason),
    Attempt(&'a Cdr),
    CallbackAnswered(&'a Cdr, Timestamp),
    InboundAnswered(&'a Cdr, Timestamp),
    Handled(&'a Handling),
}

impl Item<'_> {
    fn key(&self) -> (Timestamp, u8, &str) {
        match self {
            Item::Miss(c, _) => (c.started_at, 0, &c.call_id),
            Item::Attempt(c) => (c.started_at, 1, &c.call_id),
            Item::CallbackAnswered(c, at) => (*at, 2, &c.call_id),
            Item::InboundAnswered(c, at) => (*at, 3, &c.call_id),
            Item::Handled(h) => (h.at, 4, &h.by),
        }
    }
}

/// Builds every group from the misses started in `[since, now]`; facts after `now` are not
/// known yet.
pub(crate) fn build_groups(
    ds: &Dataset<'_>,
    handlings: &[Handling],
    since: Option<Timestamp>,
    now: Timestamp,
) -> Vec<Group> {
    let mut timelines: HashMap<&str, Vec<Item<'_>>> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    for cdr in ds.cdrs() {
        if cdr.direction != Direction::Inbound || cdr.started_at > now {
            continue;
        }
        let Some(client) = cdr.client() else {
            // Anonymous: a group of its own.
            if let Some(reason) = ds.missed(cdr)
                && since.is_none_or(|s| cdr.started_at >= s)
            {
                let mut group = Group {
                    id: cdr.call_id.clone(),
                    client: None,
                    misses: vec![GroupMiss::of(cdr, reason)],
                    attempts: Vec::new(),
                    processed: None,
                    processed_by_call_started_at: None,
                };
                let handling = handlings
                    .iter()
                    .filter(|h| group.handled_by(h) && h.at >= cdr.started_at && h.at <= now)
                    .min_by_key(|h| h.at);
                group.processed = handling.map(Processing::handled);
                groups.push(group);
            }
            continue;
        };
        if let Some(reason) = ds.missed(cdr) {
            if since.is_none_or(|s| cdr.started_at >= s) {
                timelines
                    .entry(client)
                    .or_default()
                    .push(Item::Miss(cdr, reason));
            }
        } else if cdr.status == CdrStatus::Answered
            && let Some(at) = cdr.answered_at
        {
            timelines
                .entry(client)
                .or_default()
                .push(Item::InboundAnswered(cdr, at));
        }
    }
    // Only clients with a miss matter; add their outbound calls and handlings.
    for (client, items) in &mut timelines {
        if !items.iter().any(|i| matches!(i, Item::Miss(..))) {
            continue;
        }
        for &call in ds.outbound_to(client) {
            items.push(Item::Attempt(call));
            if call.status == CdrStatus::Answered
                && let Some(at) = call.answered_at
            {
                items.push(Item::CallbackAnswered(call, at));
            }
        }
        items.extend(
            handlings
                .iter()
                .filter(|h| match &h.target {
                    HandleTarget::Client(c) => c == client,
                    HandleTarget::Group(_) => true,
                })
                .map(Item::Handled),
        );
        items.sort_by(|a, b| a.key().cmp(&b.key()));
        walk(client, items, now, &mut groups);
    }
    sort_groups(&mut groups);
    groups
}

/// Oldest first miss first (then by id): the order of every report's groups.
pub(crate) fn sort_groups(groups: &mut [Group]) {
    groups.sort_by(|a, b| (a.first_missed_at(), &a.id).cmp(&(b.first_missed_at(), &b.id)));
}

fn walk(client: &str, items: &[Item<'_>], now: Timestamp, groups: &mut Vec<Group>) {
    let mut open: Option<Group> = None;
    for item in items {
        if item.key().0 > now {
            break;
        }
        match *item {
            Item::Miss(cdr, reason) => match open.as_mut() {
                Some(group) => group.misses.push(GroupMiss::of(cdr, reason)),
                None => {
                    open = Some(Group {
                        id: cdr.call_id.clone(),
                        client: Some(client.to_owned()),
                        misses: vec![GroupMiss::of(cdr, reason)],
                        attempts: Vec::new(),
                        processed: None,
                        processed_by_call_started_at: None,
                    });
                }
            },
            Item::Attempt(cdr) => {
                if let Some(group) = open.as_mut() {
                    group.attempts.push(GroupAttempt::of(cdr));
                }
            }
            Item::CallbackAnswered(cdr, at) | Item::InboundAnswered(cdr, at) => {
                let Some(mut group) = open.take() else {
                    continue;
                };
                // "A later call": one that started after the group's first miss.
                if cdr.started_at < group.first_missed_at() {
                    open = Some(group);
                    continue;
                }
                let how = match item {
                    Item::CallbackAnswered(..) => ProcessedHow::CallbackAnswered,
                    _ => ProcessedHow::InboundAnswered,
                };
                group.processed = Some(Processing {
                    how,
                    at,
                    by: cdr.answered_by.clone(),
                    reason: None,
                    note: None,
                    call_id: Some(cdr.call_id.clone()),
                });
                group.processed_by_call_started_at = Some(cdr.started_at);
                groups.push(group);
            }
            Item::Handled(h) => {
                let Some(mut group) = open.take() else {
                    continue;
                };
                if group.handled_by(h) {
                    group.processed = Some(Processing::handled(h));
                    groups.push(group);
                } else {
                    open = Some(group);
                }
            }
        }
    }
    groups.extend(open);
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;

    use super::*;
    use crate::reports::HandleReason;

    fn at(mins: i64) -> Timestamp {
        Timestamp::UNIX_EPOCH + SignedDuration::from_mins(mins)
    }

    fn miss(id: &str, mins: i64) -> GroupMiss {
        GroupMiss {
            call_id: id.into(),
            started_at: at(mins),
            reason: MissedReason::NotAnswered,
            number: "+380441234567".into(),
            number_name: None,
            agents: vec!["anna".into()],
        }
    }

    fn attempt(id: &str, mins: i64) -> GroupAttempt {
        GroupAttempt {
            call_id: id.into(),
            started_at: at(mins),
            agent: Some("bohdan".into()),
            answered: false,
        }
    }

    /// Misses at 0, 100 and 200 minutes, attempts at 50 and 150, processed at 300 by a call
    /// started at 290.
    fn group() -> Group {
        Group {
            id: "m0".into(),
            client: Some("+380501112233".into()),
            misses: vec![miss("m0", 0), miss("m1", 100), miss("m2", 200)],
            attempts: vec![attempt("a1", 50), attempt("a2", 150)],
            processed: Some(Processing {
                how: ProcessedHow::InboundAnswered,
                at: at(300),
                by: Some("anna".into()),
                reason: None,
                note: None,
                call_id: Some("c9".into()),
            }),
            processed_by_call_started_at: Some(at(290)),
        }
    }

    #[test]
    fn a_group_starting_in_the_window_stays_whole() {
        let g = group();
        assert_eq!(g.since(at(0), &[]), Ok(Some(g.clone())));
        assert_eq!(g.last_fact_at(), at(300));
    }

    #[test]
    fn a_cut_group_keeps_the_later_misses_and_their_attempts_under_the_first_ones_id() {
        let tail = group()
            .since(at(90), &[])
            .expect("cuttable")
            .expect("misses after the cut");
        assert_eq!(tail.id, "m1");
        let ids: Vec<&str> = tail.misses.iter().map(|m| m.call_id.as_str()).collect();
        assert_eq!(ids, ["m1", "m2"]);
        let attempts: Vec<&str> = tail.attempts.iter().map(|a| a.call_id.as_str()).collect();
        assert_eq!(
            attempts,
            ["a2"],
            "the attempt before the tail's first miss is not one"
        );
        assert_eq!(tail.processed, group().processed);
        assert_eq!(group().since(at(201), &[]), Ok(None), "no miss left");
    }

    #[test]
    fn a_cut_that_changes_how_the_group_closes_is_refused() {
        let mut g = group();
        // Processed by a call that started before the tail's first miss: it would not close
        // the shorter group.
        g.processed_by_call_started_at = Some(at(95));
        assert_eq!(g.since(at(90), &[]), Err(NotCuttable));
        assert!(g.since(at(0), &[]).is_ok());
        // A handling naming one of the group's calls by id names another group once cut.
        let named = Handling {
            target: HandleTarget::Group("m1".into()),
            reason: HandleReason::Spam,
            note: None,
            by: "marta".into(),
            at: at(250),
        };
        assert_eq!(group().since(at(90), &[named]), Err(NotCuttable));
        let by_client = Handling {
            target: HandleTarget::Client("+380501112233".into()),
            reason: HandleReason::Spam,
            note: None,
            by: "marta".into(),
            at: at(250),
        };
        assert!(matches!(group().since(at(90), &[by_client]), Ok(Some(_))));
    }
}
