//! `dialtone route`'s text: a plan or a rejection explained for an ops team.

use super::*;

/// The text `dialtone route` prints: what the router would do with the call and why, so an ops
/// team can check a manifest change before a client hits it. Plain aligned text without
/// colours, so it reads the same in a terminal, a CI log or a ticket.
pub fn explain(outcome: &PlanOutcome) -> String {
    let text = match outcome {
        PlanOutcome::Plan(plan) => explain_plan(plan).join("\n"),
        PlanOutcome::NotFound { number } => wrap(&format!(
            "Not found: no PhoneNumber has the number {number}. The media node answers 404 and \
             nothing is recorded as missed. To take calls on it, apply a PhoneNumber with \
             spec.number \"{number}\" (and check the carrier delivers it in E.164)."
        )),
        PlanOutcome::Blocked {
            number,
            caller,
            list,
            entry,
            reason,
        } => wrap(&format!(
            "Blocked: the caller {caller} matches entry {entry} of Blocklist {list} (\"{reason}\"). \
             A call to {number} is rejected and recorded as `blocked`, not as a missed call. To \
             let this caller through, remove or narrow that entry of Blocklist {list}."
        )),
        PlanOutcome::NoForwardingScheme {
            number,
            number_name,
            schedule,
            why,
            fix,
        } => wrap(&format!(
            "No forwarding scheme for {number} ({number_name}): {why}. The schedule is {}: \
             {}. The call is rejected (480) and recorded as missed with reason \
             `no_forwarding_scheme`. To route it, {fix}.",
            schedule.state.as_str(),
            schedule.why
        )),
    };
    text + "\n"
}

fn explain_plan(plan: &CallPlan) -> Vec<String> {
    let s = &plan.schedule;
    let state = s.state.as_str();
    let mut out = vec![format!("Route for {} ({})", plan.number, plan.number_name)];
    let mut row = |name: &str, value: &str| out.push(format!("  {name:<11}{value}"));
    row("caller", plan.caller.as_deref().unwrap_or("anonymous"));
    row(
        "at",
        &format!("{} (local {}, {})", plan.at, s.local_time, s.time_zone),
    );
    let name = s.schedule.as_deref().unwrap_or("(none)");
    row("schedule", &format!("{name}: {state} — {}", s.why));
    row("scheme", &format!("{} (route `{state}`)", plan.scheme));
    if plan.outside_business_hours {
        row("if missed", "outside_business_hours (not open)");
    }
    let welcome = plan.welcome_prompt.as_ref().map(|p| format!("prompt {p}"));
    row("welcome", welcome.as_deref().unwrap_or("(none)"));
    row(
        "recording",
        &match plan.recording {
            Recording::None => "none".to_owned(),
            Recording::Full => "full call".to_owned(),
            Recording::First(n) => format!("first {n} s"),
        },
    );
    row("carriers", &plan.carriers.join(", "));

    let backup = plan.backup.as_ref().map(|b| b.scheme.as_str());
    // The route's scheme first, then what it reaches; the backup comes last, on its own.
    let main = plan.schemes.get(&plan.scheme).into_iter();
    let others = (plan.schemes.values())
        .filter(|p| p.scheme != plan.scheme && Some(p.scheme.as_str()) != backup);
    for scheme in main.chain(others) {
        let reached = (scheme.scheme != plan.scheme).then_some(" (reachable)");
        let title = format!("Scheme {}{}", scheme.scheme, reached.unwrap_or_default());
        out.extend([String::new(), title]);
        explain_steps(scheme, &mut out);
    }
    for q in plan.queues.values() {
        out.push(String::new());
        out.push(format!(
            "Queue {}: {}, {} s per offer, waits up to {} s, wrap-up {} s",
            q.queue,
            strategy_name(q.strategy),
            q.ring_timeout_seconds,
            q.max_wait_seconds,
            q.wrap_up_seconds
        ));
        let mut extras = vec![q.hold_music.as_ref().map_or_else(
            || "ringback while waiting".to_owned(),
            |m| format!("hold music {m}"),
        )];
        if q.announce_position {
            extras.push("announces position".to_owned());
        }
        if let Some(d) = q.callback_digit {
            extras.push(format!("{d} = call me back"));
        }
        if let Some((after, target)) = &q.overflow {
            extras.push(format!("after {after} s → {}", jump_text(target)));
        }
        out.extend([format!("  {}", extras.join("; ")), "  members:".to_owned()]);
        let members = agent_rows(&q.members.iter().collect::<Vec<_>>(), "    ");
        out.extend(if members.is_empty() {
            vec!["    (none)".to_owned()]
        } else {
            members
        });
    }

    out.push(String::new());
    match &plan.backup {
        None if plan.all_targets_unreachable => {
            out.push("Backup: none, and every target of the plan is unreachable".to_owned());
        }
        None => out.push("Backup: none".to_owned()),
        Some(b) => {
            let verdict = if plan.use_backup {
                "WOULD BE USED — every target of the plan is unreachable (office down)"
            } else {
                "not used — not every target is unreachable (busy and DND agents are reachable)"
            };
            out.push(format!("Backup {}: {verdict}", b.scheme));
            explain_steps(b, &mut out);
        }
    }
    if !plan.notes.is_empty() {
        out.extend([String::new(), "Notes".to_owned()]);
        out.extend(plan.notes.iter().map(|n| format!("  - {n}")));
    }
    out
}

