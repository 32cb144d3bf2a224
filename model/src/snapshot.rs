//! The validated configuration snapshot: every reference resolved, every value parsed.
//!
//! The router, media nodes and reporter read only this, never the raw resources. A snapshot is
//! immutable; the edges hold it in an `Arc` and swap the whole thing when manifests change, so
//! a call keeps the snapshot it started with.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::resources::call_center::CallCenterSpec;
use crate::resources::carrier::CarrierTransport;
use crate::resources::common::LabelSelector;
use crate::resources::queue::QueueStrategy;
use crate::resources::scheme::RingMode;
use crate::schedule::ScheduleConfig;

/// The whole validated configuration of one namespace.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The namespace every object lives in.
    pub namespace: String,
    /// The CallCenter's settings, defaults filled in (defaults alone when there is none).
    pub call_center: CallCenterConfig,
    /// Carriers by name.
    pub carriers: BTreeMap<String, CarrierConfig>,
    /// Schedules by name.
    pub schedules: BTreeMap<String, ScheduleConfig>,
    /// Agents by name.
    pub agents: BTreeMap<String, AgentConfig>,
    /// Queues by name.
    pub queues: BTreeMap<String, QueueConfig>,
    /// Forwarding schemes by name.
    pub schemes: BTreeMap<String, SchemeConfig>,
    /// Phone numbers by their E.164 number.
    pub numbers: BTreeMap<String, NumberConfig>,
    /// Blocked callers, from every Blocklist.
    pub blocklist: Vec<BlockRule>,
    /// Prompt names available (`prompts/<name>.wav` or ConfigMap keys).
    pub prompts: BTreeSet<String>,
}

/// How many objects of each kind a snapshot holds, for summaries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// `(kind, count)` in [`crate::resources::KINDS`] order.
    pub per_kind: Vec<(&'static str, usize)>,
}

impl Snapshot {
    /// The number config for a dialled number (already E.164).
    pub fn number(&self, e164: &str) -> Option<&NumberConfig> {
        self.numbers.get(e164)
    }

    /// The agent whose extension this is.
    pub fn agent_by_extension(&self, extension: &str) -> Option<&AgentConfig> {
        self.agents
            .values()
            .find(|a| a.extension.as_deref() == Some(extension))
    }

    /// The blocklist rule matching a caller, exact numbers before prefixes, longest prefix first.
    pub fn blocked(&self, caller: &str) -> Option<&BlockRule> {
        self.blocklist
            .iter()
            .filter(|r| r.matches(caller))
            .max_by_key(|r| match &r.pattern {
                BlockPattern::Exact(_) => usize::MAX,
                BlockPattern::Prefix(p) => p.len(),
            })
    }

    /// The carrier whose `inboundSources` contain this address.
    pub fn carrier_for_source(&self, ip: IpAddr) -> Option<&CarrierConfig> {
        self.carriers
            .values()
            .find(|c| c.inbound_sources.iter().any(|net| net.contains(&ip)))
    }

    /// Agents matching a selector, by name.
    pub fn select_agents(&self, selector: &LabelSelector) -> Vec<String> {
        self.agents
            .values()
            .filter(|a| selector.matches(&a.labels))
            .map(|a| a.name.clone())
            .collect()
    }

    /// Counts per kind, for summaries such as `dialtone validate`'s.
    pub fn counts(&self, call_centers: usize, blocklists: usize) -> Counts {
        Counts {
            per_kind: vec![
                ("CallCenter", call_centers),
                ("Carrier", self.carriers.len()),
                ("Schedule", self.schedules.len()),
                ("Agent", self.agents.len()),
                ("CallQueue", self.queues.len()),
                ("ForwardingScheme", self.schemes.len()),
                ("PhoneNumber", self.numbers.len()),
                ("Blocklist", blocklists),
            ],
        }
    }
}

/// The CallCenter.
#[derive(Debug, Clone)]
pub struct CallCenterConfig {
    /// Its name (`default` when the folder has none).
    pub name: String,
    /// Its spec, defaults applied.
    pub spec: CallCenterSpec,
    /// Each webhook's HMAC signing key, by webhook name, when its Secret was available.
    pub webhook_keys: BTreeMap<String, String>,
    /// The database URL from the Secret, when one is referenced and available.
    pub database_url: Option<String>,
}

/// SIP digest credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct SipCredentials {
    /// Digest username.
    pub username: String,
    /// Digest password.
    pub password: String,
}

impl std::fmt::Debug for SipCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print passwords, even in debug logs.
        f.debug_struct("SipCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A carrier trunk.
#[derive(Debug, Clone)]
pub struct CarrierConfig {
    /// Its name.
    pub name: String,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Transport.
    pub transport: CarrierTransport,
    /// Lower first.
    pub priority: u16,
    /// Share among carriers of one priority.
    pub weight: u16,
    /// Channel cap.
    pub max_channels: Option<u32>,
    /// Where inbound INVITEs may come from.
    pub inbound_sources: Vec<IpNet>,
    /// Digest credentials toward the trunk.
    pub credentials: Option<SipCredentials>,
    /// Registration-based trunk.
    pub register: bool,
    /// OPTIONS probing, if enabled.
    pub probe: Option<ProbeConfig>,
}

/// OPTIONS probing parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeConfig {
    /// Seconds between probes.
    pub interval_seconds: u32,
    /// Failures that mark the carrier down.
    pub failures_to_down: u32,
    /// Successes that mark it up.
    pub successes_to_up: u32,
}

