//! The query string of report pages (`?from=2026-11-01&to=2026-11-23&agent=anna`) and the
//! filter form that writes it. GET forms keep every filtered view a link a supervisor can
//! bookmark or paste into a chat.

use std::fmt::Write as _;

use dialtone_model::Snapshot;
use dialtone_proto::v1 as pb;
use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use serde::Deserialize;

use super::html::{Zone, escape, url_encode};
use crate::time::to_proto_timestamp;

/// Rows a page shows at most; more and it says so (narrow the filter).
pub const PAGE_ROWS: u32 = 500;

/// The missed reasons, for the reason filter.
pub const REASONS: [&str; 8] = [
    "no_forwarding_scheme",
    "outside_business_hours",
    "abandoned_during_welcome",
    "abandoned_in_ivr",
    "abandoned_short",
    "all_agents_unavailable",
    "not_answered",
    "forbidden_destination",
];

/// Every parameter any page reads; each page uses its own.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FilterQuery {
    /// Start: a date (that whole day, in the page's zone), a local `YYYY-MM-DDTHH:MM` or RFC 3339.
    pub from: Option<String>,
    /// End, the same forms; a date includes that whole day.
    pub to: Option<String>,
    /// A PhoneNumber (E.164 or name).
    pub number: Option<String>,
    /// An agent's name.
    pub agent: Option<String>,
    /// A missed reason code.
    pub reason: Option<String>,
    /// A status code.
    pub status: Option<String>,
    /// A client's number.
    pub caller: Option<String>,
    /// `inbound` or `outbound` (call log).
    pub direction: Option<String>,
    /// Sort column (agents).
    pub sort: Option<String>,
    /// `asc` or `desc`.
    pub dir: Option<String>,
    /// `processed` or `all` (unprocessed).
    pub view: Option<String>,
    /// The group just handled (a notice after the redirect).
    pub handled: Option<String>,
}

fn set(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Parses an instant typed into a filter. `end`: a bare date means the end of that day.
fn instant(s: &str, zone: &Zone, end: bool) -> Result<Timestamp, String> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    let civil = match s.parse::<Date>() {
        Ok(d) if end => d
            .tomorrow()
            .map_err(|e| e.to_string())?
            .to_datetime(jiff::civil::Time::midnight()),
        Ok(d) => d.to_datetime(jiff::civil::Time::midnight()),
        Err(_) => s.parse::<DateTime>().map_err(|_| {
            format!("{s:?} is not a date (2026-11-23), a local time (2026-11-23T09:00) or RFC 3339")
        })?,
    };
    zone.tz.to_timestamp(civil).map_err(|e| e.to_string())
}

impl FilterQuery {
    /// The report filter these parameters ask for, at most `limit` rows.
    ///
    /// # Errors
    ///
    /// A `from`/`to` that does not parse, in words for the page.
    pub fn to_filter(&self, zone: &Zone, limit: u32) -> Result<pb::ReportFilter, String> {
        let from = set(&self.from)
            .map(|s| instant(s, zone, false))
            .transpose()?;
        let to = set(&self.to).map(|s| instant(s, zone, true)).transpose()?;
        let text = |v: &Option<String>| set(v).unwrap_or("").to_owned();
        Ok(pb::ReportFilter {
            from: from.map(to_proto_timestamp),
            to: to.map(to_proto_timestamp),
            number: text(&self.number),
            agent: text(&self.agent),
            status: text(&self.status),
            reason: text(&self.reason),
            caller: text(&self.caller),
            limit,
        })
    }

    /// The query string of the filter part (no sort, no view), `&`-joined, for links that
    /// keep the filter.
    pub fn filter_query(&self) -> String {
        let mut out = String::new();
        for (k, v) in [
            ("from", &self.from),
            ("to", &self.to),
            ("number", &self.number),
            ("agent", &self.agent),
            ("reason", &self.reason),
            ("status", &self.status),
            ("caller", &self.caller),
            ("direction", &self.direction),
        ] {
            if let Some(v) = set(v) {
                let _ = write!(out, "&{k}={}", url_encode(v));
            }
        }
        out
    }
}

/// Which inputs a page's filter form has.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fields {
    /// Number and agent inputs.
    pub who: bool,
    /// The reason select.
    pub reason: bool,
    /// The status select, with these codes.
    pub statuses: Option<&'static [&'static str]>,
    /// The direction select.
    pub direction: bool,
    /// The client number input.
    pub caller: bool,
}

