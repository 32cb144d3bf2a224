//! The two reports that are pictures more than tables: the heat map (a weekday × hour grid
//! in the terminal) and the live board.

use super::*;
const HEAT: &[Column] = &[
    Column::count("weekday"),
    Column::count("hour"),
    Column::count("inbound"),
    Column::count("missed"),
    Column::rate("open_share"),
    Column::count("available_agents"),
    Column::count("days"),
];

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// The heat map for a terminal: one line per hour, one column per weekday.
fn heat_grid(report: &pb::HeatmapReport) -> String {
    let mut grid: [[Option<&pb::HeatmapCell>; 7]; 24] = [[None; 7]; 24];
    for c in &report.cells {
        if let (Some(row), Some(slot)) = (
            grid.get_mut(c.hour as usize),
            (c.weekday as usize).checked_sub(1),
        ) && let Some(cell) = row.get_mut(slot)
        {
            *cell = Some(c);
        }
    }
    let text = |c: Option<&pb::HeatmapCell>| -> String {
        let Some(c) = c.filter(|c| c.days > 0) else {
            return String::new();
        };
        let calls = if c.inbound == 0 && c.missed == 0 {
            "-".to_owned()
        } else {
            format!("{}/{}", c.inbound, c.missed)
        };
        let mark = if c.open_share <= 0.0 {
            "*"
        } else if c.open_share < 1.0 {
            "~"
        } else {
            ""
        };
        format!("{calls} {:.1}{mark}", c.available_agents)
    };
    let mut lines: Vec<Vec<String>> = vec![
        std::iter::once("hour".to_owned())
            .chain(WEEKDAYS.iter().map(|d| (*d).to_owned()))
            .collect(),
    ];
    for (hour, row) in grid.iter().enumerate() {
        lines.push(
            std::iter::once(format!("{hour:02}"))
                .chain(row.iter().map(|c| text(*c)))
                .collect(),
        );
    }
    let widths: Vec<usize> = (0..8)
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for l in &lines {
        let cells: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(s, w)| format!("{s:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    let (inbound, missed) = report.cells.iter().fold((0u64, 0u64), |(i, m), c| {
        (i + u64::from(c.inbound), m + u64::from(c.missed))
    });
    let blind: Vec<String> = report
        .cells
        .iter()
        .filter(|c| c.missed > 0 && c.available_agents < 0.5)
        .map(|c| {
            let day = WEEKDAYS
                .get((c.weekday as usize).saturating_sub(1))
                .unwrap_or(&"?");
            format!("{day} {:02}h ({} missed)", c.hour, c.missed)
        })
        .collect();
    out.push_str(
        "cell: inbound/missed calls, then agents available on average; * closed all period, \
         ~ open part of it\n",
    );
    if !blind.is_empty() {
        out.push_str(&format!(
            "blind zones (missed calls, nobody available): {}\n",
            blind.join(", ")
        ));
    }
    let zones = if report.time_zones.is_empty() {
        "UTC".to_owned()
    } else {
        report.time_zones.join(", ")
    };
    out.push_str(&format!(
        "total: {inbound} inbound, {missed} missed; local time {zones}; {}\n",
        period_text(report.meta.as_ref())
    ));
    out
}

pub(super) async fn heatmap(a: HeatmapArgs) -> Result<(), Failure> {
    let filter = pb::ReportFilter {
        number: num(&a.number.number),
        ..a.period.filter(DefaultStart::Days(7))?
    };
    let conn = &a.out.conn;
    let report = conn
        .connect()
        .await?
        .heatmap(pb::HeatmapRequest {
            filter: Some(filter),
        })
        .await
        .map_err(|s| conn.failure(&s))?
        .into_inner();
    if a.out.format == Format::Table {
        out(&heat_grid(&report));
        return Ok(());
    }
    let rows: Vec<Row> = report
        .cells
        .iter()
        .map(|c| {
            obj(json!({
                "weekday": c.weekday,
                "hour": c.hour,
                "inbound": c.inbound,
                "missed": c.missed,
                "open_share": c.open_share,
                "available_agents": c.available_agents,
                "days": c.days,
            }))
        })
        .collect();
    out(&output::render(a.out.format, HEAT, &rows, &[]));
    Ok(())
}

