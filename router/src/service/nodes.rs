//! The media nodes connected to this router through `Router.NodeSession`: where each is, what
//! calls it carries, and the channel that sends it commands (originate a callback, hang up a
//! call). A command waits for the node's `CommandResult` with a deadline, so a node that hangs
//! costs the caller of `CallControl` a clear error, never a stuck request.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use dialtone_proto::v1 as pb;
use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status};

use super::BoxStream;
use super::core::RouterCore;

/// Why a command did not reach a node or got no answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    /// The node is not connected (any more).
    #[error("media node {0} is not connected to the router")]
    NotConnected(String),
    /// The node did not answer in time.
    #[error("media node {node} did not answer within {secs} s")]
    Timeout {
        /// The node.
        node: String,
        /// The deadline.
        secs: u64,
    },
    /// The node refused or failed the command.
    #[error("media node {node} could not carry it out: {why}")]
    Failed {
        /// The node.
        node: String,
        /// Its words.
        why: String,
    },
}

/// The sending half of one node's command stream.
pub(super) type CommandSender = mpsc::Sender<Result<pb::NodeCommand, Status>>;

struct Link {
    session: u64,
    sip_address: String,
    commands: CommandSender,
    status: pb::NodeStatus,
}

#[derive(Default)]
struct Inner {
    nodes: BTreeMap<String, Link>,
    pending: HashMap<String, oneshot::Sender<pb::CommandResult>>,
    next_session: u64,
    next_command: u64,
}

/// Every connected media node.
#[derive(Default)]
pub struct NodeRegistry {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for NodeRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeRegistry")
            .field("nodes", &self.node_ids())
            .finish()
    }
}

impl NodeRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A node said hello; returns the session number that later calls name (a node that
    /// reconnects replaces its old session, whose late goodbye must not remove the new one).
    pub(super) fn connect(&self, hello: &pb::NodeHello, commands: CommandSender) -> u64 {
        let mut inner = self.lock();
        inner.next_session += 1;
        let session = inner.next_session;
        inner.nodes.insert(
            hello.node_id.clone(),
            Link {
                session,
                sip_address: hello.sip_address.clone(),
                commands,
                status: pb::NodeStatus::default(),
            },
        );
        session
    }

    /// A node's status report.
    pub(super) fn status(&self, node: &str, session: u64, status: pb::NodeStatus) {
        if let Some(link) = self.lock().nodes.get_mut(node)
            && link.session == session
        {
            link.status = status;
        }
    }

    /// A node's session ended.
    pub(super) fn disconnect(&self, node: &str, session: u64) {
        let mut inner = self.lock();
        if inner.nodes.get(node).is_some_and(|l| l.session == session) {
            inner.nodes.remove(node);
        }
    }

    /// A node answered a command.
    pub(super) fn result(&self, result: pb::CommandResult) {
        if let Some(waiter) = self.lock().pending.remove(&result.command_id) {
            let _ = waiter.send(result);
        }
    }

    /// The connected nodes' ids.
    pub fn node_ids(&self) -> Vec<String> {
        self.lock().nodes.keys().cloned().collect()
    }

    /// A node's SIP address as it announced it.
    pub fn sip_address(&self, node: &str) -> Option<String> {
        self.lock().nodes.get(node).map(|l| l.sip_address.clone())
    }

    /// The node to run a new call on: the first of `preferred` that is connected and not
    /// draining (the node holding the agent's softphone registration reaches it directly),
    /// else the connected node with the fewest active calls.
    pub fn pick(&self, preferred: &[String]) -> Option<String> {
        let inner = self.lock();
        let usable = |l: &Link| !l.status.draining;
        if let Some(node) = preferred
            .iter()
            .find(|n| inner.nodes.get(n.as_str()).is_some_and(usable))
        {
            return Some(node.clone());
        }
        inner
            .nodes
            .iter()
            .filter(|(_, l)| usable(l))
            .min_by_key(|(_, l)| l.status.active_calls.len())
            .map(|(n, _)| n.clone())
    }

    /// Every call in progress on every node, oldest first.
    pub fn active_calls(&self) -> Vec<pb::ActiveCall> {
        let mut calls: Vec<pb::ActiveCall> = self
            .lock()
            .nodes
            .values()
            .flat_map(|l| l.status.active_calls.iter().cloned())
            .collect();
        calls.sort_by_key(|c| {
            c.started_at
                .as_ref()
                .map(|t| (t.seconds, t.nanos))
                .unwrap_or_default()
        });
        calls
    }

    /// The node carrying a call, per the last status reports.
    pub fn node_of_call(&self, call_id: &str) -> Option<String> {
        self.lock()
            .nodes
            .iter()
            .find(|(_, l)| l.status.active_calls.iter().any(|c| c.call_id == call_id))
            .map(|(n, _)| n.clone())
    }

    /// Sends a command to a node and waits for its result.
    ///
    /// # Errors
    ///
    /// [`CommandError`] when the node is gone, silent past `timeout`, or answers not ok.
    pub async fn command(
        &self,
        node: &str,
        command: pb::node_command::Command,
        timeout: Duration,
    ) -> Result<pb::CommandResult, CommandError> {
        let (id, sender, rx) = {
            let mut inner = self.lock();
            let Some(sender) = inner.nodes.get(node).map(|l| l.commands.clone()) else {
                return Err(CommandError::NotConnected(node.to_owned()));
            };
            inner.next_command += 1;
            let id = format!("cmd-{}", inner.next_command);
            let (tx, rx) = oneshot::channel();
            inner.pending.insert(id.clone(), tx);
            (id, sender, rx)
        };
        let message = pb::NodeCommand {
            command_id: id.clone(),
            command: Some(command),
        };
        let outcome = async {
            sender
                .send(Ok(message))
                .await
                .map_err(|_| CommandError::NotConnected(node.to_owned()))?;
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(result)) if result.ok => Ok(result),
                Ok(Ok(result)) => Err(CommandError::Failed {
                    node: node.to_owned(),
                    why: result.error,
                }),
                Ok(Err(_)) => Err(CommandError::NotConnected(node.to_owned())),
                Err(_) => Err(CommandError::Timeout {
                    node: node.to_owned(),
                    secs: timeout.as_secs(),
                }),
            }
        }
        .await;
        self.lock().pending.remove(&id);
        outcome
    }
}

