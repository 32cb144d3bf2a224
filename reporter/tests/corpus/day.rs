//! One business day of the demo call center, Monday 2026-11-23 in Europe/Kyiv (UTC+2; the
//! office is open 09:00–19:00 local = 07:00–17:00Z). Times below are UTC.
//!
//! Agents: anna and bohdan (sales SDRs, softphones), olena (closer: softphone + mobile),
//! taras (support queue). Supervisor marta handles groups by hand. Policy: the defaults
//! (short abandon 10 s, short call 5 s, callback SLA 10 min, window 30 days).
//!
//! | call  | start    | client | what happens                                                      | expected           |
//! |-------|----------|--------|-------------------------------------------------------------------|--------------------|
//! | c02   | 05:30:00 | 0002   | closed; olena alerted; caller hangs up at 6 s                     | outside_business_hours (2 before 5 and 7) |
//! | c01   | 07:05:00 | 0001   | no scheme resolves                                                | no_forwarding_scheme |
//! | c03   | 07:10:00 | 0003   | hangs up 3 s into the welcome                                     | abandoned_during_welcome (3 before 5) |
//! | c04   | 07:20:00 | 0004   | welcome 4 s, hangs up 4 s into the menu (8 s)                     | abandoned_in_ivr (4 before 5) |
//! | c05   | 07:30:00 | 0005   | anna+bohdan alerted at 1 s; caller hangs up at 8 s                | abandoned_short (5 before 7) |
//! | c06   | 07:40:00 | 0006   | anna 486 at once, bohdan unreachable; Dialtone hangs up at 2 s    | all_agents_unavailable |
//! | c07   | 08:00:00 | 0007   | anna+bohdan ring 15 s; voicemail (20 s message)                   | not_answered, voicemail |
//! | c07b  | 08:05:00 | 0007   | again, to main-line: hangs up 5 s into the welcome                | abandoned_during_welcome |
//! | c08   | 08:10:00 | 0008   | anna declines (486 after 180) at 4 s; bohdan times out at 16 s    | not_answered |
//! | cb08  | 08:25:00 | 0008   | bohdan calls back; client answers 08:25:10                        | late callback (15 min) |
//! | c09   | 08:20:00 | 0009   | menu → ring-all anna, bohdan, olena (softphone + mobile); olena answers her mobile at 15 s | answered |
//! | c10   | 08:40:00 | 0010   | anna answers at 3 s (alerted 1 s), hangs up after 3 s of talk     | answered, short call |
//! | c11   | 09:00:00 | 0011   | bohdan alerted 1 s; caller hangs up at 30 s                       | not_answered |
//! | cb11  | 09:05:00 | 0011   | anna calls back; answered 09:05:10                                | callback within SLA |
//! | c12   | 09:30:00 | 0012   | anna 480 without 180; Dialtone hangs up at 3 s                    | all_agents_unavailable |
//! | c13   | 09:45:00 | 0012   | calls again; bohdan answers at 5 s                                | answered; processes 0012 |
//! | c14a  | 10:00:00 | 0014   | anna times out at 16 s; Dialtone hangs up                         | not_answered |
//! | c15   | 10:15:00 | anon   | bohdan alerted; caller hangs up at 20 s                           | not_answered, anonymous |
//! | c16   | 10:20:00 | anon   | same                                                              | not_answered, anonymous |
//! | —     | 10:30:00 | 0014   | marta handles 0014: spam                                          | group c14a processed |
//! | c17   | 10:40:00 | 9999   | blocklisted                                                       | blocked, not missed |
//! | —     | 10:50:00 | anon   | marta handles group c16: other, "silent line"                     | group c16 processed |
//! | c14b  | 11:00:00 | 0014   | again; anna alerted; caller hangs up at 12 s                      | not_answered; a new group |
//! | c18   | 11:10:00 | 0018   | menu → queue; taras times out; caller chooses a callback at 40 s  | not missed (callback answered) |
//! | cb18  | 11:20:00 | 0018   | queue callback cb-18 by taras; answered                           | answered callback |
//! | c19   | 11:30:00 | 0019   | anna unreachable (no response); Dialtone hangs up at 0.3 s        | all_agents_unavailable |
//! | cb19  | 11:35:00 | 0019   | olena calls back; the carrier refuses the client with 403         | forbidden_destination, an attempt |
//! | c21   | 12:00:00 | 7777   | anna dials a new client from her softphone; answered              | answered, not a callback |

use dialtone_proto::v1::{AgentState, AgentStateEvent, CallEvent, HangupParty, ScheduleState};
use dialtone_reporter::reports::{HandleReason, HandleTarget, Handling};

