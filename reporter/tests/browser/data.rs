//! The week before the corpus day (Monday 16 – Sunday 22 November 2026, Europe/Kyiv = UTC+2),
//! generated with the corpus builders and a fixed seed, so the screenshots show a real-looking
//! call center: a few hundred calls, callbacks, repeat callers, a lunch break, and the blind
//! zones a supervisor should see — the office opens at 09:00 but the team starts at 09:30,
//! stops taking calls at 18:00 while the office is open until 19:00, and nobody works on
//! Saturday although the number is open 10:00–15:00.

use dialtone_proto::v1::{AgentState, AgentStateEvent, CallEvent, HangupParty};
use jiff::{SignedDuration, Timestamp};

use crate::support::{ADS, MAIN, inbound, outbound, state, t};

/// `2026-11-<day>T<hh>:<mm>:<ss>Z`.
fn at(day: u32, h: u32, m: u32, s: u32) -> String {
    format!("2026-11-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

fn later(when: &str, secs: i64) -> String {
    (t(when) + SignedDuration::from_secs(secs)).to_string()
}

/// Minutes since midnight UTC.
fn minute_of(when: &str) -> u32 {
    let ts: Timestamp = t(when);
    let secs = ts.as_second().rem_euclid(86_400);
    u32::try_from(secs / 60).unwrap_or(0)
}

/// ISO weekday of an instant in November 2026 (the 16th is a Monday).
fn weekday_of(when: &str) -> u32 {
    let day = u32::try_from(
        t(when).as_second().div_euclid(86_400)
            - t("2026-11-16T00:00:00Z").as_second().div_euclid(86_400),
    )
    .unwrap_or(0);
    day % 7 + 1
}

/// The team's hours (UTC): 07:30–16:00 on weekdays, anna at lunch 10:00–11:00.
fn staffed(weekday: u32, minute: u32, agent: &str) -> bool {
    let on = weekday <= 5 && (7 * 60 + 30..16 * 60).contains(&minute);
    on && !(agent == "anna" && (10 * 60..11 * 60).contains(&minute))
}

/// The office's hours (UTC): 07:00–17:00 on weekdays, 08:00–13:00 on Saturday.
fn open(weekday: u32, minute: u32) -> bool {
    match weekday {
        1..=5 => (7 * 60..17 * 60).contains(&minute),
        6 => (8 * 60..13 * 60).contains(&minute),
        _ => false,
    }
}

/// The agents' state changes of the week.
pub fn states() -> Vec<AgentStateEvent> {
    let mut out = Vec::new();
    let mut seq = 100;
    let mut push = |agent: &str, s: AgentState, when: String, label: &str| {
        seq += 1;
        let mut e = state(agent, s, &when, seq);
        e.away_label = label.into();
        out.push(e);
    };
    for day in 16..=20 {
        for agent in ["anna", "bohdan", "olena"] {
            push(agent, AgentState::Available, at(day, 7, 30, 0), "");
            if agent == "anna" {
                push(agent, AgentState::Away, at(day, 10, 0, 0), "lunch");
                push(agent, AgentState::Available, at(day, 11, 0, 0), "");
            }
            push(agent, AgentState::Offline, at(day, 16, 0, 0), "");
        }
    }
    out
}

/// The calls of the week, each as its events.
pub fn calls() -> Vec<Vec<CallEvent>> {
    use HangupParty::{Agent, Client};
    let mut rng = fastrand::Rng::with_seed(2311);
    let mut calls = Vec::new();
    let team = ["anna", "bohdan", "olena"];
    for day in 16..=22 {
        let weekday = day - 15;
        let count = match weekday {
            1..=5 => 28,
            6 => 6,
            _ => 3,
        };
        let mut repeat: Option<String> = None;
        for i in 0..count {
            // Busiest late morning and mid-afternoon (UTC hours; local is +2).
            let hours: &[u32] = if weekday <= 5 {
                &[
                    6, 7, 7, 8, 8, 8, 9, 9, 10, 11, 12, 12, 13, 13, 14, 15, 16, 17,
                ]
            } else {
                &[7, 8, 9, 10, 11, 12]
            };
            let hour = hours[rng.usize(..hours.len())];
            let when = at(day, hour, rng.u32(0..60), rng.u32(0..60));
            let minute = minute_of(&when);
            let id = format!("w{day}-{i:02}");
            let client = match repeat.take() {
                Some(c) if rng.u8(..4) == 0 => c,
                _ => format!("+38067{day}{i:05}"),
            };
            let call = |to: &str| inbound(&id).from(&client).to(to).at(&when);
            let free: Vec<&str> = team
                .iter()
                .copied()
                .filter(|a| staffed(weekday, minute, a))
                .collect();
            let roll = rng.u8(..100);
            let (events, missed) = if !open(weekday, minute) {
                let events = call(MAIN)
                    .closed()
                    .wait(6.0 + f64::from(rng.u8(..20)))
                    .caller_hangs_up()
                    .events();
                (events, true)
            } else if free.is_empty() {
                let events = call(ADS)
                    .open("sales")
                    .ring(&["anna", "bohdan"])
                    .wait(0.3)
                    .fail("anna", 480)
                    .fail("bohdan", 480)
                    .system_hangs_up()
                    .events();
                (events, true)
            } else if roll < 8 {
                let events = call(MAIN)
                    .open("main-menu")
                    .welcome_starts()
                    .wait(3.0)
                    .caller_hangs_up()
                    .events();
                (events, true)
            } else {
                // Usually the queue offers the call to one agent, sometimes to two at once.
                let mut ring: Vec<&str> = free.clone();
                rng.shuffle(&mut ring);
                ring.truncate(if rng.u8(..10) < 7 { 1 } else { 2 });
                let mut c = call(ADS).open("sales").ring(&ring).wait(1.0);
                for a in &ring {
                    c = c.alert(a);
                }
                if roll < 89 {
                    let talk = f64::from(rng.u32(25..400));
                    let party = if rng.bool() { Client } else { Agent };
                    let events = c
                        .wait(f64::from(rng.u8(2..14)))
                        .answer(ring[0])
                        .talk(talk, party)
                        .events();
                    (events, false)
                } else if roll < 95 {
                    (c.wait(15.0).timeout().system_hangs_up().events(), true)
                } else {
                    (c.wait(6.0).caller_hangs_up().events(), true)
                }
            };
            calls.push(events);
            if !missed {
                continue;
            }
            repeat = Some(client.clone());
            // Most misses get a callback: usually within minutes, sometimes hours later;
            // after-hours misses the next working morning; some never.
            if rng.u8(..100) >= 75 {
                continue;
            }
            let agent = team[rng.usize(..team.len())];
            let cb_at = if open(weekday, minute) && weekday <= 5 {
                let minutes = if rng.u8(..10) < 7 {
                    rng.u32(2..12)
                } else {
                    rng.u32(15..120)
                };
                later(&when, i64::from(minutes) * 60)
            } else {
                // The next working day: Monday the 23rd after Friday.
                let next = if weekday >= 5 { 23 } else { day + 1 };
                at(next, 7, 35 + rng.u32(0..20), rng.u32(0..60))
            };
            if !open(weekday_of(&cb_at), minute_of(&cb_at)) {
                continue;
            }
            calls.push(
                outbound(&format!("cb-{id}"))
                    .by(agent)
                    .from(ADS)
                    .to(&client)
                    .at(&cb_at)
                    .ring(&[agent])
                    .wait(1.0)
                    .alert(agent)
                    .wait(2.0)
                    .pick_up(agent)
                    .dial_client()
                    .wait(1.0)
                    .alert("client")
                    .wait(5.0)
                    .answer("client")
                    .talk(f64::from(rng.u32(30..240)), Agent)
                    .events(),
            );
        }
    }
    calls
}
