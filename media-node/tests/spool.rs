//! The durable event spool and its sender: no call event is lost when the node crashes in
//! the middle of a write, restarts, or the reporter is down; everything is delivered once
//! in effect.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dialtone_media_node::spool::{DeliverConfig, Spool, SpoolConfig, deliver_with};
use dialtone_proto::v1::ingest_server::{Ingest, IngestServer};
use dialtone_proto::v1::{
    CallEvent, CallStarted, IngestAck, IngestBatch, IngestEvent, call_event, ingest_event,
};
use tokio::net::TcpSocket;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

fn event(n: u64) -> CallEvent {
    CallEvent {
        event_id: format!("00000000-0000-4000-8000-{n:012}"),
        call_id: format!("call-{}", n / 3),
        node_id: "node-a".to_owned(),
        sequence: n % 3 + 1,
        at: Some(prost_types::Timestamp {
            seconds: 1_790_000_000 + n as i64,
            nanos: 0,
        }),
        trace_id: String::new(),
        kind: Some(call_event::Kind::CallStarted(CallStarted {
            caller: "+380501112233".to_owned(),
            number: "+380441234567".to_owned(),
            sip_call_id: format!("sip-{n}@carrier"),
            ..CallStarted::default()
        })),
    }
}

fn ids(events: &[CallEvent]) -> Vec<String> {
    events.iter().map(|e| e.event_id.clone()).collect()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("spool dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("segment-"))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn appended_events_survive_reopen_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events: Vec<CallEvent> = (1..=10).map(event).collect();
    {
        let mut spool = Spool::open(dir.path()).expect("open");
        assert!(spool.is_empty());
        for e in &events {
            spool.append(e).expect("append");
        }
        assert_eq!(spool.len(), 10);
        assert_eq!(spool.unacked(), events);
    }
    let spool = Spool::open(dir.path()).expect("reopen");
    assert_eq!(spool.len(), 10);
    assert_eq!(
        spool.unacked(),
        events,
        "same events, same order, same content"
    );
    assert_eq!(spool.recovery().unacked, 10);
    assert_eq!(spool.recovery().truncated_files, 0);
    // Walking the backlog in batches gives the same order.
    let first = spool.unacked_after(None, 4);
    assert_eq!(first.len(), 4);
    let rest = spool.unacked_after(first.last().map(|(s, _)| *s), 100);
    let walked: Vec<CallEvent> = first.into_iter().chain(rest).map(|(_, e)| e).collect();
    assert_eq!(walked, events);
}

#[test]
fn a_batch_spans_segments_and_survives_reopen_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Small segments: a batch of 40 events must roll over several times.
    let config = SpoolConfig { segment_bytes: 600 };
    let events: Vec<CallEvent> = (0..40).map(event).collect();
    {
        let mut spool = Spool::open_with(dir.path(), config.clone()).expect("open");
        spool.append_batch(&events[..25]).expect("first batch");
        spool.append_batch(&events[25..]).expect("second batch");
        assert_eq!(ids(&spool.unacked()), ids(&events));
        assert!(spool.pending_contains(&events[7].event_id));
    }
    assert!(segments(dir.path()).len() > 2, "the batch rolled segments");
    let reopened = Spool::open_with(dir.path(), config).expect("reopen");
    assert_eq!(
        ids(&reopened.unacked()),
        ids(&events),
        "in order after reopen"
    );
}

#[test]
fn a_torn_tail_is_cut_off_without_losing_earlier_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut spool = Spool::open(dir.path()).expect("open");
        for n in 1..=5 {
            spool.append(&event(n)).expect("append");
        }
    }
    // The node died in the middle of writing the fifth record.
    let segment = segments(dir.path()).pop().expect("a segment");
    let len = std::fs::metadata(&segment).expect("meta").len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .expect("open");
    file.set_len(len - 7).expect("truncate");
    drop(file);

    let mut spool = Spool::open(dir.path()).expect("reopen");
    assert_eq!(
        ids(&spool.unacked()),
        ids(&(1..=4).map(event).collect::<Vec<_>>())
    );
    assert_eq!(spool.recovery().truncated_files, 1);
    assert!(spool.recovery().truncated_bytes > 0);
    // Appending after recovery lands behind the intact records, not behind garbage.
    spool.append(&event(6)).expect("append after recovery");
    drop(spool);
    let spool = Spool::open(dir.path()).expect("reopen again");
    assert_eq!(
        ids(&spool.unacked()),
        ids(&[event(1), event(2), event(3), event(4), event(6)])
    );
    assert_eq!(
        spool.recovery().truncated_files,
        0,
        "nothing left to repair"
    );
}

