//! Stage 2: check every value and reference, and build the snapshot.
//!
//! Each kind has a function that checks one object and converts it into its domain type; a
//! problem is recorded against the field that causes it, so that the message points at the line
//! a user must change.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use jiff::civil::Date;
use jiff::tz::TimeZone;

mod people;
mod platform;
mod routing;
mod schedule;

use super::references::{CycleStart, reference_cycles};
use super::values::{is_e164, is_sip_uri, parse_host_port, parse_window};
use super::{Environment, LoadReport, Manifests, Obj, Origin, PromptCatalog, secret_values};
use crate::problem::{ObjectRef, Problem, Severity};
use crate::resources::Schedule;
use crate::resources::call_center::CallCenterSpec;
use crate::resources::common::{LabelSelector, SecretKeyRef, TargetSpec};
use crate::resources::phone_number::RecordingMode;
use crate::resources::schedule::Weekday;
use crate::resources::scheme::StepSpec;
use crate::resources::{Agent, Blocklist, CallQueue, Carrier, ForwardingScheme, PhoneNumber};
use crate::schedule::{Minute, ScheduleConfig, Window, parse_hhmm};
use crate::snapshot::{
    AgentConfig, BlockPattern, BlockRule, CallCenterConfig, CarrierConfig, Destination, Menu,
    NumberConfig, ProbeConfig, QueueConfig, Recording, Ring, RingTarget, SchemeConfig,
    SipCredentials, Snapshot, Step, Target,
};
use people::{agent, queue, unique_extensions};
use platform::{call_center, carrier, credentials};
use routing::{block_rules, number, scheme};
use schedule::schedule;

/// Where a problem is reported: an object and its origin.
struct Site<'a> {
    object: ObjectRef,
    origin: &'a Origin,
}

struct Checker<'a> {
    manifests: &'a Manifests,
    env: &'a Environment,
    problems: Vec<Problem>,
    secrets: BTreeMap<String, BTreeMap<String, String>>,
    webhooks: BTreeSet<String>,
}

