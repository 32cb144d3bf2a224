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

use super::Dataset;
use super::unprocessed::{HandleTarget, Handling, ProcessedHow, Processing};
use crate::cdr::{Cdr, CdrStatus, Direction, MissedReason};

/// One group, before it becomes a report row.
#[derive(Debug, Clone)]
pub(crate) struct Group<'a> {
    pub id: String,
    pub client: Option<&'a str>,
    pub misses: Vec<(&'a Cdr, MissedReason)>,
    pub attempts: Vec<&'a Cdr>,
    pub processed: Option<Processing>,
}

impl Group<'_> {
    pub fn first_missed_at(&self) -> Timestamp {
        self.misses
            .first()
            .map_or(Timestamp::UNIX_EPOCH, |(c, _)| c.started_at)
    }

    pub fn last_missed_at(&self) -> Timestamp {
        self.misses
            .last()
            .map_or(Timestamp::UNIX_EPOCH, |(c, _)| c.started_at)
    }

    /// Agents who missed the group's calls, in order of first miss, each once.
    pub fn agents(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for (cdr, _) in &self.misses {
            for agent in cdr.agents_missed() {
                if !names.iter().any(|n| n == agent) {
                    names.push(agent.to_owned());
                }
            }
        }
        names
    }

    /// Every number dialled, in order of first appearance.
    pub fn numbers(&self) -> Vec<String> {
        let mut numbers: Vec<String> = Vec::new();
        for (cdr, _) in &self.misses {
            if !numbers.contains(&cdr.number) {
                numbers.push(cdr.number.clone());
            }
        }
        numbers
    }

    fn handled_by(&self, h: &Handling) -> bool {
        match &h.target {
            HandleTarget::Client(c) => self.client == Some(c.as_str()),
            HandleTarget::Group(id) => *id == self.id,
        }
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
pub(crate) fn build_groups<'a>(
    ds: &Dataset<'a>,
    handlings: &'a [Handling],
    since: Option<Timestamp>,
    now: Timestamp,
) -> Vec<Group<'a>> {
    let mut timelines: HashMap<&'a str, Vec<Item<'a>>> = HashMap::new();
    let mut groups: Vec<Group<'a>> = Vec::new();
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
                    misses: vec![(cdr, reason)],
                    attempts: Vec::new(),
                    processed: None,
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
    groups.sort_by(|a, b| (a.first_missed_at(), &a.id).cmp(&(b.first_missed_at(), &b.id)));
    groups
}

fn walk<'a>(client: &'a str, items: &[Item<'a>], now: Timestamp, groups: &mut Vec<Group<'a>>) {
    let mut open: Option<Group<'a>> = None;
    for item in items {
        if item.key().0 > now {
            break;
        }
        match *item {
            Item::Miss(cdr, reason) => match open.as_mut() {
                Some(group) => group.misses.push((cdr, reason)),
                None => {
                    open = Some(Group {
                        id: cdr.call_id.clone(),
                        client: Some(client),
                        misses: vec![(cdr, reason)],
                        attempts: Vec::new(),
                        processed: None,
                    });
                }
            },
            Item::Attempt(cdr) => {
                if let Some(group) = open.as_mut() {
                    group.attempts.push(cdr);
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
