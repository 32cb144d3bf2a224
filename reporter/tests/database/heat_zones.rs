//! The heat map places each number's calls in its own schedule's zone when the numbers use
//! schedules in different zones (the summaries are summed per zone by the database): two weeks
//! of random calls to a number in New York, two in Kyiv and one no longer configured (counted
//! in the main zone, Kyiv's: two numbers use it), over a period of whole hours and over one
//! with partial hours at both ends, against counts made here call by call.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use dialtone_proto::v1 as pb;
use dialtone_reporter::Cdr;
use dialtone_reporter::time::to_proto_timestamp;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::support::reporter::{TestReporter, call, demo_snapshot, publish_raw};
use crate::support::{inbound, t};

on_both!(heat_map_counts_each_number_in_its_zone);

const KYIV_A: &str = "+380441234567";
const KYIV_B: &str = "+380441234569";
const NEW_YORK: &str = "+380441234568";
const GONE: &str = "+380449999999";

async fn heat_map_counts_each_number_in_its_zone(url: &str, data: &Path) {
    let start = t("2026-11-02T00:00:00Z");
    let now = start + SignedDuration::from_hours(24 * 15);
    let r = TestReporter::start(url, data, Some(now)).await;

    // ads-landing moves to a New York schedule; a second Kyiv number makes Kyiv the main zone.
    let mut snapshot = demo_snapshot().clone();
    let mut ny = snapshot.schedules["office-hours"].clone();
    ny.name = "ny-hours".into();
    ny.timezone = "America/New_York".into();
    ny.tz = TimeZone::get("America/New_York").unwrap();
    snapshot.schedules.insert("ny-hours".into(), ny);
    let ads = snapshot
        .numbers
        .values_mut()
        .find(|n| n.number == NEW_YORK)
        .unwrap();
    ads.schedule = Some("ny-hours".into());
    let mut second = snapshot
        .numbers
        .values()
        .find(|n| n.number == KYIV_A)
        .unwrap()
        .clone();
    second.name = "main-line-2".into();
    second.number = KYIV_B.into();
    snapshot.numbers.insert("main-line-2".into(), second);
    r.config.send(Arc::new(snapshot)).unwrap();

    let mut rng = fastrand::Rng::with_seed(5);
    let mut events = Vec::new();
    for i in 0..300 {
        let number = [KYIV_A, KYIV_B, NEW_YORK, GONE][rng.usize(..4)];
        let at = start + SignedDuration::from_secs(rng.i64(0..14 * 86_400));
        let c = inbound(&format!("h{i}"))
            .from(&format!("+38067000{:04}", rng.u32(..50)))
            .to(number)
            .at(&at.to_string())
            .open("main")
            .ring(&["anna"])
            .alert("anna")
            .wait(4.0);
        let c = if rng.bool() {
            c.answer("anna").talk(30.0, pb::HangupParty::Client)
        } else {
            c.wait(12.0).timeout().caller_hangs_up()
        };
        events.extend(c.events().into_iter().map(call));
    }
    let (_, rejected) = publish_raw(r.addr, events).await;
    assert!(rejected.is_empty(), "{rejected:?}");
    let cdrs: Vec<Cdr> = r
        .store
        .cdrs_between(Timestamp::MIN, Timestamp::MAX)
        .await
        .unwrap();
    assert_eq!(cdrs.len(), 300);

    let kyiv = TimeZone::get("Europe/Kyiv").unwrap();
    let new_york = TimeZone::get("America/New_York").unwrap();
    let mut client = r.reports().await;
    for (from, to) in [
        (start, start + SignedDuration::from_hours(24 * 14)),
        (
            start + SignedDuration::from_mins(30),
            start + SignedDuration::from_mins(24 * 60 * 13 + 10),
        ),
    ] {
        let mut want: BTreeMap<(u32, u32), (u32, u32)> = BTreeMap::new();
        for cdr in cdrs
            .iter()
            .filter(|c| c.started_at >= from && c.started_at < to)
        {
            let tz = if cdr.number == NEW_YORK {
                &new_york
            } else {
                &kyiv
            };
            let local = tz.to_datetime(cdr.started_at);
            let key = (
                u32::try_from(local.weekday().to_monday_one_offset()).unwrap(),
                u32::try_from(local.hour()).unwrap(),
            );
            let cell = want.entry(key).or_default();
            cell.0 += 1;
            cell.1 += u32::from(cdr.missed.is_some());
        }
        assert!(want.values().any(|c| c.1 > 0), "some calls are missed");
        let got = client
            .heatmap(pb::HeatmapRequest {
                filter: Some(pb::ReportFilter {
                    from: Some(to_proto_timestamp(from)),
                    to: Some(to_proto_timestamp(to)),
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner();
        let got: BTreeMap<(u32, u32), (u32, u32)> = got
            .cells
            .iter()
            .filter(|c| c.inbound > 0)
            .map(|c| ((c.weekday, c.hour), (c.inbound, c.missed)))
            .collect();
        assert_eq!(got, want, "period {from}..{to}");
    }
}
