//! Checks of ForwardingSchemes, PhoneNumbers and Blocklists: where calls go.

use super::*;

pub(super) fn scheme(c: &mut Checker<'_>, obj: &Obj<ForwardingScheme>) -> Option<SchemeConfig> {
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

pub(super) fn convert_step(
    c: &mut Checker<'_>,
    s: &Site<'_>,
    f: &str,
    step: &StepSpec,
) -> Option<Step> {
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

pub(super) fn number(c: &mut Checker<'_>, obj: &Obj<PhoneNumber>) -> Option<NumberConfig> {
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

pub(super) fn block_rules(c: &mut Checker<'_>, obj: &Obj<Blocklist>) -> Vec<BlockRule> {
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
