//! The day's figures: callback discipline, the agents table and top missers, the JSON keys,
//! and the call log's statuses. Expected values are computed by hand from the table in
//! `day.rs`.

use dialtone_reporter::reports::{self, CallStatus, CallbackStatus, Filter, StatusCode};
use dialtone_reporter::{Direction, MissedReason, Policy};

use crate::day::{self, client};
use crate::support::{ADS, t};
use crate::{NOW, close, day_cdrs};

#[test]
fn callbacks_report_measures_time_to_first_attempt() {
    let cdrs = day_cdrs();
    let report = reports::callbacks(
        &cdrs,
        &day::handlings(),
        &Policy::default(),
        t(NOW),
        &Filter::default(),
    );
    assert!(close(report.sla_seconds, 600.0));
    use CallbackStatus::*;
    let got: Vec<(&str, CallbackStatus, Option<f64>, Option<&str>, bool)> = report
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.as_str(),
                g.status,
                g.time_to_callback_seconds,
                g.callback_agent.as_deref(),
                g.reached,
            )
        })
        .collect();
    // Anonymous groups (c15, c16) cannot be called back and are not listed. 0014 has two
    // groups (split by the handling), neither called back.
    let expected = vec![
        ("c02", Never, None, None, false),
        ("c01", Never, None, None, false),
        ("c03", Never, None, None, false),
        ("c04", Never, None, None, false),
        ("c05", Never, None, None, false),
        ("c06", Never, None, None, false),
        ("c07", Never, None, None, false),
        // 08:10 → 08:25: 15 min > 10 min SLA.
        ("c08", Late, Some(900.0), Some("bohdan"), true),
        // 09:00 → 09:05.
        ("c11", WithinSla, Some(300.0), Some("anna"), true),
        // Processed by the client's own call, but nobody called: never.
        ("c12", Never, None, None, false),
        ("c14a", Never, None, None, false),
        ("c14b", Never, None, None, false),
        // 11:30 → 11:35, refused with 403: an attempt within the SLA that did not reach.
        ("c19", WithinSla, Some(300.0), Some("olena"), false),
    ];
    assert_eq!(got, expected);

    let row = |name: &str| {
        report
            .agents
            .iter()
            .find(|r| r.agent == name)
            .unwrap_or_else(|| panic!("row {name}"))
            .clone()
    };
    let brief = |r: &reports::CallbackAgentRow| (r.called_back, r.within_sla, r.late, r.never);
    // anna: first to call 0011 (within); missed 0005, 0007, 0014 twice — never called back.
    assert_eq!(brief(&row("anna")), (1, 1, 0, 4));
    assert!(close(row("anna").share_within_sla, 1.0 / 5.0));
    assert!(close(row("anna").avg_time_to_callback_seconds, 300.0));
    // bohdan: called 0008 late; missed 0005 and 0007 (0008 and 0011 were called back).
    assert_eq!(brief(&row("bohdan")), (1, 0, 1, 2));
    assert!(close(row("bohdan").share_within_sla, 0.0));
    // olena: called 0019 within; missed 0002.
    assert_eq!(brief(&row("olena")), (1, 1, 0, 1));
    assert!(close(row("olena").share_within_sla, 0.5));
    // taras missed only c18, which is not missed (its queue callback was answered).
    assert_eq!(report.agents.len(), 3);
    assert_eq!(brief(&report.total), (3, 2, 1, 10));
    assert!(close(report.total.share_within_sla, 2.0 / 13.0));
    assert!(close(
        report.total.avg_time_to_callback_seconds,
        (900.0 + 300.0 + 300.0) / 3.0
    ));

    let late_only = Filter {
        status: Some(StatusCode::Callback(Late)),
        ..Filter::default()
    };
    let late = reports::callbacks(
        &cdrs,
        &day::handlings(),
        &Policy::default(),
        t(NOW),
        &late_only,
    );
    assert_eq!(late.groups.len(), 1);
    assert_eq!(late.groups[0].group_id, "c08");
}

