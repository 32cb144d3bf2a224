//! The periodic checks that enqueue events no single call event causes: `callback.due`,
//! `unprocessed.processed`, the alerts and the daily summary. Each enqueues with a
//! deterministic id (or in one transaction with the alert's state), so a check repeated, or
//! run again after a restart, never enqueues twice.

use std::collections::BTreeSet;

use dialtone_model::Snapshot;
use dialtone_model::loader::values::parse_window;
use dialtone_model::resources::call_center::{AlertSpec, WebhookEvent};
use jiff::{SignedDuration, Timestamp, tz::TimeZone};

use super::payload::{self, AlertPayload};
use super::{MAX_EVENT_AGE, Options, subscribed};
use crate::cdr::Cdr;
use crate::policy::Policy;
use crate::reports::{self, Filter, Handling, UnprocessedGroup, View};
use crate::store::{ReportWindow, Store, StoreError};

/// What one check enqueued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckOutcome {
    /// `callback.due` events enqueued.
    pub callbacks_due: usize,
    /// `unprocessed.processed` events enqueued.
    pub processed: usize,
    /// `alert` events enqueued.
    pub alerts: usize,
    /// `summary.top_missers` events enqueued.
    pub summaries: usize,
}

/// The window an `agentMissRateAbove` alert uses when it names none.
pub const DEFAULT_ALERT_WINDOW: &str = "1h";

/// The instant just after `t`: the exclusive end that includes `t`.
fn after(t: Timestamp) -> Timestamp {
    t.checked_add(SignedDuration::from_nanos(1)).unwrap_or(t)
}

fn max_age() -> SignedDuration {
    SignedDuration::try_from(MAX_EVENT_AGE).unwrap_or(SignedDuration::MAX)
}

/// Runs every check as of `now` with the configuration `snapshot`.
///
/// # Errors
///
/// A database error; what was enqueued before it stays enqueued (and is not enqueued again by
/// the next check).
pub async fn check(
    store: &Store,
    snapshot: &Snapshot,
    options: &Options,
    now: Timestamp,
) -> Result<CheckOutcome, StoreError> {
    let mut outcome = CheckOutcome::default();
    let spec = &snapshot.call_center.spec;
    let policy = Policy::from(&spec.missed_calls);
    let wants_due = subscribed(snapshot, WebhookEvent::CallbackDue);
    let wants_processed = subscribed(snapshot, WebhookEvent::UnprocessedProcessed);
    let backlog_alerts: Vec<(&AlertSpec, i32)> = spec
        .alerts
        .iter()
        .filter_map(|a| Some((a, a.when.unprocessed_above?)))
        .collect();
    if wants_due || wants_processed || !backlog_alerts.is_empty() {
        let groups = unprocessed_groups(store, &policy, now).await?;
        if wants_due {
            outcome.callbacks_due = callbacks_due(store, &groups, &policy, now).await?;
        }
        if wants_processed {
            outcome.processed = processed(store, &groups, now).await?;
        }
        let open = groups.iter().filter(|g| g.processed.is_none()).count();
        for (alert, threshold) in backlog_alerts {
            outcome.alerts += usize::from(backlog(store, alert, threshold, open, now).await?);
        }
    }
    for alert in &spec.alerts {
        if let Some(threshold) = alert.when.agent_miss_rate_above {
            outcome.alerts += miss_rate(store, alert, threshold, &policy, now).await?;
        }
    }
    if let Some(hour) = options.summary_hour_utc {
        outcome.summaries =
            usize::from(summary(store, snapshot, options, hour, &policy, now).await?);
    }
    Ok(outcome)
}

/// The unprocessed list as of `now` (open and processed groups), as the report computes it.
async fn unprocessed_groups(
    store: &Store,
    policy: &Policy,
    now: Timestamp,
) -> Result<Vec<UnprocessedGroup>, StoreError> {
    let since = now
        .checked_sub(policy.unprocessed_window())
        .unwrap_or(Timestamp::MIN);
    let window = ReportWindow {
        from: since,
        to: after(now),
        context_from: since,
        context_to: after(now),
    };
    let cdrs: Vec<Cdr> = store.report_cdrs(&window).await?;
    let handlings: Vec<Handling> = store.handlings_since(since).await?;
    Ok(reports::unprocessed(
        &cdrs,
        &handlings,
        policy,
        now,
        &Filter::default(),
        View::All,
    ))
}

