//! IVR menus: the prompt, digit collection, options, extension dialing and the default.
//!
//! # Timing (PRODUCT.md, precise rules)
//!
//! - The digit timeout counts from the end of the menu prompt: the caller hears the whole
//!   prompt before the clock runs. A key pressed during the prompt stops it (barge-in).
//! - When the digits typed so far are an option (or an extension) *and* the start of a longer
//!   one — `1` is an option and `103` an extension — the menu waits the inter-digit timeout
//!   (default 2 s) for more digits before taking what was typed.
//! - Digits that can still become something wait for more with the digit timeout; digits that
//!   cannot (or `#` ending a string that is nothing) are discarded and the caller may try again
//!   (three times at most). No valid choice in time: the menu's default, or the next step.
//!
//! # Events
//!
//! `menu_entered` when the prompt starts, `menu_digit` per key, `menu_left` with how the menu
//! ended. A caller who hangs up in between gets `caller_hung_up` with phase `menu` and no
//! `menu_left`: the reporter's `abandoned_in_ivr`.

use std::time::{Duration, Instant};

use dialtone_proto::v1 as pb;
use dialtone_proto::v1::call_event::Kind;
use dialtone_proto::v1::jump_target::Target as J;

use super::actor::{Node, Timer, TimerKind};
use super::events::from_duration;
use super::plan::Mode;
use super::session::Sound;

/// Digit timeout when the plan gives none.
const DIGIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Inter-digit timeout when the plan gives none (PRODUCT.md: default 2 s).
const INTER_DIGIT: Duration = Duration::from_secs(2);
/// Invalid entries before the default is taken.
const MAX_INVALID: u32 = 3;

/// A menu in progress.
#[derive(Debug)]
pub(super) struct MenuState {
    step: pb::MenuStep,
    /// The prompt's playlist id while it plays.
    pub(super) prompt: Option<u64>,
    digits: String,
    /// What the digits typed so far choose if nothing more comes in time.
    pending: Option<Choice>,
    /// The number of the live menu timer (older ones are ignored).
    timer: u64,
    invalid: u32,
}

/// A valid choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Choice {
    /// An option: its digits and where it leads.
    Option(String, J),
    /// An extension: its digits and the agent.
    Extension(String, String),
}

/// What the digits typed so far mean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Take this now.
    Take(Choice),
    /// Wait this long for more digits; then take the choice (if any).
    Wait(Duration, Option<Choice>),
    /// Nothing starts with these digits.
    Invalid,
}

fn digit_timeout(step: &pb::MenuStep) -> Duration {
    from_duration(step.digit_timeout.as_ref())
        .filter(|d| !d.is_zero())
        .unwrap_or(DIGIT_TIMEOUT)
}

fn inter_digit(step: &pb::MenuStep) -> Duration {
    from_duration(step.inter_digit_timeout.as_ref())
        .filter(|d| !d.is_zero())
        .unwrap_or(INTER_DIGIT)
}

/// The option (first) or extension these exact digits choose.
fn exact(step: &pb::MenuStep, digits: &str) -> Option<Choice> {
    if let Some(target) = step.options.get(digits).and_then(|t| t.target.clone()) {
        return Some(Choice::Option(digits.to_owned(), target));
    }
    let agent = step
        .extensions
        .get(digits)
        .filter(|_| step.extension_dialing)?;
    Some(Choice::Extension(digits.to_owned(), agent.clone()))
}

/// What `digits` mean in this menu.
pub(super) fn evaluate(step: &pb::MenuStep, digits: &str) -> Verdict {
    let longer = |k: &String| k.len() > digits.len() && k.starts_with(digits);
    let more = step.options.keys().any(longer)
        || (step.extension_dialing && step.extensions.keys().any(longer));
    match (exact(step, digits), more) {
        (Some(choice), false) => Verdict::Take(choice),
        (Some(choice), true) => Verdict::Wait(inter_digit(step), Some(choice)),
        (None, true) => Verdict::Wait(digit_timeout(step), None),
        (None, false) => Verdict::Invalid,
    }
}

