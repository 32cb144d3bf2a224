//! Plans for the demo call center at chosen instants.

use super::*;
use dialtone_model::{Environment, PromptCatalog, SourceFile, load};

const MAIN: &str = "+380441234567";
const MONDAY_10_KYIV: &str = "2026-11-23T08:00:00Z";
const MONDAY_21_KYIV: &str = "2026-11-23T19:00:00Z";

pub(super) fn demo() -> Snapshot {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo");
    let mut paths: Vec<_> = (std::fs::read_dir(&dir).expect("examples/demo"))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    let files: Vec<SourceFile> = (paths.iter())
        .map(|p| SourceFile {
            path: p.display().to_string(),
            text: std::fs::read_to_string(p).expect("read"),
        })
        .collect();
    let env = Environment {
        prompts: PromptCatalog::Unchecked,
    };
    load(&files, &env)
        .snapshot
        .expect("the demo loads without errors")
}

fn request(number: &str, caller: Option<&str>, at: &str) -> PlanRequest {
    let at = at.parse::<Timestamp>().expect("timestamp");
    PlanRequest {
        number: number.to_owned(),
        caller: caller.map(str::to_owned),
        at,
    }
}

fn everyone(state: AgentState) -> impl Fn(&str) -> AgentAvailability {
    move |_| AgentAvailability::from_state(state)
}

fn plan_with(
    snapshot: &Snapshot,
    at: &str,
    presence: &dyn Fn(&str) -> AgentAvailability,
) -> CallPlan {
    match plan_call(
        snapshot,
        &request(MAIN, Some("+380671112233"), at),
        presence,
    ) {
        PlanOutcome::Plan(plan) => *plan,
        other => panic!("expected a plan, got {other:?}"),
    }
}

fn plan_at(at: &str) -> CallPlan {
    plan_with(&demo(), at, &everyone(AgentState::Available))
}