#[test]
fn agents_table_and_top_missers() {
    let cdrs = day_cdrs();
    let report = reports::agents(&cdrs, &Policy::default(), &Filter::default());
    let brief = |r: &reports::AgentRow| {
        (
            r.agent.clone(),
            r.offered,
            r.answered,
            r.missed,
            r.declined,
            r.short_calls,
            r.missed_without_callback,
        )
    };
    let got: Vec<_> = report.agents.iter().map(brief).collect();
    let row = |a: &str, o, an, m, d, s, w| (a.to_owned(), o, an, m, d, s, w);
    let expected = vec![
        // anna: alerted on c05 c07 c08 c09 c10 c14a c14b (not c06: 486 at once; not c12: 480
        // without 180; not c19: unreachable) = 7. Answered c10. Missed c05 (caller hung up),
        // c07, c08 (declined), c14a, c14b = 5; c09 was a colleague's (not missed). Short call:
        // c10 (3 s talk). Without callback: c05, c07, c14a, c14b (c08 was called back) = 4.
        row("anna", 7, 1, 5, 1, 1, 4),
        // bohdan: c05 c07 c08 c09 c11 c13 c15 c16 = 8 (not c06: unreachable). Answered c13.
        // Missed c05 c07 c08 c11 c15 c16 = 6. Without callback: c05, c07 (c08/c11 called
        // back; c15/c16 anonymous cannot be) = 2.
        row("bohdan", 8, 1, 6, 0, 0, 2),
        // olena: c02 (missed, after hours) and c09 (answered on her mobile; her softphone and
        // mobile legs are one offer) = 2. Without callback: c02.
        row("olena", 2, 1, 1, 0, 0, 1),
        // taras: c18, timed out in the queue: missed, but the call itself is not (callback
        // answered), so not "without callback".
        row("taras", 1, 0, 1, 0, 0, 0),
    ];
    assert_eq!(got, expected);
    let anna = &report.agents[0];
    assert!(close(anna.miss_rate, 5.0 / 6.0));
    assert!(
        close(anna.avg_time_to_answer_seconds, 2.0),
        "c10: alerted 1 s, answered 3 s"
    );
    assert_eq!(
        (
            anna.short_calls_agent_hung_up,
            anna.short_calls_client_hung_up
        ),
        (1, 0)
    );
    assert!(close(report.agents[1].miss_rate, 6.0 / 7.0));
    assert!(
        close(report.agents[1].avg_time_to_answer_seconds, 4.0),
        "c13: 1 s → 5 s"
    );
    assert!(
        close(report.agents[2].avg_time_to_answer_seconds, 4.0),
        "c09: softphone 180 at 11 s, mobile answer at 15 s"
    );
    assert!(close(report.agents[3].miss_rate, 1.0));
    assert!(close(report.agents[3].avg_time_to_answer_seconds, 0.0));

    let total = &report.total;
    assert_eq!(brief(total), row("total", 18, 3, 13, 1, 1, 7));
    assert!(close(total.miss_rate, 13.0 / 16.0));
    assert!(close(total.avg_time_to_answer_seconds, 10.0 / 3.0));

    let only_olena = Filter {
        agent: Some("olena".into()),
        ..Filter::default()
    };
    let olena = reports::agents(&cdrs, &Policy::default(), &only_olena);
    assert_eq!(olena.agents.len(), 1);
    assert_eq!(brief(&olena.total), row("total", 2, 1, 1, 0, 0, 1));

    let names =
        |rows: Vec<reports::AgentRow>| rows.into_iter().map(|r| r.agent).collect::<Vec<_>>();
    // 6/7 > 5/6 > 1/2; taras (1/1) was offered only once.
    assert_eq!(
        names(reports::top_missers(
            &cdrs,
            &Policy::default(),
            &Filter::default(),
            2,
            2
        )),
        ["bohdan", "anna"]
    );
    assert_eq!(
        names(reports::top_missers(
            &cdrs,
            &Policy::default(),
            &Filter::default(),
            5,
            0
        )),
        ["taras", "bohdan", "anna", "olena"]
    );
}