/// `callback.due` for each open, non-anonymous group without any callback attempt whose SLA
/// (`callbackSlaMinutes` after its first miss) has passed — within the last
/// [`MAX_EVENT_AGE`], so that a first start over an old backlog does not flood the CRM.
async fn callbacks_due(
    store: &Store,
    groups: &[UnprocessedGroup],
    policy: &Policy,
    now: Timestamp,
) -> Result<usize, StoreError> {
    let oldest = now.checked_sub(max_age()).unwrap_or(Timestamp::MIN);
    let mut n = 0;
    for g in groups {
        if g.processed.is_some() || g.anonymous || g.callback_attempts > 0 {
            continue;
        }
        let Ok(due) = g.first_missed_at.checked_add(policy.callback_sla()) else {
            continue;
        };
        if due > now || due < oldest {
            continue;
        }
        let event = payload::callback_due(g, due, policy.callback_sla_minutes);
        if store.enqueue_webhook_event(&event, now).await? {
            tracing::info!(group = %g.group_id, client = ?g.client, "callback due");
            n += 1;
        }
    }
    Ok(n)
}

/// `unprocessed.processed` for each group processed within the last [`MAX_EVENT_AGE`].
async fn processed(
    store: &Store,
    groups: &[UnprocessedGroup],
    now: Timestamp,
) -> Result<usize, StoreError> {
    let oldest = now.checked_sub(max_age()).unwrap_or(Timestamp::MIN);
    let mut n = 0;
    for g in groups {
        let Some(p) = &g.processed else { continue };
        if p.at > now || p.at < oldest {
            continue;
        }
        if let Some(event) = payload::group_processed(g)
            && store.enqueue_webhook_event(&event, now).await?
        {
            n += 1;
        }
    }
    Ok(n)
}

/// `unprocessedAbove`: fires once each time the number of open groups goes above the
/// threshold (and again only after it went back to or below it).
async fn backlog(
    store: &Store,
    alert: &AlertSpec,
    threshold: i32,
    open: usize,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let open_f = f64::from(u32::try_from(open).unwrap_or(u32::MAX));
    let above = open_f > f64::from(threshold);
    let payload = AlertPayload {
        name: alert.name.clone(),
        condition: "unprocessed_backlog",
        threshold: f64::from(threshold),
        value: open_f,
        window: None,
        from: None,
        to: None,
        agent: None,
        figures: None,
    };
    let event = payload::alert(
        format!("{}:{}:unprocessed:{now}", payload::ALERT, alert.name),
        now,
        &payload,
        alert.notify.clone(),
    );
    let key = format!("unprocessed:{}", alert.name);
    let fired = store
        .webhook_alert_crossing(&key, above, &event, now)
        .await?;
    if fired {
        tracing::warn!(alert = %alert.name, open, threshold, "unprocessed backlog alert");
    }
    Ok(fired)
}

