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

use super::references::scheme_cycles;
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
        if candidates.iter().any(|o| name_of(&o.resource) == name) {
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

/// Whether `s` is an E.164 number: `+`, a non-zero digit, 7 to 15 digits in all.
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

fn is_sip_uri(s: &str) -> bool {
    let rest = s
        .strip_prefix("sip:")
        .or_else(|| s.strip_prefix("sips:"))
        .unwrap_or("");
    match rest.split_once('@') {
        Some((user, host)) => {
            !user.is_empty()
                && !host.is_empty()
                && !rest.contains(char::is_whitespace)
                && parse_host_port(host.split(';').next().unwrap_or(""), 5060).is_some()
        }
        None => false,
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
pub fn parse_host_port(s: &str, default_port: u16) -> Option<(String, u16)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok().filter(|p| *p != 0)?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok().filter(|p| *p != 0)?),
        None => (s, default_port),
    };
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    ok.then(|| (host.to_owned(), port))
}

/// `30s`, `15m`, `1h`, `1d` → seconds.
pub fn parse_window(s: &str) -> Option<u64> {
    let unit = s.chars().last()?;
    let n: u64 = s[..s.len() - 1].parse().ok()?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86400,
        _ => return None,
    };
    (n > 0).then(|| n * mult)
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
    for cycle in scheme_cycles(manifests) {
        if let Some(obj) = manifests
            .schemes
            .iter()
            .find(|s| name_of(&s.resource) == cycle[0])
        {
            let s = site(obj);
            c.error(
                &s,
                "spec.steps",
                format!(
                    "scheme can reach itself ({}): a caller could loop forever; end one branch \
                     with ring, voicemail or hangup",
                    cycle.join(" → ")
                ),
            );
        }
    }
    let numbers_list = collect(&mut c, &manifests.numbers, number);
    let mut numbers = BTreeMap::new();
    let mut first_site: BTreeMap<String, String> = BTreeMap::new();
    for (obj, n) in manifests.numbers.iter().zip(numbers_list.values()) {
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
            numbers.insert(n.number.clone(), n.clone());
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

fn call_center(c: &mut Checker<'_>) -> CallCenterConfig {
    let Some(obj) = c.manifests.call_centers.first() else {
        return CallCenterConfig {
            name: "default".to_owned(),
            spec: CallCenterSpec {
                media_nodes: Default::default(),
                router: Default::default(),
                reporter: Default::default(),
                missed_calls: Default::default(),
                prompts: None,
                recordings: None,
                webhooks: Vec::new(),
                alerts: Vec::new(),
            },
            webhook_keys: BTreeMap::new(),
            database_url: None,
        };
    };
    for extra in c.manifests.call_centers.iter().skip(1) {
        let s = site(extra);
        if name_of(&extra.resource) != name_of(&obj.resource) {
            c.error(
                &s,
                "",
                format!(
                    "only one CallCenter per namespace; CallCenter/{} is already defined at {}",
                    name_of(&obj.resource),
                    obj.origin.describe()
                ),
            );
        }
    }
    let s = site(obj);
    let spec = &obj.resource.spec;
    let m = &spec.media_nodes;
    c.range(
        &s,
        "spec.mediaNodes.minReplicas",
        m.min_replicas.into(),
        1,
        1000,
    );
    c.range(
        &s,
        "spec.mediaNodes.maxReplicas",
        m.max_replicas.into(),
        1,
        1000,
    );
    if m.max_replicas < m.min_replicas {
        c.error(
            &s,
            "spec.mediaNodes.maxReplicas",
            format!(
                "maxReplicas {} is below minReplicas {}",
                m.max_replicas, m.min_replicas
            ),
        );
    }
    c.range(
        &s,
        "spec.mediaNodes.targetActiveCallsPerNode",
        m.target_active_calls_per_node.into(),
        1,
        10000,
    );
    c.range(
        &s,
        "spec.mediaNodes.drainTimeoutSeconds",
        m.drain_timeout_seconds,
        0,
        86400,
    );
    for (i, camp) in m.campaigns.iter().enumerate() {
        let f = format!("spec.mediaNodes.campaigns[{i}]");
        let from = parse_instant(c, &s, &format!("{f}.from"), &camp.from);
        let to = parse_instant(c, &s, &format!("{f}.to"), &camp.to);
        if let (Some(from), Some(to)) = (from, to)
            && to <= from
        {
            c.error(
                &s,
                &format!("{f}.to"),
                "a campaign must end after it starts",
            );
        }
        if camp.min_replicas > m.max_replicas {
            c.error(
                &s,
                &format!("{f}.minReplicas"),
                format!(
                    "campaign floor {} exceeds maxReplicas {}: raise maxReplicas",
                    camp.min_replicas, m.max_replicas
                ),
            );
        }
    }
    c.range(&s, "spec.mediaNodes.sip.port", m.sip.port.into(), 1, 65535);
    match m
        .rtp
        .port_range
        .split_once('-')
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
    {
        Some((low, high)) if (1024..=65535).contains(&low) && low < high && high <= 65535 => {}
        _ => c.error(
            &s,
            "spec.mediaNodes.rtp.portRange",
            format!(
                "{:?} is not a port range: write low-high, e.g. 20000-30000, within 1024–65535",
                m.rtp.port_range
            ),
        ),
    }
    let mc = &spec.missed_calls;
    c.range(
        &s,
        "spec.missedCalls.shortAbandonSeconds",
        mc.short_abandon_seconds.into(),
        0,
        600,
    );
    c.range(
        &s,
        "spec.missedCalls.shortCallSeconds",
        mc.short_call_seconds.into(),
        0,
        600,
    );
    c.range(
        &s,
        "spec.missedCalls.callbackSlaMinutes",
        mc.callback_sla_minutes.into(),
        1,
        10080,
    );
    c.range(
        &s,
        "spec.missedCalls.unprocessedWindowDays",
        mc.unprocessed_window_days.into(),
        1,
        365,
    );
    c.range(
        &s,
        "spec.reporter.retentionDays",
        spec.reporter.retention_days.into(),
        1,
        3650,
    );
    let database_url = spec
        .reporter
        .database
        .url_secret_ref
        .as_ref()
        .and_then(|r| c.secret_key(&s, "spec.reporter.database.urlSecretRef", r));
    let mut webhook_keys = BTreeMap::new();
    for (i, w) in spec.webhooks.iter().enumerate() {
        let f = format!("spec.webhooks[{i}]");
        if !c.webhooks.insert(w.name.clone()) {
            c.error(
                &s,
                &format!("{f}.name"),
                format!("webhook {:?} is defined twice", w.name),
            );
        }
        if !(w.url.starts_with("https://") || w.url.starts_with("http://")) || w.url.len() < 10 {
            c.error(
                &s,
                &format!("{f}.url"),
                format!("{:?} is not an http(s) URL", w.url),
            );
        }
        if let Some(r) = &w.secret_ref
            && let Some(key) = c.secret_key(&s, &format!("{f}.secretRef"), r)
        {
            webhook_keys.insert(w.name.clone(), key);
        }
    }
    for (i, a) in spec.alerts.iter().enumerate() {
        let f = format!("spec.alerts[{i}]");
        match (&a.when.agent_miss_rate_above, &a.when.unprocessed_above) {
            (Some(rate), None) => {
                if !(0.0..=1.0).contains(rate) {
                    c.error(
                        &s,
                        &format!("{f}.when.agentMissRateAbove"),
                        format!("{rate} is a share and must be within 0–1 (0.12 = 12%)"),
                    );
                }
            }
            (None, Some(n)) => {
                if *n < 0 {
                    c.error(
                        &s,
                        &format!("{f}.when.unprocessedAbove"),
                        "must not be negative",
                    );
                }
            }
            _ => c.error(
                &s,
                &format!("{f}.when"),
                "set exactly one of agentMissRateAbove or unprocessedAbove",
            ),
        }
        if let Some(w) = &a.when.window
            && parse_window(w).is_none()
        {
            c.error(
                &s,
                &format!("{f}.when.window"),
                format!("{w:?} is not a window: write e.g. 30m, 1h or 1d"),
            );
        }
        for (j, n) in a.notify.iter().enumerate() {
            if !spec.webhooks.iter().any(|w| &w.name == n) {
                let known: Vec<&str> = spec.webhooks.iter().map(|w| w.name.as_str()).collect();
                c.error(
                    &s,
                    &format!("{f}.notify[{j}]"),
                    format!("webhook {n:?} does not exist (known: {})", known.join(", ")),
                );
            }
        }
    }
    CallCenterConfig {
        name: name_of(&obj.resource).to_owned(),
        spec: spec.clone(),
        webhook_keys,
        database_url,
    }
}

fn parse_instant(
    c: &mut Checker<'_>,
    s: &Site<'_>,
    field: &str,
    text: &str,
) -> Option<jiff::Timestamp> {
    match text.parse::<jiff::Timestamp>() {
        Ok(t) => Some(t),
        Err(_) => {
            c.error(
                s,
                field,
                format!("{text:?} is not an RFC 3339 time: write e.g. 2026-11-27T08:00:00+02:00"),
            );
            None
        }
    }
}

fn credentials(
    c: &mut Checker<'_>,
    s: &Site<'_>,
    field: &str,
    secret: &str,
    default_user: Option<&str>,
) -> Option<SipCredentials> {
    let Some(values) = c.secrets.get(secret).cloned() else {
        c.error(
            s,
            field,
            format!("Secret {secret:?} does not exist (add it with keys username and password)"),
        );
        return None;
    };
    let username = values
        .get("username")
        .cloned()
        .or(default_user.map(str::to_owned));
    match (username, values.get("password")) {
        (Some(username), Some(password)) => Some(SipCredentials {
            username,
            password: password.clone(),
        }),
        (None, _) => {
            c.error(
                s,
                field,
                format!("Secret {secret:?} has no key \"username\""),
            );
            None
        }
        (_, None) => {
            c.error(
                s,
                field,
                format!("Secret {secret:?} has no key \"password\""),
            );
            None
        }
    }
}

fn carrier(c: &mut Checker<'_>, obj: &Obj<Carrier>) -> Option<CarrierConfig> {
    let s = site(obj);
    let spec = &obj.resource.spec;
    let addr = parse_host_port(&spec.address, 5060);
    if addr.is_none() {
        c.error(
            &s,
            "spec.address",
            format!(
                "{:?} is not host:port (e.g. sip.example.com:5060)",
                spec.address
            ),
        );
    }
    let priority = c.range(&s, "spec.priority", spec.priority.into(), 0, 65535);
    let weight = c.range(&s, "spec.weight", spec.weight.into(), 0, 65535);
    let max_channels = spec
        .max_channels
        .map(|n| c.range(&s, "spec.maxChannels", n.into(), 1, 1_000_000));
    let mut inbound_sources = Vec::new();
    for (i, src) in spec.inbound_sources.iter().enumerate() {
        match src
            .parse::<IpNet>()
            .or_else(|_| src.parse::<IpAddr>().map(IpNet::from))
        {
            Ok(net) => inbound_sources.push(net.trunc()),
            Err(_) => c.error(
                &s,
                &format!("spec.inboundSources[{i}]"),
                format!("{src:?} is not an IP address or CIDR range (e.g. 198.51.100.0/24)"),
            ),
        }
    }
    let credentials = spec
        .credentials_secret_ref
        .as_ref()
        .and_then(|r| credentials(c, &s, "spec.credentialsSecretRef", &r.name, None));
    if spec.register && spec.credentials_secret_ref.is_none() {
        c.error(
            &s,
            "spec.register",
            "a registration trunk needs credentialsSecretRef to register with",
        );
    }
    if spec.inbound_sources.is_empty() && !spec.register {
        c.warn(
            &s,
            "spec",
            "no inboundSources and no registration: no inbound call will be accepted from it",
        );
    }
    let probe = spec.probe.as_ref().map(|p| ProbeConfig {
        interval_seconds: c.range(
            &s,
            "spec.probe.intervalSeconds",
            p.interval_seconds.into(),
            1,
            3600,
        ),
        failures_to_down: c.range(
            &s,
            "spec.probe.failuresToDown",
            p.failures_to_down.into(),
            1,
            100,
        ),
        successes_to_up: c.range(
            &s,
            "spec.probe.successesToUp",
            p.successes_to_up.into(),
            1,
            100,
        ),
    });
    let (host, port) = addr?;
    Some(CarrierConfig {
        name: name_of(&obj.resource).to_owned(),
        host,
        port,
        transport: spec.transport,
        priority: u16::try_from(priority).unwrap_or(u16::MAX),
        weight: u16::try_from(weight).unwrap_or(u16::MAX),
        max_channels,
        inbound_sources,
        credentials,
        register: spec.register,
        probe,
    })
}

fn window(
    c: &mut Checker<'_>,
    s: &Site<'_>,
    field: &str,
    open: &str,
    close: &str,
) -> Option<Window> {
    let o = parse_hhmm(open, false);
    if o.is_none() {
        c.error(
            s,
            &format!("{field}.open"),
            format!("{open:?} is not a time: write HH:MM, e.g. 09:00"),
        );
    }
    let cl = parse_hhmm(close, true);
    if cl.is_none() {
        c.error(
            s,
            &format!("{field}.close"),
            format!("{close:?} is not a time: write HH:MM, e.g. 19:00, or 24:00 for midnight"),
        );
    }
    let (open_m, close_m): (Minute, Minute) = (o?, cl?);
    if close_m <= open_m {
        c.error(
            s,
            &format!("{field}.close"),
            format!(
                "close {close} is not after open {open}: a window past midnight is written as two \
                 windows (…–24:00 and 00:00–…)"
            ),
        );
        return None;
    }
    Some(Window {
        open: open_m,
        close: close_m,
    })
}

fn parse_date(c: &mut Checker<'_>, s: &Site<'_>, field: &str, text: &str) -> Option<Date> {
    let ok = text.len() == 10 && text.as_bytes()[4] == b'-' && text.as_bytes()[7] == b'-';
    match text.parse::<Date>() {
        Ok(d) if ok => Some(d),
        _ => {
            c.error(
                s,
                field,
                format!("{text:?} is not a date: write YYYY-MM-DD, e.g. 2026-12-25"),
            );
            None
        }
    }
}

fn schedule(c: &mut Checker<'_>, obj: &Obj<Schedule>) -> Option<ScheduleConfig> {
    let s = site(obj);
    let spec = &obj.resource.spec;
    let tz = match TimeZone::get(&spec.timezone) {
        Ok(tz) => Some(tz),
        Err(_) => {
            c.error(
                &s,
                "spec.timezone",
                format!(
                    "{:?} is not an IANA time zone (e.g. Europe/Kyiv, America/New_York, UTC)",
                    spec.timezone
                ),
            );
            None
        }
    };
    let mut weekly: [Vec<(Window, usize)>; 7] = Default::default();
    for (i, w) in spec.weekly.iter().enumerate() {
        let f = format!("spec.weekly[{i}]");
        if w.days.is_empty() {
            c.error(
                &s,
                &format!("{f}.days"),
                "name at least one day (mon … sun)",
            );
        }
        let Some(win) = window(c, &s, &f, &w.open, &w.close) else {
            continue;
        };
        for day in &w.days {
            let idx = weekday_idx(*day);
            if let Some((other, j)) = weekly[idx]
                .iter()
                .find(|(o, _)| o.open < win.close && win.open < o.close)
            {
                let (other, j) = (*other, *j);
                c.error(
                    &s,
                    &f,
                    format!(
                        "window {win} on {} overlaps spec.weekly[{j}] ({other}): merge them or \
                         make them disjoint",
                        day_name(*day)
                    ),
                );
                continue;
            }
            weekly[idx].push((win, i));
        }
    }
    let mut holidays = BTreeMap::new();
    for (i, h) in spec.holidays.iter().enumerate() {
        let f = format!("spec.holidays[{i}].date");
        if let Some(d) = parse_date(c, &s, &f, &h.date)
            && holidays
                .insert(d, h.name.clone().unwrap_or_else(|| "holiday".to_owned()))
                .is_some()
        {
            c.error(&s, &f, format!("{d} is listed twice"));
        }
    }
    let mut exceptions = BTreeMap::new();
    for (i, e) in spec.exceptions.iter().enumerate() {
        let f = format!("spec.exceptions[{i}]");
        let date = parse_date(c, &s, &format!("{f}.date"), &e.date);
        let windows = match (&e.open, &e.close) {
            (Some(o), Some(cl)) => window(c, &s, &f, o, cl).map(|w| vec![w]),
            (None, None) => Some(Vec::new()),
            _ => {
                c.error(
                    &s,
                    &f,
                    "give both open and close, or neither (closed all day)",
                );
                None
            }
        };
        if let (Some(d), Some(w)) = (date, windows) {
            if holidays.contains_key(&d) {
                c.warn(
                    &s,
                    &format!("{f}.date"),
                    format!("{d} is also a holiday; the holiday wins"),
                );
            }
            if exceptions.insert(d, w).is_some() {
                c.error(&s, &format!("{f}.date"), format!("{d} has two exceptions"));
            }
        }
    }
    let weekly = weekly.map(|mut v| {
        v.sort();
        v.into_iter().map(|(w, _)| w).collect()
    });
    Some(ScheduleConfig {
        name: name_of(&obj.resource).to_owned(),
        timezone: spec.timezone.clone(),
        tz: tz?,
        weekly,
        holidays,
        exceptions,
    })
}

fn weekday_idx(d: Weekday) -> usize {
    match d {
        Weekday::Mon => 0,
        Weekday::Tue => 1,
        Weekday::Wed => 2,
        Weekday::Thu => 3,
        Weekday::Fri => 4,
        Weekday::Sat => 5,
        Weekday::Sun => 6,
    }
}

fn day_name(d: Weekday) -> &'static str {
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][weekday_idx(d)]
}

