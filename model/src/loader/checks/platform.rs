//! Checks of the CallCenter and Carriers: the platform the calls run on.

use super::*;
use crate::resources::call_center::AccessSpec;

pub(super) fn call_center(c: &mut Checker<'_>) -> CallCenterConfig {
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
                access: None,
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
    if let Some(access) = &spec.access {
        access_refs(c, &s, access);
    }
    CallCenterConfig {
        name: name_of(&obj.resource).to_owned(),
        spec: spec.clone(),
        webhook_keys,
        database_url,
    }
}

/// Shortest dashboard token and internal token accepted (as the reporter's token store).
const MIN_TOKEN_CHARS: usize = 16;

/// `spec.access`: the referenced Secrets exist with their keys, the tokens file is made of
/// `name:role:token` lines the reporter and router will accept, and the internal token is long
/// enough to be one. Messages never quote a token.
fn access_refs(c: &mut Checker<'_>, s: &Site<'_>, access: &AccessSpec) {
    const TOKENS: &str = "spec.access.tokensSecretRef";
    const INTERNAL: &str = "spec.access.internalTokenSecretRef";
    if let Some(r) = &access.tokens_secret_ref
        && let Some(text) = c.secret_key(s, TOKENS, r)
    {
        let source = format!("Secret {:?} key {:?}", r.name, r.key);
        let mut lines = 0;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            lines += 1;
            let at = format!("{source} line {}", i + 1);
            let mut fields = line.splitn(3, ':').map(str::trim);
            let (Some(name), Some(role), Some(token)) =
                (fields.next(), fields.next(), fields.next())
            else {
                c.error(s, TOKENS, format!("{at}: expected name:role:token"));
                continue;
            };
            if name.is_empty() {
                c.error(s, TOKENS, format!("{at}: the name is empty"));
            } else if !matches!(role, "viewer" | "supervisor") {
                c.error(
                    s,
                    TOKENS,
                    format!("{at}: unknown role {role:?} (viewer or supervisor)"),
                );
            } else if token.chars().count() < MIN_TOKEN_CHARS
                || token.chars().any(char::is_whitespace)
            {
                c.error(
                    s,
                    TOKENS,
                    format!(
                        "{at}: the token of {name} must be at least {MIN_TOKEN_CHARS} characters \
                         without spaces (e.g. `openssl rand -hex 32`)"
                    ),
                );
            }
        }
        if lines == 0 {
            c.error(
                s,
                TOKENS,
                format!("{source} holds no name:role:token line: nobody could sign in"),
            );
        }
    }
    if let Some(r) = &access.internal_token_secret_ref
        && let Some(token) = c.secret_key(s, INTERNAL, r)
    {
        let token = token.trim();
        if token.chars().count() < MIN_TOKEN_CHARS || !token.bytes().all(|b| b.is_ascii_graphic()) {
            c.error(
                s,
                INTERNAL,
                format!(
                    "Secret {:?} key {:?} must hold at least {MIN_TOKEN_CHARS} printable ASCII \
                     characters without spaces (e.g. `openssl rand -hex 32`), or leave \
                     internalTokenSecretRef out and the operator generates one",
                    r.name, r.key
                ),
            );
        }
    }
}

pub(super) fn parse_instant(
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

pub(super) fn credentials(
    c: &mut Checker<'_>,
    s: &Site<'_>,
    field: &str,
    secret: &str,
    default_user: Option<&str>,
) -> Option<SipCredentials> {
    if c.manifests.is_broken("Secret", secret) {
        return None;
    }
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

pub(super) fn carrier(c: &mut Checker<'_>, obj: &Obj<Carrier>) -> Option<CarrierConfig> {
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