use crate::support::{ADS, MAIN, inbound, outbound, state, t};

/// The client numbers: `+38050111` + the call's two-digit suffix.
pub fn client(n: &str) -> String {
    format!("+3805011100{n}")
}

/// Every call of the day, each as its events in emission order. (A table of data: kept one
/// call per line group rather than one step per line.)
#[rustfmt::skip]
pub fn calls() -> Vec<Vec<CallEvent>> {
    use HangupParty::{Agent, Client};
    vec![
        inbound("c02").from(&client("02")).to(MAIN).at("2026-11-23T05:30:00Z").closed()
            .ring(&["olena"]).wait(1.5).alert("olena").wait(4.5).caller_hangs_up().events(),
        inbound("c01").from(&client("01")).to(ADS).at("2026-11-23T07:05:00Z")
            .no_scheme(ScheduleState::Open).events(),
        inbound("c03").from(&client("03")).to(MAIN).at("2026-11-23T07:10:00Z").open("main-menu")
            .welcome_starts().wait(3.0).caller_hangs_up().events(),
        inbound("c04").from(&client("04")).to(MAIN).at("2026-11-23T07:20:00Z").open("main-menu")
            .welcome(4.0).menu_starts().wait(4.0).caller_hangs_up().events(),
        inbound("c05").from(&client("05")).to(ADS).at("2026-11-23T07:30:00Z").open("sales")
            .ring(&["anna", "bohdan"]).wait(1.0).alert("anna").alert("bohdan").wait(7.0)
            .caller_hangs_up().events(),
        inbound("c06").from(&client("06")).to(ADS).at("2026-11-23T07:40:00Z").open("sales")
            .ring(&["anna", "bohdan"]).wait(0.2).fail("anna", 486).wait(1.8).fail("bohdan", 0)
            .system_hangs_up().events(),
        inbound("c07").from(&client("07")).to(ADS).at("2026-11-23T08:00:00Z").open("sales")
            .ring(&["anna", "bohdan"]).wait(1.0).alert("anna").alert("bohdan").wait(15.0).timeout()
            .voicemail(4.0, 20.0).events(),
        inbound("c07b").from(&client("07")).to(MAIN).at("2026-11-23T08:05:00Z").open("main-menu")
            .welcome_starts().wait(5.0).caller_hangs_up().events(),
        inbound("c08").from(&client("08")).to(ADS).at("2026-11-23T08:10:00Z").open("sales")
            .ring(&["anna", "bohdan"]).wait(1.0).alert("anna").alert("bohdan").wait(3.0)
            .fail("anna", 486).wait(12.0).timeout().system_hangs_up().events(),
        outbound("cb08").by("bohdan").from(ADS).to(&client("08")).at("2026-11-23T08:25:00Z")
            .ring(&["bohdan"]).wait(1.0).alert("bohdan").wait(2.0).pick_up("bohdan").dial_client()
            .wait(1.0).alert("client").wait(6.0).answer("client").talk(90.0, Client).events(),
        inbound("c09").from(&client("09")).to(MAIN).at("2026-11-23T08:20:00Z").open("main-menu")
            .welcome(5.0).menu(4.0, "1", "scheme sales")
            .ring(&["anna", "bohdan", "olena"]).ring_mobile("olena-mobile", "olena", "+380671234567")
            .wait(2.0).alert("anna").alert("bohdan").alert("olena").wait(1.0).progress("olena-mobile")
            .wait(3.0).answer("olena-mobile").talk(120.0, Client).events(),
        inbound("c10").from(&client("10")).to(ADS).at("2026-11-23T08:40:00Z").open("sales")
            .ring(&["anna"]).wait(1.0).alert("anna").wait(2.0).answer("anna").talk(3.0, Agent).events(),
        inbound("c11").from(&client("11")).to(ADS).at("2026-11-23T09:00:00Z").open("sales")
            .ring(&["bohdan"]).wait(1.0).alert("bohdan").wait(29.0).caller_hangs_up().events(),
        outbound("cb11").by("anna").from(ADS).to(&client("11")).at("2026-11-23T09:05:00Z")
            .ring(&["anna"]).wait(1.0).alert("anna").wait(2.0).pick_up("anna").dial_client()
            .wait(1.0).alert("client").wait(6.0).answer("client").talk(60.0, Agent).events(),
        inbound("c12").from(&client("12")).to(ADS).at("2026-11-23T09:30:00Z").open("sales")
            .ring(&["anna"]).wait(0.5).fail("anna", 480).wait(2.5).system_hangs_up().events(),
        inbound("c13").from(&client("12")).to(ADS).at("2026-11-23T09:45:00Z").open("sales")
            .ring(&["bohdan"]).wait(1.0).alert("bohdan").wait(4.0).answer("bohdan").talk(60.0, Client)
            .events(),
        inbound("c14a").from(&client("14")).to(ADS).at("2026-11-23T10:00:00Z").open("sales")
            .ring(&["anna"]).wait(1.0).alert("anna").wait(15.0).timeout().system_hangs_up().events(),
        inbound("c15").anonymous().to(ADS).at("2026-11-23T10:15:00Z").open("sales")
            .ring(&["bohdan"]).wait(1.0).alert("bohdan").wait(19.0).caller_hangs_up().events(),
        inbound("c16").anonymous().to(ADS).at("2026-11-23T10:20:00Z").open("sales")
            .ring(&["bohdan"]).wait(1.0).alert("bohdan").wait(19.0).caller_hangs_up().events(),
        inbound("c17").from("+380509999999").to(ADS).at("2026-11-23T10:40:00Z").blocked().events(),
        inbound("c14b").from(&client("14")).to(ADS).at("2026-11-23T11:00:00Z").open("sales")
            .ring(&["anna"]).wait(1.0).alert("anna").wait(11.0).caller_hangs_up().events(),
        inbound("c18").from(&client("18")).to(MAIN).at("2026-11-23T11:10:00Z").open("main-menu")
            .welcome(5.0).menu(4.0, "2", "queue support").queue("support").ring(&["taras"])
            .wait(1.0).alert("taras").wait(20.0).timeout().wait(10.0)
            .chooses_callback("cb-18", "support").events(),
        outbound("cb18").by("taras").callback("cb-18").from(MAIN).to(&client("18"))
            .at("2026-11-23T11:20:00Z").ring(&["taras"]).wait(1.0).alert("taras").wait(2.0)
            .pick_up("taras").dial_client().wait(1.0).alert("client").wait(4.0).answer("client")
            .talk(45.0, Client).events(),
        inbound("c19").from(&client("19")).to(ADS).at("2026-11-23T11:30:00Z").open("sales")
            .ring(&["anna"]).wait(0.3).fail("anna", 0).system_hangs_up().events(),
        outbound("cb19").by("olena").from(ADS).to(&client("19")).at("2026-11-23T11:35:00Z")
            .ring(&["olena"]).wait(1.0).alert("olena").wait(2.0).pick_up("olena").dial_client()
            .wait(0.5).client_fails(403).events(),
        outbound("c21").by("anna").from(ADS).to("+380507777777").at("2026-11-23T12:00:00Z")
            .dial_client().wait(2.0).alert("client").wait(5.0).answer("client").talk(30.0, Agent)
            .events(),
    ]
}

