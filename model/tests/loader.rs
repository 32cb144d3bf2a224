//! The loader on the demo call center: what the snapshot holds, and that no input panics it.

use std::path::Path;

use dialtone_model::loader::{Environment, PromptCatalog, SourceFile, load};
use dialtone_model::schedule::ScheduleState;
use dialtone_model::snapshot::{Destination, RingTarget, Step, Target};

fn demo_files() -> Vec<SourceFile> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples/demo")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| SourceFile {
            path: p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            text: std::fs::read_to_string(&p).expect("readable"),
        })
        .collect()
}

fn env() -> Environment {
    Environment {
        prompts: PromptCatalog::Unchecked,
    }
}

#[test]
fn demo_snapshot_is_resolved() {
    let report = load(&demo_files(), &env());
    let errors: Vec<String> = report.errors().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let snap = report.snapshot.expect("a snapshot");
    assert_eq!(snap.namespace, "telephony");
    assert_eq!(snap.call_center.name, "acme");
    assert_eq!(snap.call_center.spec.missed_calls.callback_sla_minutes, 10);
    assert_eq!(
        snap.call_center.webhook_keys.len(),
        1,
        "crm's HMAC key read from its Secret"
    );

    let main = snap.number("+380441234567").expect("main line");
    assert_eq!(main.open.as_deref(), Some("main-menu"));
    assert_eq!(main.backup.as_deref(), Some("backup"));

    // Selectors are expanded to agents in the snapshot.
    let sales = &snap.schemes["sales"];
    let Step::Ring(first_ring) = &sales.steps[1] else {
        panic!("sales' second step rings: {:?}", sales.steps[1]);
    };
    let RingTarget::Selector { agents, .. } = &first_ring.targets[0] else {
        panic!("a selector");
    };
    assert_eq!(agents, &["anna".to_owned(), "bohdan".to_owned()]);

    let Step::Menu(menu) = &snap.schemes["main-menu"].steps[0] else {
        panic!("main-menu is a menu");
    };
    assert_eq!(
        menu.options.get(&'2'),
        Some(&Target::Queue("support".into()))
    );
    assert_eq!(menu.default, Some(Target::Scheme("sales".into())));

    // Members in the order the Agents are declared: what `linear` rings.
    assert_eq!(
        snap.queues["support"].members,
        vec!["taras".to_owned(), "iryna".to_owned()]
    );
    assert_eq!(
        snap.agent_by_extension("103").map(|a| a.name.as_str()),
        Some("olena")
    );
    let olena = &snap.agents["olena"];
    assert_eq!(
        olena.destinations,
        vec![
            Destination::Softphone,
            Destination::Number("+380671234567".into())
        ]
    );
    assert_eq!(
        olena.sip.as_ref().map(|c| c.username.as_str()),
        Some("olena")
    );

    assert_eq!(
        snap.blocked("+88211234567").map(|r| r.reason.as_str()),
        Some("satellite numbers, never a client")
    );
    assert!(snap.blocked("+380441111111").is_none());
    let src: std::net::IpAddr = "198.51.100.7".parse().expect("ip");
    assert_eq!(
        snap.carrier_for_source(src).map(|c| c.name.as_str()),
        Some("primary-trunk")
    );

    let office = &snap.schedules["office-hours"];
    let at = |s: &str| s.parse::<jiff::Timestamp>().expect("time");
    assert_eq!(
        office.state_at(at("2026-11-23T08:00:00Z")).state,
        ScheduleState::Open
    );
    assert_eq!(
        office.state_at(at("2026-12-25T08:00:00Z")).state,
        ScheduleState::Holiday
    );
}

#[test]
fn hangup_step_and_missing_routes_load_with_warnings() {
    let mut files = demo_files();
    files.push(SourceFile {
        path: "extra.yaml".into(),
        text: "apiVersion: dialtone.dev/v1alpha1\nkind: ForwardingScheme\nmetadata: {name: bye, namespace: telephony}\nspec:\n  steps:\n    - play: {prompt: closed-greeting}\n    - hangup: {}\n---\napiVersion: dialtone.dev/v1alpha1\nkind: PhoneNumber\nmetadata: {name: promo, namespace: telephony}\nspec:\n  number: \"+380441234599\"\n  schedule: office-hours\n  routes: {open: bye}\n".into(),
    });
    let report = load(&files, &env());
    assert_eq!(report.errors().count(), 0, "{:?}", report.problems);
    let warnings: Vec<String> = report.warnings().map(ToString::to_string).collect();
    assert!(
        warnings.iter().any(
            |w| w.starts_with("extra.yaml:15: PhoneNumber/promo: spec.routes: no closed route")
        ),
        "{warnings:?}"
    );
    let snap = report.snapshot.expect("valid");
    assert_eq!(snap.schemes["bye"].steps.last(), Some(&Step::Hangup));
}

/// A small deterministic generator, so the mutation test needs no extra dependency.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        usize::try_from((self.0 >> 33) % bound as u64).unwrap_or(0)
    }
}

#[test]
fn mutated_manifests_never_panic() {
    let files = demo_files();
    let pieces = [
        "",
        "-",
        ":",
        "{",
        "}",
        "[",
        "]",
        "\"",
        "'",
        "&a",
        "*a",
        "!!str",
        "\t",
        "\n",
        "  ",
        "null",
        "-1",
        "99999999999999999999",
        "1e400",
        "24:00",
        "+",
        "#",
        "---",
        "?",
        "|",
        ">",
        "\u{0}",
        "ÿ",
        "\u{202e}",
    ];
    let mut rng = Lcg(7);
    for round in 0..2000 {
        let mut mutated = files.clone();
        let f = rng.next(mutated.len());
        let text = &mut mutated[f].text;
        for _ in 0..1 + rng.next(4) {
            let mut cut = rng.next(text.len().max(1));
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            match rng.next(3) {
                0 => text.insert_str(cut, pieces[rng.next(pieces.len())]),
                1 => {
                    let mut end = (cut + 1 + rng.next(12)).min(text.len());
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.replace_range(cut..end, "");
                }
                _ => text.truncate(cut),
            }
        }
        // Must return, never panic; an error report must carry at least one located problem.
        let report = load(&mutated, &env());
        if report.snapshot.is_none() {
            assert!(
                report.errors().count() > 0,
                "round {round}: refused without an error"
            );
        }
    }
}
