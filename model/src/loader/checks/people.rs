//! Checks of Agents and CallQueues.

use super::*;

pub(super) fn agent(c: &mut Checker<'_>, obj: &Obj<Agent>) -> Option<AgentConfig> {
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

pub(super) fn unique_extensions(c: &mut Checker<'_>) {
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

pub(super) fn queue(c: &mut Checker<'_>, obj: &Obj<CallQueue>) -> Option<QueueConfig> {
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
