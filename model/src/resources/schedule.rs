//! `Schedule`: when the office is open, in its own time zone.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::ResourceStatus;

/// Weekly open hours, holidays and date exceptions in an IANA time zone.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "dialtone.dev",
    version = "v1alpha1",
    kind = "Schedule",
    doc = "Weekly open windows, holidays and date exceptions in an IANA time zone; decides whether a PhoneNumber is open, closed or on holiday.",
    namespaced,
    status = "ResourceStatus",
    category = "dialtone",
    printcolumn(name = "Timezone", type_ = "string", json_path = ".spec.timezone"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleSpec {
    /// IANA time zone, e.g. `Europe/Kyiv`. Windows are local times in this zone.
    #[schemars(length(min = 1))]
    pub timezone: String,
    /// Weekly open windows. A window past midnight is written as two windows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub weekly: Vec<WeeklyWindow>,
    /// Days the office is closed all day.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 400))]
    pub holidays: Vec<Holiday>,
    /// Dates with their own hours, replacing the weekday's windows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 400))]
    pub exceptions: Vec<DateException>,
}

/// Open hours on some weekdays.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.close > self.open",
    "message": "close must be after open"
}]))]
pub struct WeeklyWindow {
    /// The weekdays this window applies to.
    #[schemars(length(min = 1, max = 7))]
    pub days: Vec<Weekday>,
    /// Opening time, `HH:MM` (24-hour).
    #[schemars(pattern(r"^([01][0-9]|2[0-3]):[0-5][0-9]$"), length(max = 5))]
    pub open: String,
    /// Closing time, `HH:MM`; `24:00` means the end of the day.
    #[schemars(pattern(r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"), length(max = 5))]
    pub close: String,
}

/// A day of the week.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

/// A holiday: closed all day, routed to the number's `holiday` route.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Holiday {
    /// The date, `YYYY-MM-DD`, in the schedule's time zone.
    #[schemars(pattern(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"))]
    pub date: String,
    /// What the holiday is, for reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A date with its own hours (or closed, when no hours are given).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.open) == has(self.close)",
    "message": "give both open and close, or neither (closed all day)"
}, {
    "rule": "!has(self.open) || self.close > self.open",
    "message": "close must be after open"
}]))]
pub struct DateException {
    /// The date, `YYYY-MM-DD`.
    #[schemars(pattern(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"))]
    pub date: String,
    /// Opening time that day, `HH:MM`. Absent with `close`: closed all day (but not a holiday).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^([01][0-9]|2[0-3]):[0-5][0-9]$"), length(max = 5))]
    pub open: Option<String>,
    /// Closing time that day, `HH:MM` or `24:00`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"), length(max = 5))]
    pub close: Option<String>,
}