fn agent(c: &mut Checker<'_>, obj: &Obj<Agent>) -> Option<AgentConfig> {
    let s = site(obj);
    let spec = &obj.resource.spec;
    let name = name_of(&obj.resource).to_owned();
    if let Some(ext) = &spec.extension
        && !(2..=6).contains(&ext.len()) | !ext.bytes().all(|b| b.is_ascii_digit())
    {
        c.error(
            &s,
            "spec.extension",
            format!("{ext:?} is not an extension: write 2–6 digits, e.g. \"101\""),
        );
    }
    if spec.destinations.is_empty() {
        c.error(
            &s,
            "spec.destinations",
            "give at least one destination (softphone: {}, number or sipUri)",
        );
    }
    let mut destinations = Vec::new();
    for (i, d) in spec.destinations.iter().enumerate() {
        let f = format!("spec.destinations[{i}]");
        match (&d.softphone, &d.number, &d.sip_uri) {
            (Some(_), None, None) => destinations.push(Destination::Softphone),
            (None, Some(n), None) => {
                if is_e164(n) {
                    destinations.push(Destination::Number(n.clone()));
                } else {
                    c.error(
                        &s,
                        &format!("{f}.number"),
                        format!("{n:?} is not an E.164 number (e.g. \"+380671234567\")"),
                    );
                }
            }
            (None, None, Some(u)) => {
                if is_sip_uri(u) {
                    destinations.push(Destination::SipUri(u.clone()));
                } else {
                    c.error(
                        &s,
                        &format!("{f}.sipUri"),
                        format!("{u:?} is not a SIP URI (e.g. sip:desk@10.0.0.5:5060)"),
                    );
                }
            }
            _ => c.error(&s, &f, "set exactly one of softphone, number or sipUri"),
        }
    }
    let max = c.range(
        &s,
        "spec.maxConcurrentCalls",
        spec.max_concurrent_calls.into(),
        1,
        100,
    );
    let sip = match &spec.sip_credentials_secret_ref {
        Some(r) => credentials(c, &s, "spec.sipCredentialsSecretRef", &r.name, Some(&name)),
        None => {
            if destinations.contains(&Destination::Softphone) {
                c.error(
                    &s,
                    "spec.destinations",
                    "a softphone destination needs sipCredentialsSecretRef (a Secret with the \
                     password the softphone registers with)",
                );
            }
            None
        }
    };
    Some(AgentConfig {
        display_name: spec.display_name.clone().unwrap_or_else(|| name.clone()),
        name,
        extension: spec.extension.clone(),
        labels: obj.resource.metadata.labels.clone().unwrap_or_default(),
        destinations,
        max_concurrent_calls: max,
        sip,
    })
}

