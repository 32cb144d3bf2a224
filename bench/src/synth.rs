//! Synthetic but realistic configurations, generated as manifests and loaded through the real
//! loader (so the benchmark also pays for what production pays for).

use std::fmt::Write as _;

use dialtone_model::Snapshot;
use dialtone_model::loader::{Environment, PromptCatalog, SourceFile, load};

/// A call center with `numbers` PhoneNumbers, `agents` Agents in `queues` teams, one queue and
/// one scheme per team (ring the team for 15 s, then its queue, then voicemail).
pub fn call_center(numbers: usize, agents: usize, queues: usize) -> anyhow::Result<Snapshot> {
    let mut y = String::new();
    let ns = "bench";
    writeln!(
        y,
        "apiVersion: dialtone.dev/v1alpha1\nkind: CallCenter\nmetadata: {{name: bench, namespace: {ns}}}\nspec: {{}}\n---"
    )?;
    writeln!(
        y,
        "apiVersion: dialtone.dev/v1alpha1\nkind: Carrier\nmetadata: {{name: trunk, namespace: {ns}}}\nspec: {{address: 127.0.0.1:5080, inboundSources: [127.0.0.1/32]}}\n---"
    )?;
    writeln!(
        y,
        "apiVersion: dialtone.dev/v1alpha1\nkind: Schedule\nmetadata: {{name: hours, namespace: {ns}}}\nspec:\n  timezone: Europe/Kyiv\n  weekly:\n    - {{days: [mon, tue, wed, thu, fri, sat, sun], open: \"00:00\", close: \"24:00\"}}\n---"
    )?;
    for a in 0..agents {
        let team = a % queues;
        writeln!(
            y,
            "apiVersion: dialtone.dev/v1alpha1\nkind: Agent\nmetadata: {{name: agent-{a}, namespace: {ns}, labels: {{team: t{team}}}}}\nspec:\n  extension: \"{}\"\n  destinations: [{{number: \"+38067{:07}\"}}]\n---",
            10000 + a,
            a
        )?;
    }
    for q in 0..queues {
        writeln!(
            y,
            "apiVersion: dialtone.dev/v1alpha1\nkind: CallQueue\nmetadata: {{name: q{q}, namespace: {ns}}}\nspec:\n  members: {{selector: {{matchLabels: {{team: t{q}}}}}}}\n  strategy: longestIdle\n---"
        )?;
        writeln!(
            y,
            "apiVersion: dialtone.dev/v1alpha1\nkind: ForwardingScheme\nmetadata: {{name: team-{q}, namespace: {ns}}}\nspec:\n  steps:\n    - ring: {{targets: [{{agentSelector: {{matchLabels: {{team: t{q}}}}}}}], timeoutSeconds: 15}}\n    - queue: {{name: q{q}}}\n    - voicemail: {{}}\n---"
        )?;
    }
    for n in 0..numbers {
        writeln!(
            y,
            "apiVersion: dialtone.dev/v1alpha1\nkind: PhoneNumber\nmetadata: {{name: n{n}, namespace: {ns}}}\nspec:\n  number: \"+38044{:07}\"\n  carriers: [trunk]\n  schedule: hours\n  routes: {{open: team-{}, closed: team-{}, holiday: team-{}}}\n---",
            n,
            n % queues,
            n % queues,
            n % queues
        )?;
    }
    let report = load(
        &[SourceFile {
            path: "bench.yaml".into(),
            text: y,
        }],
        &Environment {
            prompts: PromptCatalog::Unchecked,
        },
    );
    match report.snapshot {
        Some(s) => Ok(s),
        None => {
            let first: Vec<String> = report.errors().take(5).map(ToString::to_string).collect();
            anyhow::bail!("synthetic configuration refused: {}", first.join("; "))
        }
    }
}

/// The dialled number of synthetic PhoneNumber `n`.
pub fn number(n: usize) -> String {
    format!("+38044{n:07}")
}