/// `agentMissRateAbove` over `window`: for each agent whose miss rate over the last window is
/// above the threshold, fires at most once per window.
async fn miss_rate(
    store: &Store,
    alert: &AlertSpec,
    threshold: f64,
    policy: &Policy,
    now: Timestamp,
) -> Result<usize, StoreError> {
    let written = alert
        .when
        .window
        .clone()
        .unwrap_or_else(|| DEFAULT_ALERT_WINDOW.to_owned());
    let Some(secs) = parse_window(&written).and_then(|s| i64::try_from(s).ok()) else {
        tracing::warn!(alert = %alert.name, window = %written, "alert window does not parse; skipped");
        return Ok(0);
    };
    let window = SignedDuration::from_secs(secs);
    let from = now.checked_sub(window).unwrap_or(Timestamp::MIN);
    let cdrs = store
        .report_cdrs(&ReportWindow {
            from,
            to: after(now),
            context_from: from
                .checked_sub(policy.unprocessed_window())
                .unwrap_or(Timestamp::MIN),
            context_to: after(now),
        })
        .await?;
    let filter = Filter {
        from: Some(from),
        to: Some(after(now)),
        ..Filter::default()
    };
    let report = reports::agents(&cdrs, policy, &filter);
    let mut n = 0;
    for row in report.agents {
        if row.answered + row.missed == 0 || row.miss_rate <= threshold {
            continue;
        }
        let payload = AlertPayload {
            name: alert.name.clone(),
            condition: "agent_miss_rate",
            threshold,
            value: row.miss_rate,
            window: Some(written.clone()),
            from: Some(from),
            to: Some(now),
            agent: Some(row.agent.clone()),
            figures: Some(row.clone()),
        };
        let event = payload::alert(
            format!("{}:{}:{}:{now}", payload::ALERT, alert.name, row.agent),
            now,
            &payload,
            alert.notify.clone(),
        );
        let key = format!("miss_rate:{}:{}", alert.name, row.agent);
        if store
            .webhook_alert_throttled(&key, window, &event, now)
            .await?
        {
            tracing::warn!(alert = %alert.name, agent = %row.agent, miss_rate = row.miss_rate, "agent miss rate alert");
            n += 1;
        }
    }
    Ok(n)
}

/// Who receives the daily summary: webhooks that take every event or list `alert` or
/// `summary.top_missers`, and those
/// named by any alert's `notify`.
pub(crate) fn summary_targets(snapshot: &Snapshot) -> Vec<String> {
    let spec = &snapshot.call_center.spec;
    let mut targets: BTreeSet<String> = spec
        .webhooks
        .iter()
        .filter(|w| {
            w.events.is_empty()
                || w.events.contains(&WebhookEvent::Alert)
                || w.events.contains(&WebhookEvent::SummaryTopMissers)
        })
        .map(|w| w.name.clone())
        .collect();
    for alert in &spec.alerts {
        targets.extend(
            alert
                .notify
                .iter()
                .filter(|n| spec.webhooks.iter().any(|w| &w.name == *n))
                .cloned(),
        );
    }
    targets.into_iter().collect()
}

/// The daily `summary.top_missers`, once per UTC date once `hour`:00 UTC has passed: the top
/// missers of the 24 hours before that instant.
async fn summary(
    store: &Store,
    snapshot: &Snapshot,
    options: &Options,
    hour: u8,
    policy: &Policy,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let targets = summary_targets(snapshot);
    if targets.is_empty() {
        return Ok(false);
    }
    let date = now.to_zoned_datetime(TimeZone::UTC).date();
    let Ok(at) = date
        .at(i8::try_from(hour.min(23)).unwrap_or(0), 0, 0, 0)
        .to_zoned_datetime(TimeZone::UTC)
        .map(|z| z.timestamp())
    else {
        return Ok(false);
    };
    if now < at {
        return Ok(false);
    }
    let date = date.to_string();
    let id = format!("{}:{date}", payload::SUMMARY_TOP_MISSERS);
    if store.webhook_event_exists(&id).await? {
        return Ok(false);
    }
    let from = at
        .checked_sub(SignedDuration::from_hours(24))
        .unwrap_or(Timestamp::MIN);
    let cdrs = store
        .report_cdrs(&ReportWindow {
            from,
            to: at,
            context_from: from
                .checked_sub(policy.unprocessed_window())
                .unwrap_or(Timestamp::MIN),
            context_to: after(now),
        })
        .await?;
    let filter = Filter {
        from: Some(from),
        to: Some(at),
        ..Filter::default()
    };
    let rows = reports::top_missers(
        &cdrs,
        policy,
        &filter,
        options.summary_top,
        options.summary_min_offered,
    );
    let event =
        payload::top_missers_summary(&date, from, at, options.summary_min_offered, &rows, targets);
    store.enqueue_webhook_event(&event, now).await
}