fn unique_extensions(c: &mut Checker<'_>) {
    let mut seen: BTreeMap<String, (String, String)> = BTreeMap::new();
    for obj in &c.manifests.agents {
        let Some(ext) = &obj.resource.spec.extension else {
            continue;
        };
        let name = name_of(&obj.resource).to_owned();
        if let Some((other, at)) = seen.get(ext) {
            let msg = format!("extension {ext} is already Agent/{other}'s ({at})");
            let s = site(obj);
            c.error(&s, "spec.extension", msg);
        } else {
            seen.insert(ext.clone(), (name, obj.origin.describe()));
        }
    }
}

fn queue(c: &mut Checker<'_>, obj: &Obj<CallQueue>) -> Option<QueueConfig> {
    let s = site(obj);
    let spec = &obj.resource.spec;
    let mut members: Vec<String> = Vec::new();
    for (i, a) in spec.members.agents.iter().enumerate() {
        if c.agent_ref(&s, &format!("spec.members.agents[{i}]"), a) && !members.contains(a) {
            members.push(a.clone());
        }
    }
    if let Some(sel) = &spec.members.selector {
        for a in c.selector(&s, "spec.members.selector", sel) {
            if !members.contains(&a) {
                members.push(a);
            }
        }
    }
    if spec.members.agents.is_empty() && spec.members.selector.is_none() {
        c.error(&s, "spec.members", "name member agents or give a selector");
    }
    let ring_timeout = c.range(
        &s,
        "spec.ringTimeoutSeconds",
        spec.ring_timeout_seconds.into(),
        1,
        600,
    );
    let max_wait = c.range(
        &s,
        "spec.maxWaitSeconds",
        spec.max_wait_seconds.into(),
        1,
        86400,
    );
    let wrap_up = c.range(
        &s,
        "spec.wrapUpSeconds",
        spec.wrap_up_seconds.into(),
        0,
        3600,
    );
    if let Some(p) = &spec.hold_music {
        c.prompt_ref(&s, "spec.holdMusic", p);
    }
    let callback_digit = match &spec.callback_digit {
        None => None,
        Some(d) => {
            let mut chars = d.chars();
            match (chars.next(), chars.next()) {
                (Some(ch), None) if ch.is_ascii_digit() || ch == '*' || ch == '#' => Some(ch),
                _ => {
                    c.error(
                        &s,
                        "spec.callbackDigit",
                        format!("{d:?} is not one key: write 0–9, * or #"),
                    );
                    None
                }
            }
        }
    };
    let overflow = spec.overflow.as_ref().and_then(|o| {
        let after = c.range(
            &s,
            "spec.overflow.afterSeconds",
            o.after_seconds.into(),
            1,
            86400,
        );
        if o.after_seconds > spec.max_wait_seconds {
            c.warn(
                &s,
                "spec.overflow.afterSeconds",
                format!(
                    "overflow after {}s never happens: callers leave at maxWaitSeconds {}",
                    o.after_seconds, spec.max_wait_seconds
                ),
            );
        }
        c.target(&s, "spec.overflow.to", &o.to).map(|t| (after, t))
    });
    Some(QueueConfig {
        name: name_of(&obj.resource).to_owned(),
        members,
        strategy: spec.strategy,
        ring_timeout_seconds: ring_timeout,
        max_wait_seconds: max_wait,
        wrap_up_seconds: wrap_up,
        hold_music: spec.hold_music.clone(),
        announce_position: spec.announce_position,
        callback_digit,
        overflow,
    })
}

