//! One formatter for every report: rows as JSON objects plus a column order → a table for a
//! terminal, JSON or CSV. A report maps its proto rows to [`Row`]s once; this module decides
//! how they look.
//!
//! - JSON: an array of objects, one per line, keys in column order (then any key the columns
//!   do not name). Values are the rows' own: times RFC 3339 strings, durations seconds as
//!   numbers, rates numbers from 0 to 1, lists arrays.
//! - CSV: a header row of every column's key, then one line per row; RFC 4180 quoting (a
//!   field with a comma, a quote or a line break is quoted, quotes doubled). Lists are joined
//!   with spaces, `null` is empty.
//! - Table: the columns marked for the table, aligned (counts, rates and durations to the
//!   right), footer rows (a team total) under a rule; rates as percentages, durations as
//!   `1m 05s`.

use serde_json::{Map, Value};

/// One row: snake_case keys, JSON values.
pub type Row = Map<String, Value>;

/// The output format (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    #[default]
    Table,
    /// An array of objects with snake_case keys.
    Json,
    /// A header row, then one line per row.
    Csv,
}

/// How a column's values read in a table (JSON and CSV print the values as they are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// As is; lists joined with `, `.
    Text,
    /// A number, right-aligned.
    Count,
    /// A share from 0 to 1, as a percentage.
    Rate,
    /// Seconds, as `4.2s`, `1m 05s`, `2h 10m`, `3d 4h`.
    Seconds,
    /// A boolean: `yes` or nothing.
    Flag,
    /// An RFC 3339 instant, shown to the second.
    Time,
}

/// A column: its key in the rows, its title in a table, how it reads there.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// The key (JSON key, CSV header).
    pub key: &'static str,
    /// The table's header.
    pub title: &'static str,
    /// How values read in a table.
    pub kind: Kind,
    /// Whether the table shows it (JSON and CSV always do).
    pub in_table: bool,
}

impl Column {
    const fn new(key: &'static str, kind: Kind) -> Self {
        Column {
            key,
            title: key,
            kind,
            in_table: true,
        }
    }

    /// A text column.
    pub const fn text(key: &'static str) -> Self {
        Column::new(key, Kind::Text)
    }

    /// A count.
    pub const fn count(key: &'static str) -> Self {
        Column::new(key, Kind::Count)
    }

    /// A share from 0 to 1.
    pub const fn rate(key: &'static str) -> Self {
        Column::new(key, Kind::Rate)
    }

    /// Seconds.
    pub const fn seconds(key: &'static str) -> Self {
        Column::new(key, Kind::Seconds)
    }

    /// A boolean.
    pub const fn flag(key: &'static str) -> Self {
        Column::new(key, Kind::Flag)
    }

    /// An RFC 3339 instant.
    pub const fn time(key: &'static str) -> Self {
        Column::new(key, Kind::Time)
    }

    /// A shorter header for the table.
    pub const fn title(mut self, title: &'static str) -> Self {
        self.title = title;
        self
    }

    /// In JSON and CSV only.
    pub const fn hidden(mut self) -> Self {
        self.in_table = false;
        self
    }
}

/// Renders `rows` (then `footer`, e.g. a team total) in `format`.
pub fn render(format: Format, columns: &[Column], rows: &[Row], footer: &[Row]) -> String {
    let all = || rows.iter().chain(footer);
    match format {
        Format::Json => json(columns, all()),
        Format::Csv => csv(columns, all()),
        Format::Table => table(columns, rows, footer),
    }
}

fn json<'a>(columns: &[Column], rows: impl Iterator<Item = &'a Row>) -> String {
    let mut out = String::from("[");
    let mut first = true;
    for row in rows {
        out.push_str(if first { "\n  {" } else { ",\n  {" });
        first = false;
        let named = columns.iter().filter_map(|c| row.get_key_value(c.key));
        let others = row
            .iter()
            .filter(|(k, _)| !columns.iter().any(|c| c.key == k.as_str()));
        for (i, (key, value)) in named.chain(others).enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&Value::String(key.clone()).to_string());
            out.push_str(": ");
            out.push_str(&value.to_string());
        }
        out.push('}');
    }
    out.push_str(if first { "]\n" } else { "\n]\n" });
    out
}

