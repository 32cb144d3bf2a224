//! The node's session with the router (`Router.NodeSession`): the node says who it is and
//! where its SIP listens, reports its calls and whether it drains every few seconds, and
//! receives the router's orders (originate a callback, hang up a call), answering each with a
//! `CommandResult`. The session reconnects by itself; the actor never waits on it — orders
//! arrive as [`Input::Session`] and results leave through an unbounded queue.
//!
//! Each time the session opens the actor hears of it and tells the router every registration
//! it holds (`SyncContacts`): a router that restarted (and perhaps lost its file) learns them
//! back without waiting for the softphones' next REGISTER.

use dialtone_proto::internal::InternalChannel;
use std::time::Duration;

use dialtone_proto::v1 as pb;
use dialtone_proto::v1::router_client::RouterClient;
use tokio::sync::{mpsc, watch};

use super::actor::{Input, Node};

/// How often the node reports its status even when nothing changed.
const STATUS_EVERY: Duration = Duration::from_secs(5);
/// First pause after a failed connection attempt (or a failed contacts sync).
pub(super) const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Longest pause between two connection attempts (or contacts sync attempts).
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the session tells the actor.
#[derive(Debug)]
pub(super) enum SessionEvent {
    /// The session is open (again); `first` for the first time in this process.
    Opened { first: bool },
    /// An order from the router.
    Command(Box<pb::NodeCommand>),
}

/// The actor's end of the session.
pub(super) struct NodeLink {
    results: mpsc::UnboundedSender<pb::NodeMessage>,
    status: watch::Sender<pb::NodeStatus>,
}

impl NodeLink {
    /// Starts the session task.
    pub(super) fn start(
        client: RouterClient<InternalChannel>,
        hello: pb::NodeHello,
        inbox: mpsc::Sender<Input>,
    ) -> Self {
        let (results, results_rx) = mpsc::unbounded_channel();
        let (status, status_rx) = watch::channel(pb::NodeStatus::default());
        tokio::spawn(run(client, hello, inbox, results_rx, status_rx));
        NodeLink { results, status }
    }

    fn result(&self, result: pb::CommandResult) {
        let _ = self.results.send(pb::NodeMessage {
            body: Some(pb::node_message::Body::Result(result)),
        });
    }
}

async fn run(
    mut client: RouterClient<InternalChannel>,
    hello: pb::NodeHello,
    inbox: mpsc::Sender<Input>,
    mut results: mpsc::UnboundedReceiver<pb::NodeMessage>,
    mut status: watch::Receiver<pb::NodeStatus>,
) {
    let mut backoff = FIRST_BACKOFF;
    let mut first_session = true;
    loop {
        let (out, out_rx) = mpsc::channel::<pb::NodeMessage>(64);
        let first = [
            pb::node_message::Body::Hello(hello.clone()),
            pb::node_message::Body::Status(status.borrow().clone()),
        ];
        for body in first {
            let _ = out.try_send(pb::NodeMessage { body: Some(body) });
        }
        match client
            .node_session(tokio_stream::wrappers::ReceiverStream::new(out_rx))
            .await
        {
            Ok(response) => {
                tracing::info!(first_session, "node session with the router open");
                backoff = FIRST_BACKOFF;
                let opened = SessionEvent::Opened {
                    first: first_session,
                };
                first_session = false;
                if inbox.send(Input::Session(opened)).await.is_err() {
                    return;
                }
                let mut commands = response.into_inner();
                let mut tick = tokio::time::interval(STATUS_EVERY);
                loop {
                    tokio::select! {
                        command = commands.message() => match command {
                            Ok(Some(command)) => {
                                let event = SessionEvent::Command(Box::new(command));
                                if inbox.send(Input::Session(event)).await.is_err() {
                                    return;
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                tracing::debug!(error = %e, "node session ended");
                                break;
                            }
                        },
                        result = results.recv() => match result {
                            Some(message) => {
                                if out.send(message).await.is_err() {
                                    break;
                                }
                            }
                            // The actor stopped: so does the session.
                            None => return,
                        },
                        changed = status.changed() => {
                            if changed.is_err() {
                                return;
                            }
                            let body = pb::node_message::Body::Status(status.borrow_and_update().clone());
                            if out.send(pb::NodeMessage { body: Some(body) }).await.is_err() {
                                break;
                            }
                        }
                        _ = tick.tick() => {
                            let body = pb::node_message::Body::Status(status.borrow().clone());
                            if out.send(pb::NodeMessage { body: Some(body) }).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "node session with the router not open; retrying")
            }
        }
        // Wait before the next attempt, unless the actor stops meanwhile.
        let pause = tokio::time::sleep(backoff);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                () = &mut pause => break,
                result = results.recv() => {
                    if result.is_none() {
                        return;
                    }
                    // A result for a router we lost: its caller has timed out already.
                }
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

impl Node {
    /// What the session reports.
    pub(super) fn on_session(&mut self, event: SessionEvent) {
        match event {
            SessionEvent::Opened { first } => self.sync_contacts(first),
            SessionEvent::Command(command) => self.on_command(*command),
        }
    }

    /// An order from the router.
    pub(super) fn on_command(&mut self, command: pb::NodeCommand) {
        use pb::node_command::Command;
        let (outcome, call_id) = match command.command {
            Some(Command::OriginateCallback(order)) => match self.originate_callback(order) {
                Ok(key) => (Ok(()), key),
                Err(e) => (Err(e), String::new()),
            },
            Some(Command::HangUp(h)) => (
                self.hang_up_on_order(&h.call_id, &h.reason),
                h.call_id.clone(),
            ),
            None => (
                Err("unknown command: is the router newer than this node?".to_owned()),
                String::new(),
            ),
        };
        if let Err(e) = &outcome {
            tracing::warn!(command = %command.command_id, error = %e, "router command refused");
        }
        self.link.result(pb::CommandResult {
            command_id: command.command_id,
            ok: outcome.is_ok(),
            error: outcome.err().unwrap_or_default(),
            call_id,
        });
        self.publish_status();
    }

    /// Tells the session what the node carries now.
    pub(super) fn publish_status(&mut self) {
        let status = pb::NodeStatus {
            active_calls: self.active_calls(),
            draining: self.is_draining(),
        };
        self.link.status.send_replace(status);
    }
}
