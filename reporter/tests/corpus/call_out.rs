//! An agent's call out refused by policy (the client's number blocklisted or invalid) after a
//! miss: no leg was ever created, yet PRODUCT.md counts `forbidden_destination` rows as
//! callback attempts, not new groups — in the pure reports and in the store's summaries
//! (`dials`, which decide `missedWithoutCallback` on the agents report's fast path).
//!
//! The client called ads at 08:00:00; bohdan rang from 08:00:01 (alerted at 08:00:02) until
//! the client hung up at 08:00:17: missed `not_answered`, bohdan's miss. At 08:04:00 anna
//! dialled the client from her softphone and the router refused it (blocklisted: 403, ended
//! at once, no leg). Hand-computed: one open group with one attempt, called back by anna in
//! 240 s (within the 10-minute SLA), not reached; c1 is `called_back`; the refused call is a
//! `forbidden_destination` row of its own in the missed list (a callback), `missed` (nothing
//! after it); bohdan has no miss without callback.

use dialtone_proto::v1::{self as pb, CallDisposition, HangupParty};
use dialtone_reporter::reports::{self, CallStatus, CallbackStatus, Filter, View};
use dialtone_reporter::{Cdr, CdrStatus, MissedReason, Policy, assemble_call};
use tempfile::TempDir;

use crate::support::reporter::{TestReporter, call, sqlite_url};
use crate::support::{ADS, inbound, outbound, t};

const CLIENT: &str = "+380671112299";
const NOW: &str = "2026-11-24T12:00:00Z";

fn events() -> Vec<Vec<pb::CallEvent>> {
    let miss = inbound("c1")
        .from(CLIENT)
        .to(ADS)
        .at("2026-11-24T08:00:00Z")
        .open("sales")
        .wait(1.0)
        .ring(&["bohdan"])
        .wait(1.0)
        .alert("bohdan")
        .wait(15.0)
        .caller_hangs_up()
        .events();
    // What the media node emits for a refusal: the start, then the end with the 403.
    let refused = outbound("r1")
        .by("anna")
        .to(CLIENT)
        .at("2026-11-24T08:04:00Z")
        .end(HangupParty::System, CallDisposition::Failed, 403)
        .events();
    vec![miss, refused]
}

fn cdrs() -> Vec<Cdr> {
    events()
        .into_iter()
        .map(|e| assemble_call(&e, &Policy::default()).expect("a complete call"))
        .collect()
}

#[test]
fn a_call_out_refused_by_policy_after_a_miss_is_a_callback_attempt() {
    let cdrs = cdrs();
    let refused = &cdrs[1];
    assert!(refused.legs.is_empty(), "{refused:?}");
    assert_eq!(
        (refused.status, refused.missed, refused.end_sip_code),
        (
            CdrStatus::NotAnswered,
            Some(MissedReason::ForbiddenDestination),
            Some(403)
        )
    );
    assert!(refused.refused_by_policy() && refused.attempted_client());
    let now = t(NOW);
    let policy = Policy::default();

    let groups = reports::unprocessed(&cdrs, &[], &policy, now, &Filter::default(), View::Open);
    let got: Vec<(&str, u32, MissedReason, u32)> = groups
        .iter()
        .map(|g| {
            (
                g.client.as_deref().unwrap_or_default(),
                g.missed_count,
                g.last_reason,
                g.callback_attempts,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![(CLIENT, 1, MissedReason::NotAnswered, 1)],
        "one group, the refusal an attempt and no group of its own"
    );

    let cb = reports::callbacks(&cdrs, &[], &policy, now, &Filter::default());
    assert_eq!(cb.groups.len(), 1, "{cb:?}");
    let g = &cb.groups[0];
    assert_eq!(
        (
            g.attempts,
            g.reached,
            g.status,
            g.time_to_callback_seconds,
            g.callback_agent.as_deref()
        ),
        (
            1,
            false,
            CallbackStatus::WithinSla,
            Some(240.0),
            Some("anna")
        )
    );
    let rows: Vec<(&str, u32, u32)> = cb
        .agents
        .iter()
        .map(|a| (a.agent.as_str(), a.called_back, a.never))
        .collect();
    assert_eq!(rows, vec![("anna", 1, 0)]);

    let calls = reports::calls(&cdrs, &Filter::default(), None);
    let got: Vec<(&str, CallStatus, bool)> = calls
        .iter()
        .map(|c| (c.call_id.as_str(), c.status, c.callback))
        .collect();
    assert_eq!(
        got,
        vec![
            ("r1", CallStatus::NotAnswered, true),
            ("c1", CallStatus::CalledBack, false),
        ]
    );

    let missed = reports::missed(&cdrs, &Filter::default());
    let got: Vec<(&str, MissedReason, CallStatus)> = missed
        .iter()
        .map(|r| (r.call_id.as_str(), r.reason, r.status))
        .collect();
    assert_eq!(
        got,
        vec![
            ("r1", MissedReason::ForbiddenDestination, CallStatus::Missed),
            ("c1", MissedReason::NotAnswered, CallStatus::CalledBack),
        ]
    );

    let agents = reports::agents(&cdrs, &policy, &Filter::default());
    let bohdan = agents
        .agents
        .iter()
        .find(|a| a.agent == "bohdan")
        .expect("bohdan's row");
    assert_eq!((bohdan.missed, bohdan.missed_without_callback), (1, 0));
}

/// The same calls through the store: the summaries' `dials` count the refusal, so the agents
/// report read from them gives bohdan no miss without callback either.
#[tokio::test]
async fn the_store_summaries_count_the_refusal_as_a_dial() {
    let data = TempDir::new().expect("tempdir");
    let r = TestReporter::start(&sqlite_url(data.path()), data.path(), Some(t(NOW))).await;
    let envelopes: Vec<pb::IngestEvent> = events().into_iter().flatten().map(call).collect();
    let ack = r.ingestor.ingest(envelopes).await.expect("stored");
    assert!(ack.rejected.is_empty(), "{ack:?}");
    let ts = |s: &str| dialtone_reporter::time::to_proto_timestamp(t(s));
    let filter = pb::ReportFilter {
        from: Some(ts("2026-11-24T00:00:00Z")),
        to: Some(ts("2026-11-25T00:00:00Z")),
        ..Default::default()
    };
    let mut reports = r.reports().await;
    let agents = reports
        .agents(pb::AgentsRequest {
            filter: Some(filter.clone()),
        })
        .await
        .expect("agents report")
        .into_inner();
    let bohdan = agents
        .agents
        .iter()
        .find(|a| a.agent == "bohdan")
        .expect("bohdan's row");
    assert_eq!(
        (bohdan.missed, bohdan.missed_without_callback),
        (1, 0),
        "{bohdan:?}"
    );
    let calls = reports
        .calls(pb::CallsRequest {
            filter: Some(filter),
            ..Default::default()
        })
        .await
        .expect("calls report")
        .into_inner()
        .calls;
    let c1 = calls
        .iter()
        .find(|c| c.call_id == "c1")
        .expect("the missed call");
    assert_eq!(c1.status, "called_back", "{c1:?}");
    r.abort();
}