fn explain_steps(scheme: &SchemePlan, out: &mut Vec<String>) {
    const PAD: &str = "                   ";
    for (i, step) in scheme.steps.iter().enumerate() {
        let head = |kind: &str, rest: &str| format!("  {:>2}. {kind:<13}{rest}", i + 1);
        match step {
            PlanStep::Play { prompt } => out.push(head("play", &format!("prompt {prompt}"))),
            PlanStep::Menu(m) => {
                let default = m
                    .default
                    .as_ref()
                    .map_or("the next step".to_owned(), jump_text);
                let timeout = m.digit_timeout_seconds;
                let text = format!("prompt {}; no digit in {timeout} s → {default}", m.prompt);
                out.push(head("menu", &text));
                for (digit, target) in &m.options {
                    out.push(format!("{PAD}{digit} → {}", jump_text(target)));
                }
                if m.extension_dialing {
                    let wait = m.inter_digit_seconds;
                    out.push(format!("{PAD}extensions (ambiguous digits wait {wait} s):"));
                    out.extend(agent_rows(&m.extensions.values().collect::<Vec<_>>(), PAD));
                }
            }
            PlanStep::Ring(r) => {
                let t = r.timeout_seconds;
                let mode = match r.mode {
                    RingMode::Simultaneous => format!("all at once for {t} s"),
                    RingMode::Sequential => format!("one by one, {t} s each"),
                };
                out.push(head("ring", &mode));
                // Listed order matters (sequential rings); agent rows are aligned among themselves.
                let agents: Vec<&AgentTarget> = (r.targets.iter())
                    .filter_map(|t| {
                        if let PlanTarget::Agent(a) = t {
                            Some(a)
                        } else {
                            None
                        }
                    })
                    .collect();
                let mut rows = agent_rows(&agents, PAD).into_iter();
                let mut via = None;
                for target in &r.targets {
                    match target {
                        PlanTarget::Agent(a) => {
                            if a.selected_by.is_some() && a.selected_by != via {
                                let selector = a.selected_by.as_deref().unwrap_or_default();
                                out.push(format!("{PAD}selector {selector}:"));
                            }
                            via.clone_from(&a.selected_by);
                            out.extend(rows.next());
                        }
                        PlanTarget::Number(n) => out.push(format!("{PAD}{n}  (external number)")),
                        PlanTarget::SipUri(u) => out.push(format!("{PAD}{u}  (external SIP URI)")),
                    }
                }
            }
            PlanStep::Queue { queue } => out.push(head("queue", &format!("{queue} (below)"))),
            PlanStep::OwnerLookup {
                webhook,
                timeout_ms,
                ring_seconds,
            } => out.push(head(
                "ownerLookup",
                &format!(
                    "ask webhook {webhook} for the client's owner (≤ {timeout_ms} ms), \
                     ring them {ring_seconds} s"
                ),
            )),
            PlanStep::Voicemail {
                greeting,
                max_seconds,
                ..
            } => {
                let greeting = greeting.as_deref().unwrap_or("(default)");
                out.push(head(
                    "voicemail",
                    &format!("greeting {greeting}, up to {max_seconds} s"),
                ));
            }
            PlanStep::Hangup => out.push(head("hangup", "").trim_end().to_owned()),
        }
    }
}

/// Agents as aligned columns: extension, name, display name, availability, destinations.
fn agent_rows(agents: &[&AgentTarget], indent: &str) -> Vec<String> {
    let width = |f: &dyn Fn(&AgentTarget) -> String| {
        agents
            .iter()
            .map(|a| f(a).chars().count())
            .max()
            .unwrap_or(0)
    };
    let ext = |a: &AgentTarget| a.extension.clone().unwrap_or_else(|| "-".to_owned());
    let state = |a: &AgentTarget| availability_text(&a.availability);
    let (w_ext, w_state) = (width(&ext), width(&state));
    let w_name = width(&|a| a.agent.clone());
    let w_disp = width(&|a| a.display_name.clone());
    let mut out = Vec::new();
    for a in agents {
        let dests: Vec<&str> = (a.destinations.iter())
            .map(|d| match d {
                Destination::Softphone => "softphone",
                Destination::Number(n) | Destination::SipUri(n) => n,
            })
            .collect();
        let (e, n, d, s) = (ext(a), &a.agent, &a.display_name, state(a));
        let line = format!("{indent}{e:<w_ext$}  {n:<w_name$}  {d:<w_disp$}  {s:<w_state$}  ");
        out.push(line + &dests.join(", "));
    }
    out
}

/// Wraps a paragraph for an 80-column terminal.
fn wrap(text: &str) -> String {
    let (mut lines, mut line) = (Vec::new(), String::new());
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > 80 {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines.join("\n")
}

fn availability_text(a: &AgentAvailability) -> String {
    let state = a.state.as_str();
    match (a.available, a.reachable) {
        (true, _) => state.to_owned(),
        (false, true) => format!("{state} (reachable, not free)"),
        (false, false) => format!("{state} (unreachable)"),
    }
}

fn jump_text(target: &JumpTarget) -> String {
    match target {
        JumpTarget::Scheme(s) => format!("scheme {s}"),
        JumpTarget::Queue(q) => format!("queue {q}"),
        JumpTarget::Agent(a) => {
            format!("agent {} ({})", a.agent, availability_text(&a.availability))
        }
    }
}

fn strategy_name(strategy: QueueStrategy) -> &'static str {
    match strategy {
        QueueStrategy::RingAll => "ringAll",
        QueueStrategy::LongestIdle => "longestIdle",
        QueueStrategy::FewestCalls => "fewestCalls",
        QueueStrategy::Random => "random",
        QueueStrategy::RoundRobin => "roundRobin",
        QueueStrategy::Linear => "linear",
    }
}