fn csv<'a>(columns: &[Column], rows: impl Iterator<Item = &'a Row>) -> String {
    let line = |cells: Vec<String>| {
        let quoted: Vec<String> = cells.iter().map(|c| csv_field(c)).collect();
        quoted.join(",") + "\n"
    };
    let mut out = line(columns.iter().map(|c| c.key.to_owned()).collect());
    for row in rows {
        out.push_str(&line(
            columns
                .iter()
                .map(|c| plain(row.get(c.key).unwrap_or(&Value::Null), " "))
                .collect(),
        ));
    }
    out
}

/// RFC 4180: quote a field holding a comma, a quote or a line break; double the quotes.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// A value as plain text: strings unquoted, `null` empty, lists of scalars joined with `sep`,
/// objects of scalars as `key=value` pairs; anything deeper as compact JSON.
fn plain(value: &Value, sep: &str) -> String {
    let scalar = |v: &Value| !matches!(v, Value::Array(_) | Value::Object(_));
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(_) | Value::Number(_) => value.to_string(),
        Value::Array(items) if items.iter().all(scalar) => items
            .iter()
            .map(|v| plain(v, sep))
            .collect::<Vec<_>>()
            .join(sep),
        Value::Object(map) if map.values().all(scalar) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", plain(v, sep)))
            .collect::<Vec<_>>()
            .join(sep),
        Value::Array(_) | Value::Object(_) => value.to_string(),
    }
}