/// An agent.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Its name (`metadata.name`).
    pub name: String,
    /// Shown on boards; the name when not given.
    pub display_name: String,
    /// Extension digits.
    pub extension: Option<String>,
    /// Labels (teams).
    pub labels: BTreeMap<String, String>,
    /// Where the agent is rung.
    pub destinations: Vec<Destination>,
    /// Calls at once.
    pub max_concurrent_calls: u32,
    /// Credentials the softphone registers with.
    pub sip: Option<SipCredentials>,
}

impl AgentConfig {
    /// Whether the agent has a softphone destination (and so registers).
    pub fn has_softphone(&self) -> bool {
        self.destinations
            .iter()
            .any(|d| matches!(d, Destination::Softphone))
    }
}

/// One way to reach an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Wherever the agent's softphone registers.
    Softphone,
    /// A number in E.164, through a carrier.
    Number(String),
    /// A fixed SIP URI.
    SipUri(String),
}

/// A queue.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Its name.
    pub name: String,
    /// Member agents: the named ones in order, then the selected ones in the order the Agents
    /// are declared (the order `linear` rings them).
    pub members: Vec<String>,
    /// Strategy.
    pub strategy: QueueStrategy,
    /// Seconds one offer rings.
    pub ring_timeout_seconds: u32,
    /// Longest wait.
    pub max_wait_seconds: u32,
    /// Wrap-up seconds after a call.
    pub wrap_up_seconds: u32,
    /// Hold music prompt.
    pub hold_music: Option<String>,
    /// Announce positions.
    pub announce_position: bool,
    /// Digit for "call me back instead".
    pub callback_digit: Option<char>,
    /// `(after seconds, target)`.
    pub overflow: Option<(u32, Target)>,
}

/// Where a call goes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A forwarding scheme.
    Scheme(String),
    /// A queue.
    Queue(String),
    /// One agent.
    Agent(String),
}

/// A forwarding scheme.
#[derive(Debug, Clone)]
pub struct SchemeConfig {
    /// Its name.
    pub name: String,
    /// Its steps.
    pub steps: Vec<Step>,
}

/// One step of a scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Play a prompt.
    Play {
        /// Prompt name.
        prompt: String,
    },
    /// A voice menu.
    Menu(Menu),
    /// Ring targets.
    Ring(Ring),
    /// Enter a queue.
    Queue {
        /// Queue name.
        name: String,
    },
    /// Ask the CRM for the client's owner and ring them.
    OwnerLookup {
        /// Webhook name.
        webhook: String,
        /// Lookup time limit.
        timeout_ms: u32,
        /// How long the owner rings.
        ring_seconds: u32,
    },
    /// Record a voicemail.
    Voicemail {
        /// Greeting prompt.
        greeting: Option<String>,
        /// Longest message.
        max_seconds: u32,
        /// Silence that ends it.
        silence_seconds: u32,
    },
    /// End the call.
    Hangup,
}

impl Step {
    /// The step's kind as written in manifests (`play`, `ownerLookup`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Play { .. } => "play",
            Step::Menu(_) => "menu",
            Step::Ring(_) => "ring",
            Step::Queue { .. } => "queue",
            Step::OwnerLookup { .. } => "ownerLookup",
            Step::Voicemail { .. } => "voicemail",
            Step::Hangup => "hangup",
        }
    }
}

/// A voice menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Menu {
    /// Prompt.
    pub prompt: String,
    /// Digit → target.
    pub options: BTreeMap<char, Target>,
    /// Extension dialing on.
    pub extension_dialing: bool,
    /// Seconds after the prompt before the default.
    pub digit_timeout_seconds: u32,
    /// Seconds to wait for more digits when a digit is both an option and an extension start.
    pub inter_digit_seconds: u32,
    /// No input: here (or the next step when absent).
    pub default: Option<Target>,
}

/// A ring step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ring {
    /// Targets.
    pub targets: Vec<RingTarget>,
    /// Simultaneous or sequential.
    pub mode: RingMode,
    /// Seconds.
    pub timeout_seconds: u32,
}

/// A ring target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingTarget {
    /// One agent.
    Agent(String),
    /// Agents matching a selector; `agents` is the expansion in this snapshot.
    Selector {
        /// The selector as written.
        selector: LabelSelector,
        /// Matching agents, by name.
        agents: Vec<String>,
    },
    /// An external number.
    Number(String),
    /// A SIP URI.
    SipUri(String),
}

/// A phone number.
#[derive(Debug, Clone)]
pub struct NumberConfig {
    /// The PhoneNumber's name.
    pub name: String,
    /// E.164.
    pub number: String,
    /// Carriers delivering it.
    pub carriers: Vec<String>,
    /// Schedule name (absent: always open).
    pub schedule: Option<String>,
    /// Scheme when open.
    pub open: Option<String>,
    /// Scheme when closed.
    pub closed: Option<String>,
    /// Scheme on holidays.
    pub holiday: Option<String>,
    /// Backup scheme.
    pub backup: Option<String>,
    /// Welcome prompt.
    pub welcome: Option<String>,
    /// Recording policy.
    pub recording: Recording,
}

/// What of a call is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recording {
    /// Nothing.
    None,
    /// The whole call.
    Full,
    /// The first N seconds.
    First(u32),
}

/// A blocked caller pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRule {
    /// The Blocklist it came from.
    pub list: String,
    /// What it matches.
    pub pattern: BlockPattern,
    /// Why.
    pub reason: String,
}

/// Exact number or prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockPattern {
    /// This number only.
    Exact(String),
    /// Every number starting with this.
    Prefix(String),
}

impl BlockRule {
    /// Whether the caller (E.164) matches.
    pub fn matches(&self, caller: &str) -> bool {
        match &self.pattern {
            BlockPattern::Exact(n) => n == caller,
            BlockPattern::Prefix(p) => caller.starts_with(p.as_str()),
        }
    }
}