impl Checker<'_> {
    fn push(&mut self, site: &Site<'_>, field: &str, severity: Severity, message: String) {
        let (file, line) = site.origin.locate(field);
        let message = if field.is_empty() {
            message
        } else {
            format!("{field}: {message}")
        };
        self.problems.push(Problem {
            file,
            line,
            object: Some(site.object.clone()),
            message,
            severity,
        });
    }

    fn error(&mut self, site: &Site<'_>, field: &str, message: impl Into<String>) {
        self.push(site, field, Severity::Error, message.into());
    }

    fn warn(&mut self, site: &Site<'_>, field: &str, message: impl Into<String>) {
        self.push(site, field, Severity::Warning, message.into());
    }

    /// A reference to another object by name: records a problem naming what exists instead.
    fn reference<T>(
        &mut self,
        site: &Site<'_>,
        field: &str,
        kind: &str,
        name: &str,
        candidates: &[Obj<T>],
        name_of: impl Fn(&T) -> &str,
    ) -> bool {
        if candidates.iter().any(|o| name_of(&o.resource) == name)
            || self.manifests.is_broken(kind, name)
        {
            return true;
        }
        let known: Vec<&str> = candidates.iter().map(|o| name_of(&o.resource)).collect();
        let hint = if known.is_empty() {
            format!("there is no {kind} at all")
        } else {
            format!("known: {}", known.join(", "))
        };
        self.error(
            site,
            field,
            format!("{kind} {name:?} does not exist ({hint})"),
        );
        false
    }

    fn scheme_ref(&mut self, site: &Site<'_>, field: &str, name: &str) -> bool {
        self.reference(
            site,
            field,
            "ForwardingScheme",
            name,
            &self.manifests.schemes,
            name_of,
        )
    }

    fn queue_ref(&mut self, site: &Site<'_>, field: &str, name: &str) -> bool {
        self.reference(
            site,
            field,
            "CallQueue",
            name,
            &self.manifests.queues,
            name_of,
        )
    }

    fn agent_ref(&mut self, site: &Site<'_>, field: &str, name: &str) -> bool {
        self.reference(site, field, "Agent", name, &self.manifests.agents, name_of)
    }

    fn prompt_ref(&mut self, site: &Site<'_>, field: &str, name: &str) {
        if let PromptCatalog::Known { names, hint } = &self.env.prompts
            && !names.contains(name)
        {
            let hint = hint.replace("<name>", name);
            self.error(
                site,
                field,
                format!("prompt {name:?} does not exist ({hint})"),
            );
        }
    }

    fn secret_key(&mut self, site: &Site<'_>, field: &str, r: &SecretKeyRef) -> Option<String> {
        if self.manifests.is_broken("Secret", &r.name) {
            return None;
        }
        match self.secrets.get(&r.name) {
            None => {
                self.error(
                    site,
                    field,
                    format!(
                        "Secret {:?} does not exist (add it, with key {:?}, to the manifests)",
                        r.name, r.key
                    ),
                );
                None
            }
            Some(values) => match values.get(&r.key) {
                Some(v) => Some(v.clone()),
                None => {
                    self.error(
                        site,
                        field,
                        format!("Secret {:?} has no key {:?}", r.name, r.key),
                    );
                    None
                }
            },
        }
    }

    fn selector(&mut self, site: &Site<'_>, field: &str, selector: &LabelSelector) -> Vec<String> {
        let agents: Vec<String> = self
            .manifests
            .agents
            .iter()
            .filter(|a| selector.matches(a.resource.metadata.labels.as_ref().unwrap_or(&EMPTY)))
            .map(|a| name_of(&a.resource).to_owned())
            .collect();
        if agents.is_empty() {
            self.error(
                site,
                field,
                format!(
                    "selector {} matches no Agent: label an Agent or fix the selector",
                    selector.describe()
                ),
            );
        }
        agents
    }

    fn target(&mut self, site: &Site<'_>, field: &str, t: &TargetSpec) -> Option<Target> {
        match (&t.scheme, &t.queue, &t.agent) {
            (Some(s), None, None) => self
                .scheme_ref(site, &format!("{field}.scheme"), s)
                .then(|| Target::Scheme(s.clone())),
            (None, Some(q), None) => self
                .queue_ref(site, &format!("{field}.queue"), q)
                .then(|| Target::Queue(q.clone())),
            (None, None, Some(a)) => self
                .agent_ref(site, &format!("{field}.agent"), a)
                .then(|| Target::Agent(a.clone())),
            _ => {
                self.error(site, field, "set exactly one of scheme, queue or agent");
                None
            }
        }
    }

    fn range(&mut self, site: &Site<'_>, field: &str, value: i64, min: i64, max: i64) -> u32 {
        if value < min || value > max {
            self.error(site, field, format!("{value} is out of range {min}–{max}"));
        }
        u32::try_from(value.clamp(min.max(0), max)).unwrap_or(0)
    }
}

static EMPTY: BTreeMap<String, String> = BTreeMap::new();

fn name_of<K: kube::Resource>(r: &K) -> &str {
    r.meta().name.as_deref().unwrap_or("")
}

fn site<'a, K: kube::Resource<DynamicType = ()>>(obj: &'a Obj<K>) -> Site<'a> {
    Site {
        object: ObjectRef::new(K::kind(&()), name_of(&obj.resource)),
        origin: &obj.origin,
    }
}

