//! HTML building blocks: escaping, the page frame, and how times, lengths and codes read.
//!
//! Pages are plain strings built with `format!`. Every piece of data that goes into them —
//! names from manifests, numbers from carriers, notes typed by supervisors, error messages —
//! passes through [`escape`] (text and attribute values alike), so a `<script>` in an agent's
//! display name shows as text. Styles and scripts come from `/assets/…` only, which lets the
//! Content-Security-Policy forbid inline ones.

use std::fmt::Write as _;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::auth::Role;

/// Escapes text for HTML content and for quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a value for a URL query component (`a b&c` → `a%20b%26c`).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The time zone pages show times in, and how it is named on them.
#[derive(Debug, Clone)]
pub struct Zone {
    /// The zone.
    pub tz: TimeZone,
    /// Its IANA name, or `UTC`.
    pub name: String,
}

impl Zone {
    /// UTC.
    pub fn utc() -> Self {
        Zone {
            tz: TimeZone::UTC,
            name: "UTC".into(),
        }
    }

    /// `Mon 23 Nov 09:30` in this zone.
    pub fn datetime(&self, t: Timestamp) -> String {
        t.to_zoned_datetime(self.tz.clone())
            .strftime("%a %-d %b %H:%M")
            .to_string()
    }

    /// `09:30:05` in this zone.
    pub fn clock(&self, t: Timestamp) -> String {
        t.to_zoned_datetime(self.tz.clone())
            .strftime("%H:%M:%S")
            .to_string()
    }

    /// A `<time>` element: the zone's reading, the exact instant in `datetime` and a tooltip.
    pub fn time_el(&self, t: Timestamp) -> String {
        format!(
            "<time datetime=\"{t}\" title=\"{t}\">{}</time>",
            escape(&self.datetime(t))
        )
    }
}

/// A timestamp from the wire (`None` when unset or out of range).
pub fn ts(t: Option<&prost_types::Timestamp>) -> Option<Timestamp> {
    t.and_then(|t| Timestamp::new(t.seconds, t.nanos).ok())
}

/// A duration from the wire (zero when unset).
pub fn dur(d: Option<&prost_types::Duration>) -> SignedDuration {
    d.map_or(SignedDuration::ZERO, |d| {
        SignedDuration::new(d.seconds, d.nanos.clamp(-999_999_999, 999_999_999))
    })
}

/// A length of time as people say it: `45s`, `12m 05s`, `3h 20m`, `2d 4h`.
pub fn human(d: SignedDuration) -> String {
    let s = d.as_secs().max(0);
    let (days, hours, mins, secs) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {mins:02}m")
    } else if mins > 0 {
        format!("{mins}m {secs:02}s")
    } else {
        format!("{secs}s")
    }
}

/// Seconds as [`human`] reads them; `—` for none.
pub fn human_secs(secs: f64) -> String {
    if secs > 0.0 && secs.is_finite() {
        // Round to the second: nobody reads milliseconds on a dashboard.
        human(SignedDuration::from_secs(secs.round() as i64))
    } else {
        "—".into()
    }
}

/// A share as a percentage: `12%`.
pub fn percent(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

/// A code (`all_agents_unavailable`) in a `<code>` element, so that the raw code PRODUCT.md
/// asks for stays visible and selectable.
pub fn code(c: &str) -> String {
    if c.is_empty() {
        "—".into()
    } else {
        format!("<code>{}</code>", escape(c))
    }
}

/// A comma-separated list of escaped items; `—` when empty.
pub fn list(items: &[String]) -> String {
    if items.is_empty() {
        "—".into()
    } else {
        items
            .iter()
            .map(|i| escape(i))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The pages, for the navigation bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// `/`.
    Overview,
    /// `/live`.
    Live,
    /// `/unprocessed`.
    Unprocessed,
    /// `/missed`.
    Missed,
    /// `/agents`.
    Agents,
    /// `/callbacks`.
    Callbacks,
    /// `/calls`.
    Calls,
    /// `/heatmap`.
    Heatmap,
    /// Login and error pages.
    None,
}

const NAV: [(Nav, &str, &str); 8] = [
    (Nav::Overview, "/", "Overview"),
    (Nav::Live, "/live", "Live"),
    (Nav::Unprocessed, "/unprocessed", "Unprocessed"),
    (Nav::Missed, "/missed", "Missed"),
    (Nav::Agents, "/agents", "Agents"),
    (Nav::Callbacks, "/callbacks", "Callbacks"),
    (Nav::Calls, "/calls", "Call log"),
    (Nav::Heatmap, "/heatmap", "Heat map"),
];

/// Who is looking, for the page header (`None` on the login page).
#[derive(Debug, Clone)]
pub struct Viewer<'a> {
    /// Their name.
    pub name: &'a str,
    /// Their role.
    pub role: Role,
    /// The CSRF token of their session, for the logout form; `None` with a bearer token.
    pub csrf: Option<&'a str>,
}

/// A whole page: head, header with navigation and the signed-in user, `body`, and a footer
/// naming the time zone of the times shown.
pub fn page(title: &str, nav: Nav, who: Option<&Viewer<'_>>, zone: &Zone, body: &str) -> String {
    let mut links = String::new();
    if who.is_some() {
        for (n, href, label) in NAV {
            let current = if n == nav {
                " aria-current=\"page\""
            } else {
                ""
            };
            let _ = write!(links, "<a href=\"{href}\"{current}>{label}</a>");
        }
    }
    let user = match who {
        Some(v) => {
            let logout = match v.csrf {
                Some(csrf) => format!(
                    "<form method=\"post\" action=\"/logout\" class=\"inline\">\
                     <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                     <button type=\"submit\" class=\"link\">Sign out</button></form>",
                    escape(csrf)
                ),
                None => String::new(),
            };
            format!(
                "<div class=\"who\"><span class=\"user\">{}</span> <span class=\"role role-{}\">{}</span>{logout}</div>",
                escape(v.name),
                v.role.code(),
                v.role.code()
            )
        }
        None => String::new(),
    };
    // Every page with times says which zone they are in; the login page has none.
    let footer = if who.is_some() {
        format!("<footer>Times in <b>{}</b>.</footer>", escape(&zone.name))
    } else {
        String::new()
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Dialtone</title>\
         <link rel=\"stylesheet\" href=\"/assets/dashboard.css\">\
         <script src=\"/assets/dashboard.js\" defer></script></head>\
         <body><header class=\"top\"><a class=\"brand\" href=\"/\">Dialtone</a>\
         <nav>{links}</nav>{user}</header>\
         <main>{body}</main>\
         {footer}</body></html>\n",
        title = escape(title),
    )
}

/// An error banner.
pub fn error_banner(message: &str) -> String {
    format!(
        "<p class=\"banner error\" role=\"alert\">{}</p>",
        escape(message)
    )
}

/// A notice banner.
pub fn notice_banner(message: &str) -> String {
    format!(
        "<p class=\"banner notice\" role=\"status\">{}</p>",
        escape(message)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(url_encode("+380 a&b"), "%2B380%20a%26b");
    }

    #[test]
    fn lengths_read_like_speech() {
        assert_eq!(human(SignedDuration::from_secs(45)), "45s");
        assert_eq!(human(SignedDuration::from_secs(725)), "12m 05s");
        assert_eq!(human(SignedDuration::from_secs(3 * 3600 + 1200)), "3h 20m");
        assert_eq!(
            human(SignedDuration::from_secs(2 * 86_400 + 4 * 3600)),
            "2d 4h"
        );
    }
}