fn scheme(c: &mut Checker<'_>, obj: &Obj<ForwardingScheme>) -> Option<SchemeConfig> {
    let s = site(obj);
    let spec = &obj.resource.spec;
    if spec.steps.is_empty() {
        c.error(&s, "spec.steps", "a scheme needs at least one step");
    }
    let mut steps = Vec::new();
    let mut ended_at: Option<usize> = None;
    for (i, step) in spec.steps.iter().enumerate() {
        let f = format!("spec.steps[{i}]");
        if let Some(end) = ended_at {
            c.warn(
                &s,
                &f,
                format!("never reached: step {end} always ends the call"),
            );
        }
        if let Some(step) = convert_step(c, &s, &f, step) {
            if matches!(step, Step::Hangup | Step::Voicemail { .. }) && ended_at.is_none() {
                ended_at = Some(i);
            }
            steps.push(step);
        }
    }
    Some(SchemeConfig {
        name: name_of(&obj.resource).to_owned(),
        steps,
    })
}

fn convert_step(c: &mut Checker<'_>, s: &Site<'_>, f: &str, step: &StepSpec) -> Option<Step> {
    let kinds = [
        step.play.is_some(),
        step.menu.is_some(),
        step.ring.is_some(),
        step.queue.is_some(),
        step.owner_lookup.is_some(),
        step.voicemail.is_some(),
        step.hangup.is_some(),
    ]
    .iter()
    .filter(|k| **k)
    .count();
    if kinds != 1 {
        let what = if kinds == 0 { "no" } else { "more than one" };
        c.error(
            s,
            f,
            format!(
                "a step has {what} kind: write exactly one of play, menu, ring, queue, \
                 ownerLookup, voicemail or hangup"
            ),
        );
        return None;
    }
    if let Some(p) = &step.play {
        c.prompt_ref(s, &format!("{f}.play.prompt"), &p.prompt);
        return Some(Step::Play {
            prompt: p.prompt.clone(),
        });
    }
    if let Some(m) = &step.menu {
        c.prompt_ref(s, &format!("{f}.menu.prompt"), &m.prompt);
        let mut options = BTreeMap::new();
        for (key, t) in &m.options {
            let of = format!("{f}.menu.options.{key}");
            let mut chars = key.chars();
            let digit = match (chars.next(), chars.next()) {
                (Some(ch), None) if ch.is_ascii_digit() || ch == '*' || ch == '#' => Some(ch),
                _ => {
                    c.error(
                        s,
                        &of,
                        format!("option {key:?} is not one key: use 0–9, * or #"),
                    );
                    None
                }
            };
            if let (Some(d), Some(t)) = (digit, c.target(s, &of, t)) {
                options.insert(d, t);
            }
        }
        if m.options.is_empty() && !m.extension_dialing {
            c.error(
                s,
                &format!("{f}.menu"),
                "a menu needs options or extensionDialing: true",
            );
        }
        let default = m
            .default
            .as_ref()
            .and_then(|t| c.target(s, &format!("{f}.menu.default"), t));
        return Some(Step::Menu(Menu {
            prompt: m.prompt.clone(),
            options,
            extension_dialing: m.extension_dialing,
            digit_timeout_seconds: c.range(
                s,
                &format!("{f}.menu.digitTimeoutSeconds"),
                m.digit_timeout_seconds.into(),
                1,
                60,
            ),
            inter_digit_seconds: c.range(
                s,
                &format!("{f}.menu.interDigitSeconds"),
                m.inter_digit_seconds.into(),
                1,
                10,
            ),
            default,
        }));
    }
    if let Some(r) = &step.ring {
        if r.targets.is_empty() {
            c.error(
                s,
                &format!("{f}.ring.targets"),
                "a ring step needs at least one target",
            );
        }
        let mut targets = Vec::new();
        for (i, t) in r.targets.iter().enumerate() {
            let tf = format!("{f}.ring.targets[{i}]");
            match (&t.agent, &t.agent_selector, &t.number, &t.sip_uri) {
                (Some(a), None, None, None) => {
                    if c.agent_ref(s, &format!("{tf}.agent"), a) {
                        targets.push(RingTarget::Agent(a.clone()));
                    }
                }
                (None, Some(sel), None, None) => {
                    let agents = c.selector(s, &format!("{tf}.agentSelector"), sel);
                    targets.push(RingTarget::Selector {
                        selector: sel.clone(),
                        agents,
                    });
                }
                (None, None, Some(n), None) => {
                    if is_e164(n) {
                        targets.push(RingTarget::Number(n.clone()));
                    } else {
                        c.error(
                            s,
                            &format!("{tf}.number"),
                            format!("{n:?} is not an E.164 number (e.g. \"+380501112233\")"),
                        );
                    }
                }
                (None, None, None, Some(u)) => {
                    if is_sip_uri(u) {
                        targets.push(RingTarget::SipUri(u.clone()));
                    } else {
                        c.error(
                            s,
                            &format!("{tf}.sipUri"),
                            format!("{u:?} is not a SIP URI (e.g. sip:desk@10.0.0.5:5060)"),
                        );
                    }
                }
                _ => c.error(
                    s,
                    &tf,
                    "set exactly one of agent, agentSelector, number or sipUri",
                ),
            }
        }
        return Some(Step::Ring(Ring {
            targets,
            mode: r.mode,
            timeout_seconds: c.range(
                s,
                &format!("{f}.ring.timeoutSeconds"),
                r.timeout_seconds.into(),
                1,
                600,
            ),
        }));
    }
    if let Some(q) = &step.queue {
        c.queue_ref(s, &format!("{f}.queue.name"), &q.name);
        return Some(Step::Queue {
            name: q.name.clone(),
        });
    }
    if let Some(o) = &step.owner_lookup {
        if !c.webhooks.contains(&o.webhook) {
            let known: Vec<String> = c.webhooks.iter().cloned().collect();
            c.error(
                s,
                &format!("{f}.ownerLookup.webhook"),
                format!(
                    "webhook {:?} is not one of the CallCenter's webhooks ({})",
                    o.webhook,
                    if known.is_empty() {
                        "it has none".to_owned()
                    } else {
                        format!("known: {}", known.join(", "))
                    }
                ),
            );
        }
        return Some(Step::OwnerLookup {
            webhook: o.webhook.clone(),
            timeout_ms: c.range(
                s,
                &format!("{f}.ownerLookup.timeoutMs"),
                o.timeout_ms.into(),
                50,
                10000,
            ),
            ring_seconds: c.range(
                s,
                &format!("{f}.ownerLookup.ringSeconds"),
                o.ring_seconds.into(),
                1,
                600,
            ),
        });
    }
    if let Some(v) = &step.voicemail {
        if let Some(g) = &v.greeting {
            c.prompt_ref(s, &format!("{f}.voicemail.greeting"), g);
        }
        return Some(Step::Voicemail {
            greeting: v.greeting.clone(),
            max_seconds: c.range(
                s,
                &format!("{f}.voicemail.maxSeconds"),
                v.max_seconds.into(),
                5,
                3600,
            ),
            silence_seconds: c.range(
                s,
                &format!("{f}.voicemail.silenceSeconds"),
                v.silence_seconds.into(),
                1,
                60,
            ),
        });
    }
    Some(Step::Hangup)
}