/// A duration in seconds for people: `4.2s`, `45s`, `1m 05s`, `2h 10m`, `3d 4h`.
pub fn human_seconds(secs: f64) -> String {
    if !secs.is_finite() {
        return String::new();
    }
    if secs < 60.0 {
        return if (secs - secs.round()).abs() < 0.05 {
            format!("{secs:.0}s")
        } else {
            format!("{secs:.1}s")
        };
    }
    // Whole seconds from here on; f64 → i64 saturates.
    let s = secs.round() as i64;
    match s {
        ..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

/// An RFC 3339 instant without its fraction of a second (`…T15:58:47.508Z` → `…T15:58:47Z`).
pub fn whole_seconds(rfc3339: &str) -> String {
    match rfc3339.split_once('.') {
        Some((head, tail)) => {
            let rest = tail.trim_start_matches(|c: char| c.is_ascii_digit());
            format!("{head}{rest}")
        }
        None => rfc3339.to_owned(),
    }
}

fn cell(kind: Kind, value: &Value) -> String {
    match (kind, value) {
        (_, Value::Null) => String::new(),
        (Kind::Rate, Value::Number(n)) => n
            .as_f64()
            .map(|r| format!("{:.1}%", r * 100.0))
            .unwrap_or_default(),
        (Kind::Seconds, Value::Number(n)) => n.as_f64().map(human_seconds).unwrap_or_default(),
        (Kind::Flag, Value::Bool(b)) => if *b { "yes" } else { "" }.to_owned(),
        (Kind::Time, Value::String(t)) => whole_seconds(t),
        _ => plain(value, ", "),
    }
}

fn table(columns: &[Column], rows: &[Row], footer: &[Row]) -> String {
    let shown: Vec<&Column> = columns.iter().filter(|c| c.in_table).collect();
    let cells = |row: &Row| -> Vec<String> {
        shown
            .iter()
            .map(|c| cell(c.kind, row.get(c.key).unwrap_or(&Value::Null)))
            .collect()
    };
    let header: Vec<String> = shown.iter().map(|c| c.title.to_owned()).collect();
    let body: Vec<Vec<String>> = rows.iter().map(cells).collect();
    let foot: Vec<Vec<String>> = footer.iter().map(cells).collect();
    let width = |i: usize| {
        std::iter::once(&header)
            .chain(&body)
            .chain(&foot)
            .map(|r| r[i].chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..shown.len()).map(width).collect();
    let right = |i: usize| matches!(shown[i].kind, Kind::Count | Kind::Rate | Kind::Seconds);
    let line = |r: &[String]| -> String {
        let padded: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if right(i) {
                    format!("{s:>w$}", w = widths[i])
                } else {
                    format!("{s:<w$}", w = widths[i])
                }
            })
            .collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    let mut out = line(&header);
    for r in &body {
        out.push_str(&line(r));
    }
    if !foot.is_empty() {
        let total: usize = widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
        out.push_str(&"-".repeat(total));
        out.push('\n');
        for r in &foot {
            out.push_str(&line(r));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: Value) -> Row {
        match v {
            Value::Object(m) => m,
            _ => Row::new(),
        }
    }

    const COLUMNS: [Column; 4] = [
        Column::text("name"),
        Column::count("n"),
        Column::rate("rate").title("share"),
        Column::text("tags").hidden(),
    ];

    fn rows() -> Vec<Row> {
        vec![
            row(json!({"name": "anna", "n": 12, "rate": 0.25, "tags": ["a", "b"], "extra": 1})),
            row(json!({"name": "say \"hi\", bo", "n": 3, "rate": 0.0, "tags": []})),
        ]
    }

    #[test]
    fn json_keeps_the_column_order_then_the_rest() {
        let out = render(Format::Json, &COLUMNS, &rows(), &[]);
        assert_eq!(
            out,
            "[\n  {\"name\": \"anna\", \"n\": 12, \"rate\": 0.25, \"tags\": [\"a\",\"b\"], \
             \"extra\": 1},\n  {\"name\": \"say \\\"hi\\\", bo\", \"n\": 3, \"rate\": 0.0, \
             \"tags\": []}\n]\n"
        );
        let parsed: Value = serde_json::from_str(&out).expect("valid JSON");
        assert_eq!(parsed[0]["tags"], json!(["a", "b"]));
        assert_eq!(render(Format::Json, &COLUMNS, &[], &[]), "[]\n");
    }

    #[test]
    fn csv_quotes_by_rfc_4180() {
        let out = render(Format::Csv, &COLUMNS, &rows(), &[]);
        assert_eq!(
            out,
            "name,n,rate,tags\nanna,12,0.25,a b\n\"say \"\"hi\"\", bo\",3,0.0,\n"
        );
    }

    #[test]
    fn table_aligns_and_draws_the_footer() {
        let total = vec![row(json!({"name": "total", "n": 15, "rate": 0.2}))];
        let out = render(Format::Table, &COLUMNS, &rows(), &total);
        assert_eq!(
            out,
            "name           n  share\n\
             anna          12  25.0%\n\
             say \"hi\", bo   3   0.0%\n\
             -----------------------\n\
             total         15  20.0%\n"
        );
    }

    #[test]
    fn durations_read_like_durations() {
        assert_eq!(human_seconds(4.2), "4.2s");
        assert_eq!(human_seconds(45.0), "45s");
        assert_eq!(human_seconds(65.0), "1m 05s");
        assert_eq!(human_seconds(7_800.0), "2h 10m");
        assert_eq!(human_seconds(100_000.0), "1d 3h");
    }

    #[test]
    fn times_show_whole_seconds() {
        assert_eq!(
            whole_seconds("2026-11-23T15:58:47.508598991Z"),
            "2026-11-23T15:58:47Z"
        );
        assert_eq!(
            whole_seconds("2026-11-23T15:58:47.5+02:00"),
            "2026-11-23T15:58:47+02:00"
        );
        assert_eq!(
            whole_seconds("2026-11-23T15:58:47Z"),
            "2026-11-23T15:58:47Z"
        );
    }
}