/// `Router.NodeSession`: a media node's stream of hello, status and command results; the
/// returned stream carries the commands [`NodeRegistry`] sends it.
pub(super) fn node_session(
    core: &Arc<RouterCore>,
    req: Request<tonic::Streaming<pb::NodeMessage>>,
) -> Result<Response<BoxStream<pb::NodeCommand>>, Status> {
    let mut inbound = req.into_inner();
    let (tx, out) = mpsc::channel::<Result<pb::NodeCommand, Status>>(16);
    let core = core.clone();
    tokio::spawn(async move {
        let mut session = None;
        while let Ok(Some(msg)) = inbound.message().await {
            match msg.body {
                Some(pb::node_message::Body::Hello(h)) => {
                    tracing::info!(node = %h.node_id, address = %h.sip_address, "media node connected");
                    let id = core.nodes.connect(&h, tx.clone());
                    session = Some((h.node_id, id));
                }
                Some(pb::node_message::Body::Status(s)) => {
                    if let Some((node, id)) = &session {
                        core.nodes.status(node, *id, s);
                    }
                }
                Some(pb::node_message::Body::Result(r)) => core.nodes.result(r),
                None => {}
            }
        }
        if let Some((node, id)) = session {
            core.nodes.disconnect(&node, id);
            tracing::info!(node = %node, "media node disconnected");
        }
    });
    Ok(Response::new(Box::pin(
        tokio_stream::wrappers::ReceiverStream::new(out),
    )))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failure stops the test with the error
mod tests {
    use super::*;

    fn hello(node: &str) -> pb::NodeHello {
        pb::NodeHello {
            node_id: node.into(),
            sip_address: format!("{node}:5060"),
            version: String::new(),
        }
    }

    fn call(id: &str, secs: i64) -> pb::ActiveCall {
        pb::ActiveCall {
            call_id: id.into(),
            started_at: Some(prost_types::Timestamp {
                seconds: secs,
                nanos: 0,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn pick_prefers_the_agents_node_then_the_least_busy() {
        let reg = NodeRegistry::default();
        let (a, _ra) = mpsc::channel(1);
        let (b, _rb) = mpsc::channel(1);
        let sa = reg.connect(&hello("a"), a);
        let sb = reg.connect(&hello("b"), b);
        reg.status(
            "a",
            sa,
            pb::NodeStatus {
                active_calls: vec![call("x", 1)],
                draining: false,
            },
        );
        assert_eq!(reg.pick(&[]).as_deref(), Some("b"));
        assert_eq!(reg.pick(&["a".into()]).as_deref(), Some("a"));
        reg.status(
            "b",
            sb,
            pb::NodeStatus {
                active_calls: vec![call("y", 0)],
                draining: true,
            },
        );
        assert_eq!(reg.pick(&["b".into()]).as_deref(), Some("a"));
        assert_eq!(reg.node_of_call("y").as_deref(), Some("b"));
        let ids: Vec<String> = reg.active_calls().into_iter().map(|c| c.call_id).collect();
        assert_eq!(ids, ["y", "x"]);
    }

    #[test]
    fn a_stale_goodbye_keeps_the_new_session() {
        let reg = NodeRegistry::default();
        let (a, _ra) = mpsc::channel(1);
        let (a2, _ra2) = mpsc::channel(1);
        let old = reg.connect(&hello("a"), a);
        let _new = reg.connect(&hello("a"), a2);
        reg.disconnect("a", old);
        assert_eq!(reg.node_ids(), ["a"]);
    }

    #[tokio::test]
    async fn a_command_gets_its_result_or_a_clear_error() {
        let reg = std::sync::Arc::new(NodeRegistry::default());
        let (tx, mut rx) = mpsc::channel(4);
        reg.connect(&hello("a"), tx);
        let answering = reg.clone();
        tokio::spawn(async move {
            let cmd = rx.recv().await.unwrap().unwrap();
            answering.result(pb::CommandResult {
                command_id: cmd.command_id,
                ok: true,
                error: String::new(),
                call_id: "c1".into(),
            });
            // The second command is never answered.
            let _silent = rx.recv().await;
            std::future::pending::<()>().await;
        });
        let hang_up = || {
            pb::node_command::Command::HangUp(pb::HangUpCall {
                call_id: "c1".into(),
                reason: String::new(),
            })
        };
        let r = reg
            .command("a", hang_up(), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(r.call_id, "c1");
        let err = reg
            .command("a", hang_up(), Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(matches!(err, CommandError::Timeout { .. }), "{err}");
        let err = reg
            .command("zz", hang_up(), Duration::from_millis(50))
            .await
            .unwrap_err();
        assert_eq!(err, CommandError::NotConnected("zz".into()));
    }
}