#[test]
fn garbage_after_the_last_record_is_cut_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut spool = Spool::open(dir.path()).expect("open");
        spool.append(&event(1)).expect("append");
        spool.append(&event(2)).expect("append");
    }
    let segment = segments(dir.path()).pop().expect("a segment");
    let mut bytes = std::fs::read(&segment).expect("read");
    // A header that claims a plausible length followed by bytes whose CRC cannot match.
    bytes.extend_from_slice(&[40, 0, 0, 0, 1, 2, 3, 4]);
    bytes.extend_from_slice(&[0xAB; 40]);
    std::fs::write(&segment, &bytes).expect("write");
    let spool = Spool::open(dir.path()).expect("reopen");
    assert_eq!(ids(&spool.unacked()), ids(&[event(1), event(2)]));
    assert_eq!(spool.recovery().truncated_bytes, 48);
}

#[test]
fn acknowledged_events_are_not_resent_after_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut spool = Spool::open(dir.path()).expect("open");
        for n in 1..=6 {
            spool.append(&event(n)).expect("append");
        }
        // Acknowledgements come in any order and may repeat or name unknown ids.
        let acked = spool
            .ack(&[event(5).event_id, event(2).event_id, "unknown".to_owned()])
            .expect("ack");
        assert_eq!(acked, 2);
        assert_eq!(spool.ack(&[event(2).event_id]).expect("ack again"), 0);
        assert_eq!(spool.len(), 4);
    }
    let mut spool = Spool::open(dir.path()).expect("reopen");
    assert_eq!(
        ids(&spool.unacked()),
        ids(&[event(1), event(3), event(4), event(6)])
    );
    spool
        .ack(&ids(&[event(1), event(3), event(4), event(6)]))
        .expect("ack the rest");
    assert!(spool.is_empty());
    drop(spool);
    assert!(Spool::open(dir.path()).expect("reopen").is_empty());
}

#[test]
fn fully_acknowledged_segments_are_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = SpoolConfig { segment_bytes: 600 };
    let mut spool = Spool::open_with(dir.path(), config.clone()).expect("open");
    let events: Vec<CallEvent> = (1..=40).map(event).collect();
    for e in &events {
        spool.append(e).expect("append");
    }
    let before = segments(dir.path()).len();
    assert!(before > 3, "small segments roll over: {before}");
    // Acknowledging the first half frees the segments that held only those.
    spool.ack(&ids(&events[..20])).expect("ack");
    let middle = segments(dir.path()).len();
    assert!(middle < before, "{middle} < {before}");
    spool.ack(&ids(&events[20..])).expect("ack");
    assert!(
        segments(dir.path()).len() <= 1,
        "only the active segment may stay"
    );
    drop(spool);
    let mut spool = Spool::open_with(dir.path(), config).expect("reopen");
    assert!(spool.is_empty());
    spool.append(&event(41)).expect("append");
    assert_eq!(ids(&spool.unacked()), vec![event(41).event_id]);
}

// ---- the sender against a fake reporter ----

/// A reporter that stores each event id once (idempotent ingestion) and acknowledges it.
#[derive(Clone)]
struct FakeIngest {
    /// Times each id arrived (the dedup key is the map's key).
    received: Arc<Mutex<HashMap<String, u32>>>,
    stop: watch::Receiver<bool>,
}

impl FakeIngest {
    fn store(&self, event: &CallEvent) {
        let mut received = self.received.lock().expect("lock");
        *received.entry(event.event_id.clone()).or_default() += 1;
    }
}

#[tonic::async_trait]
impl Ingest for FakeIngest {
    type PublishStream = ReceiverStream<Result<IngestAck, Status>>;

    async fn publish(
        &self,
        request: Request<Streaming<IngestEvent>>,
    ) -> Result<Response<Self::PublishStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let fake = self.clone();
        let mut stop = self.stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = async { let _ = stop.wait_for(|s| *s).await; } => {
                        let _ = tx.send(Err(Status::unavailable("reporter stopping"))).await;
                        return;
                    }
                    message = inbound.message() => match message {
                        Ok(Some(IngestEvent { event: Some(ingest_event::Event::Call(e)) })) => {
                            fake.store(&e);
                            let ack = IngestAck { event_ids: vec![e.event_id], rejected: vec![] };
                            if tx.send(Ok(ack)).await.is_err() {
                                return;
                            }
                        }
                        Ok(Some(_)) => {}
                        _ => return,
                    },
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn publish_batch(
        &self,
        request: Request<IngestBatch>,
    ) -> Result<Response<IngestAck>, Status> {
        let mut ack = IngestAck::default();
        for e in request.into_inner().events {
            if let Some(ingest_event::Event::Call(e)) = e.event {
                self.store(&e);
                ack.event_ids.push(e.event_id);
            }
        }
        Ok(Response::new(ack))
    }
}