/// Where a target leads, in words (MenuLeft.target).
pub(super) fn describe(target: &J) -> String {
    match target {
        J::Scheme(s) => format!("scheme {s}"),
        J::Queue(q) => format!("queue {q}"),
        J::Agent(a) => format!("agent {a}"),
        J::Number(n) => format!("number {n}"),
    }
}

impl Node {
    /// A menu step: answer, announce, play the prompt.
    pub(super) fn start_menu(&mut self, key: &str, step: pb::MenuStep, index: u32) {
        if !self.answer_caller(key) {
            return;
        }
        let prompt = step.prompt.clone();
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        call.phase = pb::CallPhase::Menu;
        call.emit(Kind::MenuEntered(pb::MenuEntered {
            scheme: call.exec.scheme.clone(),
            step_index: index,
            prompt: prompt.clone(),
        }));
        tracing::info!(call_id = %key, %prompt, options = step.options.len(), extensions = step.extensions.len(), "menu");
        let play = if prompt.is_empty() {
            None
        } else {
            self.play(key, vec![Sound::Prompt(prompt)], None, None)
        };
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        call.exec.mode = Mode::Menu(Box::new(MenuState {
            step,
            prompt: play,
            digits: String::new(),
            pending: None,
            timer: 0,
            invalid: 0,
        }));
        if play.is_none() {
            self.menu_prompt_done(key);
        }
    }

    fn menu(&mut self, key: &str) -> Option<&mut MenuState> {
        match &mut self.calls.get_mut(key)?.exec.mode {
            Mode::Menu(m) => Some(m),
            _ => None,
        }
    }