fn select(name: &str, label: &str, options: &[&str], current: Option<&str>) -> String {
    let mut out = format!("<label>{label}<select name=\"{name}\"><option value=\"\">any</option>");
    for o in options {
        let sel = if current == Some(*o) { " selected" } else { "" };
        let _ = write!(
            out,
            "<option value=\"{v}\"{sel}>{v}</option>",
            v = escape(o)
        );
    }
    out.push_str("</select></label>");
    out
}

fn input(name: &str, label: &str, kind: &str, value: Option<&str>, list: Option<&str>) -> String {
    let list = list.map_or(String::new(), |l| format!(" list=\"{l}\""));
    format!(
        "<label>{label}<input type=\"{kind}\" name=\"{name}\" value=\"{}\"{list}></label>",
        escape(value.unwrap_or(""))
    )
}

/// The filter form of a page at `action`, filled with `q`; agents and numbers are offered
/// from the configuration.
pub fn form(action: &str, q: &FilterQuery, fields: Fields, snapshot: &Snapshot) -> String {
    let mut out = format!(
        "<form method=\"get\" action=\"{}\" class=\"filters\">",
        escape(action)
    );
    out.push_str(&input("from", "From", "date", set(&q.from), None));
    out.push_str(&input("to", "To", "date", set(&q.to), None));
    if fields.who {
        out.push_str(&input(
            "number",
            "Number",
            "text",
            set(&q.number),
            Some("dl-numbers"),
        ));
        out.push_str(&input(
            "agent",
            "Agent",
            "text",
            set(&q.agent),
            Some("dl-agents"),
        ));
        out.push_str("<datalist id=\"dl-numbers\">");
        for n in snapshot.numbers.keys() {
            let _ = write!(out, "<option value=\"{}\">", escape(n));
        }
        out.push_str("</datalist><datalist id=\"dl-agents\">");
        for a in snapshot.agents.values() {
            let _ = write!(
                out,
                "<option value=\"{}\">{}</option>",
                escape(&a.name),
                escape(&a.display_name)
            );
        }
        out.push_str("</datalist>");
    }
    if fields.caller {
        out.push_str(&input("caller", "Client", "tel", set(&q.caller), None));
    }
    if fields.reason {
        out.push_str(&select("reason", "Reason", &REASONS, set(&q.reason)));
    }
    if let Some(statuses) = fields.statuses {
        out.push_str(&select("status", "Status", statuses, set(&q.status)));
    }
    if fields.direction {
        out.push_str(&select(
            "direction",
            "Direction",
            &["inbound", "outbound"],
            set(&q.direction),
        ));
    }
    if let Some(sort) = set(&q.sort) {
        let _ = write!(
            out,
            "<input type=\"hidden\" name=\"sort\" value=\"{}\">",
            escape(sort)
        );
        if let Some(dir) = set(&q.dir) {
            let _ = write!(
                out,
                "<input type=\"hidden\" name=\"dir\" value=\"{}\">",
                escape(dir)
            );
        }
    }
    let _ = write!(
        out,
        "<button type=\"submit\">Apply</button> <a href=\"{}\" class=\"reset\">Reset</a></form>",
        escape(action)
    );
    out
}

/// "Period: … – …" from a report's meta, in the page's zone.
pub fn period(meta: Option<&pb::ReportMeta>, zone: &Zone) -> String {
    let Some(m) = meta else {
        return String::new();
    };
    let from = super::html::ts(m.from.as_ref());
    let to = super::html::ts(m.to.as_ref());
    let mut out = String::from("<p class=\"period\">");
    if let (Some(f), Some(t)) = (from, to) {
        let _ = write!(out, "{} – {}", zone.time_el(f), zone.time_el(t));
    }
    if m.truncated {
        let _ = write!(
            out,
            " <span class=\"warn\">Only the first {PAGE_ROWS} rows are shown: narrow the filter.</span>"
        );
    }
    out.push_str("</p>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_whole_days_in_the_zone() {
        let zone = Zone {
            tz: jiff::tz::TimeZone::get("Europe/Kyiv").expect("zone"),
            name: "Europe/Kyiv".into(),
        };
        let q = FilterQuery {
            from: Some("2026-11-23".into()),
            to: Some("2026-11-23".into()),
            ..Default::default()
        };
        let f = q.to_filter(&zone, 10).expect("parses");
        assert_eq!(f.from.map(|t| t.seconds), Some(1_795_384_800));
        assert_eq!(f.to.map(|t| t.seconds), Some(1_795_384_800 + 86_400));
        let bad = FilterQuery {
            from: Some("<b>".into()),
            ..Default::default()
        };
        assert!(bad.to_filter(&zone, 10).is_err());
    }
}