const LIVE_AGENTS: &[Column] = &[
    Column::text("agent"),
    Column::text("display_name").hidden(),
    Column::text("extension").hidden(),
    Column::text("state"),
    Column::text("away_label").title("label"),
    Column::time("since"),
    Column::count("active_calls").title("calls"),
    Column::count("max_concurrent_calls").title("max"),
    Column::count("answered_today"),
    Column::flag("reachable"),
    Column::time("wrap_up_until").hidden(),
    Column::time("last_call_ended_at").hidden(),
    Column::text("call_ids").hidden(),
    Column::text("labels").hidden(),
];

const LIVE_QUEUES: &[Column] = &[
    Column::text("queue"),
    Column::text("strategy"),
    Column::count("waiting"),
    Column::seconds("longest_wait_seconds").title("longest_wait"),
    Column::time("oldest_joined_at").hidden(),
    Column::count("members"),
    Column::count("available"),
    Column::text("callers").hidden(),
];

pub(super) async fn live(a: LiveArgs) -> Result<(), Failure> {
    let conn = &a.out.conn;
    let board = conn
        .connect()
        .await?
        .live(pb::LiveRequest {
            omit_contacts: true,
        })
        .await
        .map_err(|s| conn.failure(&s))?
        .into_inner();
    let at = time(board.at.as_ref());
    let at = at
        .as_str()
        .map_or_else(|| "now".to_owned(), output::whole_seconds);
    let page = if a.queues {
        let rows: Vec<Row> = board
            .queues
            .iter()
            .map(|q| {
                let callers: Vec<Value> = q
                    .callers
                    .iter()
                    .map(|c| {
                        json!({
                            "call_id": c.call_id,
                            "caller": opt(&c.caller),
                            "position": c.position,
                            "joined_at": time(c.joined_at.as_ref()),
                            "callback": c.callback,
                        })
                    })
                    .collect();
                obj(json!({
                    "queue": q.queue,
                    "strategy": opt(q.strategy().code()),
                    "waiting": q.waiting,
                    "longest_wait_seconds": secs(q.longest_wait.as_ref()),
                    "oldest_joined_at": time(q.oldest_joined_at.as_ref()),
                    "members": q.members,
                    "available": q.available,
                    "callers": callers,
                }))
            })
            .collect();
        let waiting: u32 = board.queues.iter().map(|q| q.waiting).sum();
        Page {
            columns: LIVE_QUEUES,
            summary: format!(
                "{}, {waiting} waiting, at {at}",
                plural(rows.len(), "queue", "queues")
            ),
            rows,
            footer: Vec::new(),
            truncated: false,
        }
    } else {
        let rows: Vec<Row> = board
            .agents
            .iter()
            .map(|p| {
                obj(json!({
                    "agent": p.agent,
                    "display_name": opt(&p.display_name),
                    "extension": opt(&p.extension),
                    "state": opt(p.state().code()),
                    "away_label": opt(&p.away_label),
                    "since": time(p.since.as_ref()),
                    "active_calls": p.active_calls,
                    "max_concurrent_calls": p.max_concurrent_calls,
                    "answered_today": p.answered_today,
                    "reachable": p.reachable,
                    "wrap_up_until": time(p.wrap_up_until.as_ref()),
                    "last_call_ended_at": time(p.last_call_ended_at.as_ref()),
                    "call_ids": p.call_ids,
                    "labels": p.labels,
                }))
            })
            .collect();
        let mut states: Vec<(&str, usize)> = Vec::new();
        for p in &board.agents {
            let s = p.state().code();
            match states.iter_mut().find(|(k, _)| *k == s) {
                Some((_, n)) => *n += 1,
                None => states.push((s, 1)),
            }
        }
        let states: Vec<String> = states.iter().map(|(s, n)| format!("{n} {s}")).collect();
        let queues: Vec<String> = board
            .queues
            .iter()
            .filter(|q| q.waiting > 0)
            .map(|q| {
                let longest = match secs(q.longest_wait.as_ref()) {
                    Value::Number(n) => n.as_f64().map(output::human_seconds),
                    _ => None,
                };
                format!(
                    "{} {} waiting{}",
                    q.queue,
                    q.waiting,
                    longest
                        .map(|l| format!(" (longest {l})"))
                        .unwrap_or_default()
                )
            })
            .collect();
        let queues = if queues.is_empty() {
            "nobody waiting in a queue".to_owned()
        } else {
            format!("queues: {}", queues.join(", "))
        };
        Page {
            columns: LIVE_AGENTS,
            summary: format!(
                "{} ({}); {queues}; at {at}",
                plural(rows.len(), "agent", "agents"),
                states.join(", ")
            ),
            rows,
            footer: Vec::new(),
            truncated: false,
        }
    };
    emit(a.out.format, &page);
    Ok(())
}
