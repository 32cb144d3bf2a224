//! The corpus day over gRPC gives the pure functions' rows, on both databases.

use std::path::Path;

use dialtone_proto::v1 as pb;
use dialtone_reporter::reports::{self, AgentStateChange, Filter, HeatmapOptions, View};
use dialtone_reporter::reports_service::convert::{self, Links};
use dialtone_reporter::time::to_proto_timestamp;
use dialtone_reporter::{MissedReason, Policy};
use jiff::Timestamp;

use crate::support::reporter::{TestReporter, demo_snapshot};
use crate::support::t;
use crate::{NOW, day, day_cdrs, load_day};

on_both!(corpus_reports_match_the_pure_functions);

async fn corpus_reports_match_the_pure_functions(url: &str, data: &Path) {
    let now = t(NOW);
    let r = TestReporter::start(url, data, Some(now)).await;
    load_day(&r).await;

    let mem = day_cdrs();
    let stored = r
        .store
        .cdrs_between(Timestamp::MIN, Timestamp::MAX)
        .await
        .unwrap();
    assert_eq!(stored, mem, "the stored CDRs are the assembler's");
    let counts = r.store.counts().await.unwrap();
    let call_events = day::calls().into_iter().flatten().count() as u64;
    assert_eq!(
        (
            counts.events,
            counts.cdrs,
            counts.agent_states,
            counts.handlings
        ),
        (call_events, mem.len() as u64, 11, 2)
    );

    let snapshot = demo_snapshot();
    let policy = Policy::from(&snapshot.call_center.spec.missed_calls);
    let handlings = day::handlings();
    let (from, to) = (t("2026-11-23T00:00:00Z"), t("2026-11-24T00:00:00Z"));
    let period = pb::ReportFilter {
        from: Some(to_proto_timestamp(from)),
        to: Some(to_proto_timestamp(to)),
        ..Default::default()
    };
    let filter = Filter {
        from: Some(from),
        to: Some(to),
        ..Filter::default()
    };
    let links = Links(None);
    let names = convert::display_names(&snapshot);
    let mut client = r.reports().await;

    // Missed, unfiltered and filtered.
    let got = client
        .missed(pb::MissedRequest {
            filter: Some(period.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    let want: Vec<pb::MissedCall> = reports::missed(&mem, &filter)
        .into_iter()
        .map(|row| convert::missed_call(row, &links))
        .collect();
    assert_eq!(want.len(), 17);
    assert_eq!(got.calls, want);
    let meta = got.meta.unwrap();
    assert_eq!(
        (meta.from, meta.to, meta.truncated),
        (period.from, period.to, false)
    );
    let narrow = pb::ReportFilter {
        reason: "not_answered".into(),
        agent: "anna".into(),
        limit: 2,
        ..period.clone()
    };
    let got = client
        .missed(pb::MissedRequest {
            filter: Some(narrow),
        })
        .await
        .unwrap()
        .into_inner();
    let narrow = Filter {
        reason: Some(MissedReason::NotAnswered),
        agent: Some("anna".into()),
        ..filter.clone()
    };
    let want: Vec<pb::MissedCall> = reports::missed(&mem, &narrow)
        .into_iter()
        .take(2)
        .map(|row| convert::missed_call(row, &links))
        .collect();
    assert_eq!(got.calls, want);
    assert!(
        got.meta.unwrap().truncated,
        "4 rows match, 2 were asked for"
    );

    // The call log.
    let got = client
        .calls(pb::CallsRequest {
            filter: Some(period.clone()),
            direction: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let want: Vec<pb::CallRow> = reports::calls(&mem, &filter, None)
        .into_iter()
        .map(|row| convert::call_row(row, &links))
        .collect();
    assert_eq!(got.calls.len(), mem.len());
    assert_eq!(got.calls, want);

    // Agents and top missers.
    let got = client
        .agents(pb::AgentsRequest {
            filter: Some(period.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    let want = reports::agents(&mem, &policy, &filter);
    let rows: Vec<pb::AgentRow> = want
        .agents
        .into_iter()
        .map(|row| convert::agent_row(row, &names))
        .collect();
    assert_eq!(got.agents, rows);
    assert!(got.agents.iter().all(|a| !a.display_name.is_empty()));
    assert_eq!(
        got.total,
        Some(convert::agent_row(want.total, &Default::default()))
    );
    let got = client
        .top_missers(pb::TopMissersRequest {
            filter: Some(period.clone()),
            min_offered: 1,
        })
        .await
        .unwrap()
        .into_inner();
    let want: Vec<pb::AgentRow> = reports::top_missers(&mem, &policy, &filter, 5, 1)
        .into_iter()
        .map(|row| convert::agent_row(row, &names))
        .collect();
    assert_eq!(got.agents, want);

    // Callbacks.
    let got = client
        .callbacks(pb::CallbacksRequest {
            filter: Some(period.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    let want = reports::callbacks(&mem, &handlings, &policy, now, &filter);
    let groups: Vec<pb::CallbackGroupRow> = want
        .groups
        .into_iter()
        .map(convert::callback_group)
        .collect();
    let agents: Vec<pb::CallbackAgentRow> = want
        .agents
        .into_iter()
        .map(convert::callback_agent)
        .collect();
    assert_eq!(got.groups, groups);
    assert_eq!(got.agents, agents);
    assert_eq!(got.total, Some(convert::callback_agent(want.total)));
    assert_eq!(got.sla.map(|d| d.seconds), Some(600));

    // The unprocessed list, each view, as of now.
    for (view, pview) in [
        (View::Open, pb::UnprocessedView::Unspecified),
        (View::Processed, pb::UnprocessedView::Processed),
        (View::All, pb::UnprocessedView::All),
    ] {
        let got = client
            .unprocessed(pb::UnprocessedRequest {
                filter: None,
                view: pview as i32,
            })
            .await
            .unwrap()
            .into_inner();
        let want: Vec<pb::UnprocessedGroup> =
            reports::unprocessed(&mem, &handlings, &policy, now, &Filter::default(), view)
                .into_iter()
                .map(convert::group)
                .collect();
        assert!(!want.is_empty());
        assert_eq!(got.groups, want, "{view:?}");
    }

    // The heat map, in the schedule's zone against its open hours.
    let got = client
        .heatmap(pb::HeatmapRequest {
            filter: Some(period.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    let schedule = snapshot.schedules.get("office-hours").unwrap();
    let states: Vec<AgentStateChange> = day::agent_states()
        .iter()
        .map(|s| AgentStateChange::try_from(s).unwrap())
        .collect();
    let want = reports::heatmap(
        &mem,
        &filter,
        &HeatmapOptions {
            from,
            to,
            tz: &schedule.tz,
            schedule: Some(schedule),
            agent_states: &states,
        },
    )
    .unwrap();
    assert_eq!(got.time_zones, ["Europe/Kyiv"]);
    let cells: Vec<(u32, u32, u32, u32, f64, f64, u32)> = got
        .cells
        .iter()
        .map(|c| {
            (
                c.weekday,
                c.hour,
                c.inbound,
                c.missed,
                c.open_share,
                c.available_agents,
                c.days,
            )
        })
        .collect();
    let expected: Vec<(u32, u32, u32, u32, f64, f64, u32)> = want
        .cells
        .iter()
        .map(|c| {
            (
                u32::from(c.weekday),
                u32::from(c.hour),
                c.inbound,
                c.missed,
                c.open_share.unwrap(),
                c.available_agents,
                c.days,
            )
        })
        .collect();
    assert_eq!(cells, expected);
    assert!(cells.iter().map(|c| c.2).sum::<u32>() > 0);
}