struct Server {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Server {
    async fn start(addr: SocketAddr, received: Arc<Mutex<HashMap<String, u32>>>) -> Server {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("reuseaddr");
        socket.bind(addr).expect("bind");
        let listener = socket.listen(64).expect("listen");
        let addr = listener.local_addr().expect("addr");
        let (stop, stop_rx) = watch::channel(false);
        let fake = FakeIngest {
            received,
            stop: stop_rx.clone(),
        };
        let mut signal = stop_rx;
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(IngestServer::new(fake))
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
                    let _ = signal.wait_for(|s| *s).await;
                })
                .await;
        });
        Server { addr, stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let abort = self.task.abort_handle();
        if tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn fast() -> DeliverConfig {
    DeliverConfig {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        connect_timeout: Duration::from_secs(1),
        ack_timeout: Duration::from_secs(3),
        batch: 8,
        ..DeliverConfig::default()
    }
}

fn append_all(spool: &Mutex<Spool>, notify: &Notify, range: std::ops::RangeInclusive<u64>) {
    for n in range {
        spool
            .lock()
            .expect("lock")
            .append(&event(n))
            .expect("append");
        notify.notify_one();
    }
}

fn delivered(received: &Mutex<HashMap<String, u32>>) -> usize {
    received.lock().expect("lock").len()
}

fn unacked(spool: &Mutex<Spool>) -> usize {
    spool.lock().expect("lock").len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sender_delivers_everything_once_across_a_reporter_outage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Arc::new(Mutex::new(Spool::open(dir.path()).expect("open")));
    let notify = Arc::new(Notify::new());
    let (shutdown_tx, shutdown) = watch::channel(false);
    let received = Arc::new(Mutex::new(HashMap::new()));

    let server = Server::start("127.0.0.1:0".parse().expect("addr"), received.clone()).await;
    let addr = server.addr;
    let sender = tokio::spawn(deliver_with(
        fast(),
        spool.clone(),
        format!("http://{addr}"),
        notify.clone(),
        shutdown,
    ));

    append_all(&spool, &notify, 1..=20);
    eventually("first 20 delivered", || {
        delivered(&received) == 20 && unacked(&spool) == 0
    })
    .await;

    // The reporter goes away; call handling goes on and events pile up in the spool.
    server.stop().await;
    append_all(&spool, &notify, 21..=50);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        unacked(&spool),
        30,
        "nothing is acknowledged while the reporter is down"
    );
    assert_eq!(delivered(&received), 20);

    // A new reporter on the same address: the backlog drains.
    let server = Server::start(addr, received.clone()).await;
    eventually("all 50 delivered", || {
        delivered(&received) == 50 && unacked(&spool) == 0
    })
    .await;
    {
        let received = received.lock().expect("lock");
        let missing: Vec<u64> = (1..=50)
            .filter(|n| !received.contains_key(&event(*n).event_id))
            .collect();
        assert!(missing.is_empty(), "missing events: {missing:?}");
        assert_eq!(received.len(), 50, "nothing else arrived");
    }

    let _ = shutdown_tx.send(true);
    tokio::time::timeout(Duration::from_secs(5), sender)
        .await
        .expect("the sender stops on shutdown")
        .expect("no panic");
    server.stop().await;
    assert!(Spool::open(dir.path()).expect("reopen").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_spooled_while_the_reporter_is_down_survive_a_node_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Reserve a port nobody listens on yet.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let received = Arc::new(Mutex::new(HashMap::new()));

    // First life of the node: the reporter is unreachable the whole time.
    {
        let spool = Arc::new(Mutex::new(Spool::open(dir.path()).expect("open")));
        let notify = Arc::new(Notify::new());
        let (shutdown_tx, shutdown) = watch::channel(false);
        let sender = tokio::spawn(deliver_with(
            fast(),
            spool.clone(),
            format!("http://{addr}"),
            notify.clone(),
            shutdown,
        ));
        append_all(&spool, &notify, 1..=12);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(unacked(&spool), 12);
        let _ = shutdown_tx.send(true);
        tokio::time::timeout(Duration::from_secs(5), sender)
            .await
            .expect("stops")
            .expect("no panic");
    }

    // Second life: the reporter is back.
    let server = Server::start(addr, received.clone()).await;
    let spool = Arc::new(Mutex::new(Spool::open(dir.path()).expect("reopen")));
    assert_eq!(unacked(&spool), 12);
    let notify = Arc::new(Notify::new());
    let (shutdown_tx, shutdown) = watch::channel(false);
    let sender = tokio::spawn(deliver_with(
        fast(),
        spool.clone(),
        format!("http://{addr}"),
        notify.clone(),
        shutdown,
    ));
    eventually("the backlog of the previous life is delivered", || {
        delivered(&received) == 12 && unacked(&spool) == 0
    })
    .await;
    let _ = shutdown_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), sender).await;
    server.stop().await;
}