    /// Arms the menu's timer (replacing the previous one).
    fn arm_menu(&mut self, key: &str, after: Duration) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let generation = call.exec.generation;
        let Mode::Menu(m) = &mut call.exec.mode else {
            return;
        };
        m.timer += 1;
        let kind = TimerKind::Menu(m.timer);
        self.arm(
            Instant::now() + after,
            Timer {
                call: key.to_owned(),
                generation,
                kind,
            },
        );
    }

    /// The prompt played to its end: the digit timeout starts (unless keys came already).
    pub(super) fn menu_prompt_done(&mut self, key: &str) {
        let Some(m) = self.menu(key) else {
            return;
        };
        m.prompt = None;
        if m.digits.is_empty() && m.pending.is_none() {
            let after = digit_timeout(&m.step);
            self.arm_menu(key, after);
        }
    }

    /// A key in the menu.
    pub(super) fn menu_digit(&mut self, key: &str, digit: char) {
        if let Some(call) = self.calls.get_mut(key) {
            call.emit(Kind::MenuDigit(pb::MenuDigit {
                digit: digit.to_string(),
            }));
        }
        let Some(m) = self.menu(key) else {
            return;
        };
        let barge_in = m.prompt.take().is_some();
        let verdict = if digit == '#' {
            let digits = std::mem::take(&mut m.digits);
            exact(&m.step, &digits).map_or(Verdict::Invalid, Verdict::Take)
        } else {
            m.digits.push(digit);
            evaluate(&m.step, &m.digits)
        };
        if barge_in {
            self.stop_audio(key);
        }
        match verdict {
            Verdict::Take(choice) => self.menu_choose(key, choice),
            Verdict::Wait(after, choice) => {
                if let Some(m) = self.menu(key) {
                    m.pending = choice;
                }
                self.arm_menu(key, after);
            }
            Verdict::Invalid => self.menu_invalid(key),
        }
    }

    /// Digits that lead nowhere: forget them; after a few such tries, the default.
    fn menu_invalid(&mut self, key: &str) {
        let Some(m) = self.menu(key) else {
            return;
        };
        tracing::info!(call_id = %key, digits = %m.digits, "no such option or extension");
        m.digits.clear();
        m.pending = None;
        m.invalid += 1;
        if m.invalid >= MAX_INVALID {
            self.menu_default(key);
        } else {
            let after = digit_timeout(&m.step);
            self.arm_menu(key, after);
        }
    }

    /// The menu's timer fired.
    pub(super) fn menu_timer(&mut self, key: &str, seq: u64) {
        let Some(m) = self.menu(key) else {
            return;
        };
        if m.timer != seq || m.prompt.is_some() {
            return;
        }
        if let Some(choice) = m.pending.take() {
            self.menu_choose(key, choice);
        } else if m.digits.is_empty() {
            self.menu_default(key);
        } else {
            self.menu_invalid(key);
        }
    }

    fn menu_choose(&mut self, key: &str, choice: Choice) {
        let (exit, digits, target) = match choice {
            Choice::Option(d, t) => (pb::MenuExit::Option, d, t),
            Choice::Extension(d, agent) => (pb::MenuExit::Extension, d, J::Agent(agent)),
        };
        self.leave_menu(key, exit, digits, describe(&target));
        self.jump(key, target);
    }

    fn menu_default(&mut self, key: &str) {
        let Some(m) = self.menu(key) else {
            return;
        };
        let target = m.step.default_target.clone().and_then(|t| t.target);
        let words = target
            .as_ref()
            .map_or_else(|| "next step".to_owned(), describe);
        self.leave_menu(key, pb::MenuExit::Default, String::new(), words);
        match target {
            Some(t) => self.jump(key, t),
            None => self.advance(key),
        }
    }

    fn leave_menu(&mut self, key: &str, exit: pb::MenuExit, digits: String, target: String) {
        self.stop_audio(key);
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        tracing::info!(call_id = %key, ?exit, %digits, %target, "menu left");
        call.emit(Kind::MenuLeft(pb::MenuLeft {
            exit: exit as i32,
            digits,
            target,
        }));
        call.phase = pb::CallPhase::Routing;
        call.exec.mode = Mode::Idle;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jump(t: J) -> pb::JumpTarget {
        pb::JumpTarget { target: Some(t) }
    }

    fn main_menu() -> pb::MenuStep {
        pb::MenuStep {
            prompt: "main-menu".into(),
            options: [
                ("1".to_owned(), jump(J::Scheme("sales".into()))),
                ("2".to_owned(), jump(J::Queue("support".into()))),
                ("9".to_owned(), jump(J::Number("+380501112233".into()))),
            ]
            .into(),
            extension_dialing: true,
            extensions: [("101", "anna"), ("103", "olena"), ("201", "taras")]
                .map(|(e, a)| (e.to_owned(), a.to_owned()))
                .into(),
            digit_timeout: Some(prost_types::Duration {
                seconds: 5,
                nanos: 0,
            }),
            inter_digit_timeout: None,
            default_target: Some(jump(J::Scheme("sales".into()))),
        }
    }

    #[test]
    fn options_extensions_and_the_inter_digit_rule() {
        let m = main_menu();
        let two = Choice::Option("2".into(), J::Queue("support".into()));
        assert_eq!(
            evaluate(&m, "2"),
            Verdict::Wait(Duration::from_secs(2), Some(two)),
            "2 is an option and starts 201: wait the default 2 s"
        );
        assert_eq!(
            evaluate(&m, "9"),
            Verdict::Take(Choice::Option(
                "9".into(),
                J::Number("+380501112233".into())
            )),
            "nothing else starts with 9"
        );
        assert_eq!(
            evaluate(&m, "10"),
            Verdict::Wait(Duration::from_secs(5), None),
            "an extension half typed waits the digit timeout"
        );
        assert_eq!(
            evaluate(&m, "103"),
            Verdict::Take(Choice::Extension("103".into(), "olena".into()))
        );
        assert_eq!(evaluate(&m, "104"), Verdict::Invalid);
        assert_eq!(evaluate(&m, "5"), Verdict::Invalid);
        let mut off = main_menu();
        off.extension_dialing = false;
        assert_eq!(
            evaluate(&off, "1"),
            Verdict::Take(Choice::Option("1".into(), J::Scheme("sales".into())))
        );
        assert_eq!(evaluate(&off, "103"), Verdict::Invalid);
        assert_eq!(describe(&J::Agent("olena".into())), "agent olena");
    }
}