fn number(c: &mut Checker<'_>, obj: &Obj<PhoneNumber>) -> Option<NumberConfig> {
    let s = site(obj);
    let spec = &obj.resource.spec;
    let mut ok = true;
    if !is_e164(&spec.number) {
        c.error(
            &s,
            "spec.number",
            format!(
                "{:?} is not an E.164 number (e.g. \"+380441234567\")",
                spec.number
            ),
        );
        ok = false;
    }
    for (i, name) in spec.carriers.iter().enumerate() {
        ok &= c.reference(
            &s,
            &format!("spec.carriers[{i}]"),
            "Carrier",
            name,
            &c.manifests.carriers,
            name_of,
        );
    }
    if let Some(sch) = &spec.schedule {
        ok &= c.reference(
            &s,
            "spec.schedule",
            "Schedule",
            sch,
            &c.manifests.schedules,
            name_of,
        );
    }
    let routes = [
        ("open", &spec.routes.open),
        ("closed", &spec.routes.closed),
        ("holiday", &spec.routes.holiday),
    ];
    for (state, route) in routes {
        match route {
            Some(r) => ok &= c.scheme_ref(&s, &format!("spec.routes.{state}"), r),
            None if state == "open" || spec.schedule.is_some() => c.warn(
                &s,
                "spec.routes",
                format!(
                    "no {state} route: calls {} are recorded no_forwarding_scheme",
                    if state == "holiday" {
                        "on holidays".to_owned()
                    } else {
                        format!("while {state}")
                    }
                ),
            ),
            None => {}
        }
    }
    if let Some(b) = &spec.backup {
        ok &= c.scheme_ref(&s, "spec.backup", b);
    }
    if let Some(w) = &spec.welcome {
        c.prompt_ref(&s, "spec.welcome", w);
    }
    let recording = match (spec.recording.mode, spec.recording.seconds) {
        (RecordingMode::None, _) => Recording::None,
        (RecordingMode::Full, _) => Recording::Full,
        (RecordingMode::First, Some(n)) => {
            Recording::First(c.range(&s, "spec.recording.seconds", n.into(), 1, 86400))
        }
        (RecordingMode::First, None) => {
            c.error(
                &s,
                "spec.recording",
                "mode first needs seconds (how many seconds to record)",
            );
            Recording::None
        }
    };
    if spec.recording.seconds.is_some() && spec.recording.mode != RecordingMode::First {
        c.warn(
            &s,
            "spec.recording.seconds",
            "seconds is only used with mode: first",
        );
    }
    ok.then(|| NumberConfig {
        name: name_of(&obj.resource).to_owned(),
        number: spec.number.clone(),
        carriers: spec.carriers.clone(),
        schedule: spec.schedule.clone(),
        open: spec.routes.open.clone(),
        closed: spec.routes.closed.clone(),
        holiday: spec.routes.holiday.clone(),
        backup: spec.backup.clone(),
        welcome: spec.welcome.clone(),
        recording,
    })
}

