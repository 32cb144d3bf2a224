//! `HandleGroup` on both databases.

use std::path::Path;

use dialtone_proto::v1 as pb;
use dialtone_reporter::time::to_proto_timestamp;
use jiff::Timestamp;

use crate::support::reporter::TestReporter;
use crate::support::t;
use crate::{NOW, day, load_day};

on_both!(handle_group_moves_a_group_to_the_processed_view);

async fn handle_group_moves_a_group_to_the_processed_view(url: &str, data: &Path) {
    let r = TestReporter::start(url, data, Some(t(NOW))).await;
    load_day(&r).await;
    let mut client = r.reports().await;
    let open = |groups: &[pb::UnprocessedGroup]| -> Vec<String> {
        groups.iter().map(|g| g.group_id.clone()).collect()
    };
    let list = |view: pb::UnprocessedView| pb::UnprocessedRequest {
        filter: None,
        view: view as i32,
    };
    let before = client
        .unprocessed(list(pb::UnprocessedView::Open))
        .await
        .unwrap()
        .into_inner();
    assert!(open(&before.groups).contains(&"c07".to_owned()));

    let handled = client
        .handle_group(pb::HandleGroupRequest {
            client: day::client("07"),
            reason: "wrong_number".into(),
            by: "marta".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .group
        .unwrap();
    assert_eq!(handled.group_id, "c07");
    assert_eq!(handled.missed_count, 2);
    let p = handled.processed.unwrap();
    assert_eq!(
        (p.how, p.by.as_str(), p.reason.as_str(), p.at),
        (
            pb::ProcessedHow::Handled as i32,
            "marta",
            "wrong_number",
            Some(to_proto_timestamp(t(NOW)))
        )
    );

    let after = client
        .unprocessed(list(pb::UnprocessedView::Open))
        .await
        .unwrap()
        .into_inner();
    assert!(!open(&after.groups).contains(&"c07".to_owned()));
    assert_eq!(after.groups.len(), before.groups.len() - 1);
    let processed = client
        .unprocessed(list(pb::UnprocessedView::Processed))
        .await
        .unwrap()
        .into_inner();
    let c07 = processed
        .groups
        .iter()
        .find(|g| g.group_id == "c07")
        .unwrap();
    let how = c07.processed.as_ref().unwrap();
    assert_eq!(
        (how.by.as_str(), how.reason.as_str()),
        ("marta", "wrong_number")
    );

    // An anonymous caller's group, by id, with a note.
    let anon = client
        .handle_group(pb::HandleGroupRequest {
            group_id: "c15".into(),
            reason: "other".into(),
            note: "hung up before the greeting, twice".into(),
            by: "marta".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .group
        .unwrap();
    assert!(anon.anonymous);
    assert_eq!(
        anon.processed.unwrap().note,
        "hung up before the greeting, twice"
    );
    assert_eq!(
        r.store.handlings_since(Timestamp::MIN).await.unwrap().len(),
        4
    );

    // Refusals.
    let code = |r: Result<tonic::Response<pb::HandleGroupResponse>, tonic::Status>| {
        let status = r.unwrap_err();
        (status.code(), status.message().to_owned())
    };
    let again = code(
        client
            .handle_group(pb::HandleGroupRequest {
                client: day::client("07"),
                reason: "spam".into(),
                by: "marta".into(),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(again.0, tonic::Code::NotFound);
    assert!(again.1.contains("client +380501110007"), "{}", again.1);
    let unknown = code(
        client
            .handle_group(pb::HandleGroupRequest {
                client: "+380000000000".into(),
                reason: "spam".into(),
                by: "marta".into(),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(unknown.0, tonic::Code::NotFound);
    for (reason, note, by) in [
        ("other", "", "marta"),
        ("bored", "", "marta"),
        ("spam", "", ""),
    ] {
        let refused = code(
            client
                .handle_group(pb::HandleGroupRequest {
                    client: day::client("05"),
                    reason: reason.into(),
                    note: note.into(),
                    by: by.into(),
                    ..Default::default()
                })
                .await,
        );
        assert_eq!(
            refused.0,
            tonic::Code::InvalidArgument,
            "{reason}/{by}: {}",
            refused.1
        );
    }

    // The live board needs the router.
    let live = client.live(pb::LiveRequest::default()).await.unwrap_err();
    assert_eq!(live.code(), tonic::Code::FailedPrecondition);
    assert!(live.message().contains("router"));
}