/// marta's manual processing.
pub fn handlings() -> Vec<Handling> {
    vec![
        Handling {
            target: HandleTarget::Client(client("14")),
            reason: HandleReason::Spam,
            note: None,
            by: "marta".into(),
            at: t("2026-11-23T10:30:00Z"),
        },
        Handling {
            target: HandleTarget::Group("c16".into()),
            reason: HandleReason::Other,
            note: Some("silent line".into()),
            by: "marta".into(),
            at: t("2026-11-23T10:50:00Z"),
        },
    ]
}

/// The agents' states (local times in comments):
/// - olena: available since Sunday 22:00 and all Monday (a change *before* the period);
/// - anna: available 08:55, away (lunch) 13:00, available 14:00, offline 18:00;
/// - bohdan: available 09:00, on a call 11:45:05–11:46:05, wrap-up until 11:46:20, dnd
///   16:30, offline 19:00.
pub fn agent_states() -> Vec<AgentStateEvent> {
    use AgentState::{Available, Away, Dnd, Offline, OnCall, WrapUp};
    vec![
        state("olena", Available, "2026-11-22T20:00:00Z", 1),
        state("anna", Available, "2026-11-23T06:55:00Z", 1),
        state("anna", Away, "2026-11-23T11:00:00Z", 2),
        state("anna", Available, "2026-11-23T12:00:00Z", 3),
        state("anna", Offline, "2026-11-23T16:00:00Z", 4),
        state("bohdan", Available, "2026-11-23T07:00:00Z", 1),
        state("bohdan", OnCall, "2026-11-23T09:45:05Z", 2),
        state("bohdan", WrapUp, "2026-11-23T09:46:05Z", 3),
        state("bohdan", Available, "2026-11-23T09:46:20Z", 4),
        state("bohdan", Dnd, "2026-11-23T14:30:00Z", 5),
        state("bohdan", Offline, "2026-11-23T17:00:00Z", 6),
    ]
}