fn block_rules(c: &mut Checker<'_>, obj: &Obj<Blocklist>) -> Vec<BlockRule> {
    let s = site(obj);
    let list = name_of(&obj.resource).to_owned();
    let mut rules: Vec<BlockRule> = Vec::new();
    for (i, e) in obj.resource.spec.entries.iter().enumerate() {
        let f = format!("spec.entries[{i}]");
        if e.reason.trim().is_empty() {
            c.error(
                &s,
                &format!("{f}.reason"),
                "every entry needs a reason: say why these callers are blocked",
            );
        }
        let pattern = match (&e.number, &e.prefix) {
            (Some(n), None) if is_e164(n) => Some(BlockPattern::Exact(n.clone())),
            (Some(n), None) => {
                c.error(
                    &s,
                    &format!("{f}.number"),
                    format!("{n:?} is not an E.164 number (e.g. \"+380931110000\")"),
                );
                None
            }
            (None, Some(p))
                if p.len() >= 2
                    && p.len() <= 16
                    && p.starts_with('+')
                    && p[1..].bytes().all(|b| b.is_ascii_digit()) =>
            {
                Some(BlockPattern::Prefix(p.clone()))
            }
            (None, Some(p)) => {
                c.error(
                    &s,
                    &format!("{f}.prefix"),
                    format!("{p:?} is not a number prefix: write + and digits, e.g. \"+8821\""),
                );
                None
            }
            _ => {
                c.error(&s, &f, "set exactly one of number or prefix");
                None
            }
        };
        if let Some(pattern) = pattern {
            if rules.iter().any(|r| r.pattern == pattern) {
                c.warn(&s, &f, "the same caller is listed twice");
            }
            rules.push(BlockRule {
                list: list.clone(),
                pattern,
                reason: e.reason.clone(),
            });
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164() {
        assert!(is_e164("+380441234567"));
        assert!(!is_e164("380441234567"));
        assert!(!is_e164("+0441234567"));
        assert!(!is_e164("+38044"));
        assert!(!is_e164("+3804412345678901"));
        assert!(!is_e164("+38044 123"));
    }

    #[test]
    fn host_port() {
        assert_eq!(
            parse_host_port("sip.example:5070", 5060),
            Some(("sip.example".into(), 5070))
        );
        assert_eq!(
            parse_host_port("10.0.0.1", 5060),
            Some(("10.0.0.1".into(), 5060))
        );
        assert_eq!(
            parse_host_port("[::1]:5062", 5060),
            Some(("::1".into(), 5062))
        );
        assert_eq!(parse_host_port("a b:5060", 5060), None);
        assert_eq!(parse_host_port("host:0", 5060), None);
        assert_eq!(parse_host_port("host:99999", 5060), None);
    }

    #[test]
    fn sip_uris_and_windows() {
        assert!(is_sip_uri("sip:desk@10.0.0.5:5060"));
        assert!(is_sip_uri("sips:pbx@pbx.example;transport=tls"));
        assert!(!is_sip_uri("sip:10.0.0.5"));
        assert!(!is_sip_uri("tel:+380"));
        assert_eq!(parse_window("1h"), Some(3600));
        assert_eq!(parse_window("30m"), Some(1800));
        assert_eq!(parse_window("0h"), None);
        assert_eq!(parse_window("1w"), None);
    }
}
