//! `dialtone demo` end to end: simulated carriers and softphones over real SIP, every missed
//! reason the signalling path can produce, a callback ordered from the command line, and the
//! three reports, in well under two minutes.

use std::process::Command;

#[test]
fn demo_fills_the_reports() {
    let out = Command::new(env!("CARGO_BIN_EXE_dialtone"))
        .arg("demo")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "warn")
        .output()
        .expect("dialtone demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for agent in ["anna", "bohdan", "olena", "taras", "iryna"] {
        assert!(
            stdout.contains(&format!("{agent} registered (digest authentication)")),
            "{stdout}"
        );
    }
    let missed = stdout
        .split("Missed calls:")
        .nth(1)
        .and_then(|s| s.split("Unprocessed").next())
        .expect("a missed-calls section");
    for reason in [
        "no_forwarding_scheme",
        "outside_business_hours",
        "abandoned_during_welcome",
        "abandoned_in_ivr",
        "abandoned_short",
        "all_agents_unavailable",
        "not_answered",
    ] {
        assert!(missed.contains(reason), "missing {reason} in:\n{missed}");
    }
    assert!(
        stdout.contains("refused with 403"),
        "blocked callers: {stdout}"
    );
    assert!(
        stdout.contains("refused with 404"),
        "unknown number: {stdout}"
    );
    // The client who called again and got through is no longer on the to-do list.
    let todo = stdout
        .split("Unprocessed missed calls")
        .nth(1)
        .and_then(|s| s.split("Agents:").next())
        .expect("a to-do section");
    assert!(!todo.contains("+380506000006"), "{todo}");
    assert!(todo.contains("+380502000003"), "{todo}");
    // The supervisor's callback: ordered with `dialtone callback`, answered, so the client who
    // hung up in the menu is called back (yellow in the call log) and off the to-do list.
    assert!(
        stdout.contains("callback cb-") && stdout.contains("ringing anna, then +380509000010"),
        "{stdout}"
    );
    assert!(
        stdout.contains("anna picked up, then the client answered"),
        "{stdout}"
    );
    assert!(!todo.contains("+380509000010"), "{todo}");
    let called_back = missed
        .lines()
        .find(|l| l.contains("+380509000010"))
        .expect("the called-back client's missed call");
    assert!(
        called_back.contains("abandoned_in_ivr") && called_back.contains("called_back"),
        "{called_back}"
    );
    // Every call reached the reports: seven reasons, no duplicates of a call.
    let rows = missed.lines().filter(|l| l.starts_with("20")).count();
    assert!(rows >= 7, "{missed}");
    // bohdan never picks up: a 100% miss rate.
    let agents = stdout.split("Agents:").nth(1).expect("an agents section");
    let bohdan = agents
        .lines()
        .find(|l| l.starts_with("bohdan"))
        .expect("bohdan's row");
    assert!(bohdan.contains("100.0%"), "{bohdan}");
}