/// Stage 2: checks the manifests and builds the snapshot.
pub fn build_snapshot(manifests: &Manifests, env: &Environment) -> LoadReport {
    let mut c = Checker {
        manifests,
        env,
        problems: Vec::new(),
        secrets: BTreeMap::new(),
        webhooks: BTreeSet::new(),
    };
    for s in &manifests.secrets {
        let name = name_of(&s.resource).to_owned();
        c.secrets.insert(name, secret_values(&s.resource));
    }
    duplicates(&mut c, &manifests.secrets, "data");
    duplicates(&mut c, &manifests.call_centers, "metadata.name");
    duplicates(&mut c, &manifests.carriers, "metadata.name");
    duplicates(&mut c, &manifests.schedules, "metadata.name");
    duplicates(&mut c, &manifests.agents, "metadata.name");
    duplicates(&mut c, &manifests.queues, "metadata.name");
    duplicates(&mut c, &manifests.schemes, "metadata.name");
    duplicates(&mut c, &manifests.numbers, "metadata.name");
    duplicates(&mut c, &manifests.blocklists, "metadata.name");

    let call_center = call_center(&mut c);
    let carriers = collect(&mut c, &manifests.carriers, carrier);
    let schedules = collect(&mut c, &manifests.schedules, schedule);
    let agents = collect(&mut c, &manifests.agents, agent);
    unique_extensions(&mut c);
    let queues = collect(&mut c, &manifests.queues, queue);
    let schemes = collect(&mut c, &manifests.schemes, scheme);
    for cycle in reference_cycles(manifests) {
        let site = match cycle.kind {
            CycleStart::Scheme => manifests
                .schemes
                .iter()
                .find(|s| name_of(&s.resource) == cycle.name)
                .map(site),
            CycleStart::Queue => manifests
                .queues
                .iter()
                .find(|q| name_of(&q.resource) == cycle.name)
                .map(site),
        };
        if let Some(s) = site {
            let what = match cycle.kind {
                CycleStart::Scheme => "scheme",
                CycleStart::Queue => "queue",
            };
            c.error(
                &s,
                &cycle.field,
                format!(
                    "{what} can reach itself ({}): a caller could loop forever; end one branch \
                     with ring, voicemail or hangup",
                    cycle.path.join(" → ")
                ),
            );
        }
    }
    let mut numbers = BTreeMap::new();
    let mut first_site: BTreeMap<String, String> = BTreeMap::new();
    for obj in &manifests.numbers {
        let Some(n) = number(&mut c, obj) else {
            continue;
        };
        if let Some(prev) = first_site.get(&n.number) {
            let s = site(obj);
            c.error(
                &s,
                "spec.number",
                format!("{} is already used by {prev}", n.number),
            );
        } else {
            first_site.insert(
                n.number.clone(),
                format!("PhoneNumber/{} ({})", n.name, obj.origin.describe()),
            );
            numbers.insert(n.number.clone(), n);
        }
    }
    let mut blocklist = Vec::new();
    for obj in &manifests.blocklists {
        blocklist.extend(block_rules(&mut c, obj));
    }

    let counts = vec![
        ("CallCenter", manifests.call_centers.len()),
        ("Carrier", manifests.carriers.len()),
        ("Schedule", manifests.schedules.len()),
        ("Agent", manifests.agents.len()),
        ("CallQueue", manifests.queues.len()),
        ("ForwardingScheme", manifests.schemes.len()),
        ("PhoneNumber", manifests.numbers.len()),
        ("Blocklist", manifests.blocklists.len()),
        ("Secret", manifests.secrets.len()),
    ];
    let has_errors = c.problems.iter().any(|p| p.severity == Severity::Error);
    let snapshot = (!has_errors).then(|| Snapshot {
        namespace: manifests
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned()),
        call_center,
        carriers,
        schedules,
        agents,
        queues,
        schemes,
        numbers,
        blocklist,
        prompts: match &env.prompts {
            PromptCatalog::Known { names, .. } => names.clone(),
            PromptCatalog::Unchecked => BTreeSet::new(),
        },
    });
    LoadReport {
        snapshot,
        problems: c.problems,
        counts,
    }
}

fn duplicates<K: kube::Resource<DynamicType = ()>>(
    c: &mut Checker<'_>,
    objs: &[Obj<K>],
    field: &str,
) {
    let mut seen: BTreeMap<&str, &Origin> = BTreeMap::new();
    for obj in objs {
        let name = name_of(&obj.resource);
        if let Some(first) = seen.get(name) {
            let s = site(obj);
            let first = first.describe();
            c.error(
                &s,
                if field == "data" { "" } else { field },
                format!("defined twice (also at {first}); rename or remove one"),
            );
        } else {
            seen.insert(name, &obj.origin);
        }
    }
}

fn collect<K, T>(
    c: &mut Checker<'_>,
    objs: &[Obj<K>],
    convert: impl Fn(&mut Checker<'_>, &Obj<K>) -> Option<T>,
) -> BTreeMap<String, T>
where
    K: kube::Resource<DynamicType = ()>,
{
    let mut out = BTreeMap::new();
    for obj in objs {
        if let Some(v) = convert(c, obj) {
            out.entry(name_of(&obj.resource).to_owned()).or_insert(v);
        }
    }
    out
}