fn ring_agents(step: &PlanStep) -> Vec<&str> {
    let PlanStep::Ring(ring) = step else {
        panic!("not a ring step: {step:?}")
    };
    (ring.targets.iter())
        .filter_map(|t| match t {
            PlanTarget::Agent(a) => Some(a.agent.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn open_monday_plans_main_menu_with_sales_reachable() {
    let plan = plan_at(MONDAY_10_KYIV);
    let s = &plan.schedule;
    assert_eq!(
        (s.state, s.schedule.as_deref()),
        (ScheduleState::Open, Some("office-hours"))
    );
    assert_eq!(
        (s.time_zone.as_str(), s.local_time.as_str()),
        ("Europe/Kyiv", "2026-11-23T10:00:00+02:00")
    );
    assert!(!plan.outside_business_hours);
    assert_eq!(plan.scheme, "main-menu");
    assert_eq!(plan.welcome_prompt.as_deref(), Some("welcome"));
    assert_eq!(plan.recording, Recording::Full);
    let PlanStep::Menu(menu) = &plan.steps()[0] else {
        panic!("main-menu starts with a menu")
    };
    assert_eq!(menu.options[&'1'], JumpTarget::Scheme("sales".to_owned()));
    assert_eq!(menu.options[&'2'], JumpTarget::Queue("support".to_owned()));
    assert_eq!(menu.default, Some(JumpTarget::Scheme("sales".to_owned())));
    assert_eq!(
        (menu.extensions.len(), menu.extensions["101"].agent.as_str()),
        (6, "anna")
    );
    // Reachable through option 1: the SDR selector expanded to its agents.
    let sales = &plan.schemes["sales"];
    assert!(matches!(sales.steps[0], PlanStep::OwnerLookup { .. }));
    assert_eq!(ring_agents(&sales.steps[1]), ["anna", "bohdan"]);
    assert_eq!(ring_agents(&sales.steps[2]), ["anna", "bohdan", "olena"]);
    let PlanStep::Ring(sdr) = &sales.steps[1] else {
        panic!("ring")
    };
    let PlanTarget::Agent(anna) = &sdr.targets[0] else {
        panic!("agent")
    };
    assert_eq!(anna.selected_by.as_deref(), Some("role=sdr,team=sales"));
    assert_eq!(anna.destinations, [Destination::Softphone]);
    assert!(anna.availability.available);
    // Through option 2: the queue with its members and its overflow scheme.
    let support = &plan.queues["support"];
    let mut members: Vec<&str> = support.members.iter().map(|m| m.agent.as_str()).collect();
    members.sort();
    assert_eq!(members, ["iryna", "taras"]);
    let overflow = Some((180, JumpTarget::Scheme("sales-voicemail".to_owned())));
    assert_eq!(support.overflow, overflow);
    assert!(plan.schemes.contains_key("sales-voicemail"));
    assert_eq!(
        plan.backup.as_ref().map(|b| b.scheme.as_str()),
        Some("backup")
    );
    assert!(!plan.all_targets_unreachable && !plan.use_backup);
    assert!(plan.notes.is_empty(), "{:?}", plan.notes);
}

#[test]
fn closed_holiday_and_exception_pick_after_hours() {
    use ScheduleState::{Closed, Holiday, Open};
    for (at, state, scheme, why) in [
        (
            MONDAY_21_KYIV,
            Closed,
            "after-hours",
            "outside weekly windows 09:00–19:00",
        ),
        (
            "2026-12-25T10:00:00Z",
            Holiday,
            "after-hours",
            "holiday Christmas",
        ),
        ("2026-12-31T13:00:00Z", Closed, "after-hours", "exception"), // 15:00, short day
        (
            "2026-12-31T10:00:00Z",
            Open,
            "main-menu",
            "exception window 09:00–14:00",
        ),
    ] {
        let plan = plan_at(at);
        let decision = &plan.schedule;
        assert_eq!(
            (decision.state, plan.scheme.as_str()),
            (state, scheme),
            "{at}"
        );
        assert_eq!(plan.outside_business_hours, state != Open, "{at}");
        assert!(decision.why.contains(why), "{at}: {}", decision.why);
        let holiday = (state == Holiday).then_some("Christmas");
        assert_eq!(decision.holiday.as_deref(), holiday);
    }
    assert_eq!(ring_agents(&plan_at(MONDAY_21_KYIV).steps()[0]), ["olena"]);
}

#[test]
fn blocklisted_callers_are_rejected_with_the_entry_reason() {
    let (snapshot, presence) = (demo(), everyone(AgentState::Available));
    for (caller, why) in [
        ("+380931110000", "robocaller"),
        ("+88211234567", "satellite"),
        ("00380931110000", "robocaller"),
    ] {
        let req = request(MAIN, Some(caller), MONDAY_10_KYIV);
        match plan_call(&snapshot, &req, &presence) {
            PlanOutcome::Blocked { list, reason, .. } => {
                assert_eq!(list, "spam");
                assert!(reason.contains(why), "{reason}");
            }
            other => panic!("{caller} should be blocked: {other:?}"),
        }
    }
}

#[test]
fn anonymous_caller_is_never_blocked() {
    let (snapshot, presence) = (demo(), everyone(AgentState::Available));
    for caller in [None, Some(""), Some("anonymous")] {
        let outcome = plan_call(&snapshot, &request(MAIN, caller, MONDAY_10_KYIV), &presence);
        let PlanOutcome::Plan(plan) = outcome else {
            panic!("{caller:?}: {outcome:?}")
        };
        assert_eq!(plan.caller, None);
    }
}

#[test]
fn unknown_number_is_not_found() {
    let req = request("+380440000000", None, MONDAY_10_KYIV);
    let outcome = plan_call(&demo(), &req, &everyone(AgentState::Available));
    assert_eq!(
        outcome,
        PlanOutcome::NotFound {
            number: "+380440000000".to_owned()
        }
    );
    assert!(explain(&outcome).contains("404"));
}

#[test]
fn missing_or_broken_route_is_no_forwarding_scheme() {
    let (mut snapshot, presence) = (demo(), everyone(AgentState::Available));
    let req = request(MAIN, None, MONDAY_21_KYIV);
    for (closed, expected) in [(None, "`closed`"), (Some("gone"), "gone")] {
        if let Some(n) = snapshot.numbers.get_mut(MAIN) {
            n.closed = closed.map(str::to_owned);
        }
        let outcome = plan_call(&snapshot, &req, &presence);
        let PlanOutcome::NoForwardingScheme { schedule, why, .. } = &outcome else {
            panic!("expected no_forwarding_scheme: {outcome:?}");
        };
        assert_eq!(schedule.state, ScheduleState::Closed);
        assert!(why.contains(expected), "{why}");
        assert!(explain(&outcome).contains("`no_forwarding_scheme`"));
    }
}

#[test]
fn office_down_uses_the_backup() {
    let plan = plan_with(&demo(), MONDAY_10_KYIV, &everyone(AgentState::Offline));
    assert!(plan.all_targets_unreachable && plan.use_backup);
    assert_eq!(plan.start().map(|s| s.scheme.as_str()), Some("backup"));
    assert!(explain(&PlanOutcome::Plan(Box::new(plan))).contains("WOULD BE USED"));
}

#[test]
fn busy_dnd_agents_and_external_numbers_are_reachable() {
    let snapshot = demo();
    let mixed = |name: &str| {
        AgentAvailability::from_state(match name {
            "anna" => AgentState::Dnd,
            "bohdan" => AgentState::OnCall,
            _ => AgentState::Offline,
        })
    };
    let busy = everyone(AgentState::OnCall);
    let dnd = everyone(AgentState::Dnd);
    for presence in [&busy as &dyn Fn(&str) -> AgentAvailability, &dnd, &mixed] {
        let plan = plan_with(&snapshot, MONDAY_10_KYIV, presence);
        assert!(!plan.all_targets_unreachable && !plan.use_backup);
        assert_eq!(plan.start().map(|s| s.scheme.as_str()), Some("main-menu"));
    }
    // after-hours rings olena, then a mobile through a carrier: never "office down".
    let plan = plan_with(&snapshot, MONDAY_21_KYIV, &everyone(AgentState::Offline));
    assert!(!plan.all_targets_unreachable && !plan.use_backup);
}

#[test]
fn dialled_numbers_are_normalised() {
    let (snapshot, presence) = (demo(), everyone(AgentState::Available));
    for number in [
        "00380441234567",
        "380441234567",
        "+38 044 123 45 67",
        "+38 (044) 123-45-67",
    ] {
        let outcome = plan_call(&snapshot, &request(number, None, MONDAY_10_KYIV), &presence);
        let PlanOutcome::Plan(plan) = outcome else {
            panic!("{number}: {outcome:?}")
        };
        assert_eq!(
            (plan.number.as_str(), plan.number_name.as_str()),
            (MAIN, "main-line")
        );
    }
    assert_eq!(normalize_number("0441234567"), "0441234567");
}

#[test]
fn explain_names_scheme_agents_and_schedule_reason() {
    let text = explain(&PlanOutcome::Plan(Box::new(plan_at(MONDAY_10_KYIV))));
    for needle in [
        "Scheme main-menu",
        "weekly window 09:00–19:00",
        "Scheme sales (reachable)",
        "Anna Kovalenko",
        "bohdan",
        "selector role=sdr,team=sales",
        "Queue support: longestIdle",
        "Backup backup: not used",
        "recording  full call",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    let closed = explain(&PlanOutcome::Plan(Box::new(plan_at(MONDAY_21_KYIV))));
    assert!(closed.contains("outside_business_hours"), "{closed}");
    let req = request(MAIN, Some("+88211234567"), MONDAY_10_KYIV);
    let blocked = explain(&plan_call(&demo(), &req, &everyone(AgentState::Available)));
    let blocked = blocked.replace('\n', " "); // paragraphs are wrapped for the terminal
    assert!(
        blocked.contains("+8821…") && blocked.contains("remove or narrow"),
        "{blocked}"
    );
}