#[test]
fn agents_rows_serialize_with_the_precise_json_keys() {
    let cdrs = day_cdrs();
    let report = reports::agents(&cdrs, &Policy::default(), &Filter::default());
    let json = serde_json::to_value(&report.agents[0]).expect("serializes");
    for key in [
        "agent",
        "offered",
        "answered",
        "missed",
        "declined",
        "miss_rate",
        "avg_time_to_answer_seconds",
        "short_calls",
        "missed_without_callback",
    ] {
        assert!(json.get(key).is_some(), "agents rows carry {key}");
    }
    let missed = reports::missed(&cdrs, &Filter::default());
    let json = serde_json::to_value(&missed[1]).expect("serializes");
    assert_eq!(json["call_id"], "c19");
    assert_eq!(json["started_at"], "2026-11-23T11:30:00Z");
    assert_eq!(json["caller"], client("19").as_str());
    assert_eq!(json["number"], ADS);
    assert_eq!(json["reason"], "all_agents_unavailable");
    assert_eq!(json["agents_alerted"], serde_json::json!([]));
    assert_eq!(json["status"], "called_back");
    assert_eq!(json["voicemail"], false);
}

#[test]
fn call_log_statuses() {
    let cdrs = day_cdrs();
    let rows = reports::calls(&cdrs, &Filter::default(), None);
    assert_eq!(rows.len(), 26);
    let count = |s: CallStatus| rows.iter().filter(|r| r.status == s).count();
    // Red: 13 misses nobody tried to call back.
    assert_eq!(count(CallStatus::Missed), 13);
    // Yellow: c08, c11, c19 (cb19 failed, but it was an attempt).
    assert_eq!(count(CallStatus::CalledBack), 3);
    // Green: c09 c10 c13, c18 (its queue callback answered), and outbound cb08 cb11 cb18 c21.
    assert_eq!(count(CallStatus::Answered), 8);
    assert_eq!(count(CallStatus::NotAnswered), 1);
    assert_eq!(count(CallStatus::Blocked), 1);

    let get = |id: &str| {
        rows.iter()
            .find(|r| r.call_id == id)
            .unwrap_or_else(|| panic!("{id}"))
    };
    let c09 = get("c09");
    assert_eq!(c09.agents, ["anna", "bohdan", "olena"]);
    assert_eq!(c09.answered_by.as_deref(), Some("olena"));
    assert!(close(c09.wait_seconds, 15.0) && close(c09.talk_seconds, 120.0));
    assert_eq!(c09.recording_path.as_deref(), Some("recordings/c09.wav"));
    assert_eq!(
        c09.hangup_party,
        Some(dialtone_reporter::HangupParty::Client)
    );
    let c18 = get("c18");
    assert_eq!((c18.status, c18.reason), (CallStatus::Answered, None));
    let cb19 = get("cb19");
    assert_eq!(cb19.reason, Some(MissedReason::ForbiddenDestination));
    assert!(cb19.callback);
    assert!(get("cb18").callback && get("cb08").callback);
    assert!(!get("c21").callback, "no miss of that client before");
    assert_eq!(get("c21").answered_by.as_deref(), Some("anna"));
    assert!(get("c07").voicemail);

    let outbound = reports::calls(&cdrs, &Filter::default(), Some(Direction::Outbound));
    let ids: Vec<&str> = outbound.iter().map(|r| r.call_id.as_str()).collect();
    assert_eq!(ids, ["c21", "cb19", "cb18", "cb11", "cb08"]);
    let red = Filter {
        status: Some(StatusCode::Call(CallStatus::Missed)),
        agent: Some("olena".into()),
        ..Filter::default()
    };
    let ids: Vec<String> = reports::calls(&cdrs, &red, None)
        .into_iter()
        .map(|r| r.call_id)
        .collect();
    assert_eq!(ids, ["c02"]);
}
