//! The network side every bundled system shares: one listening socket for
//! clients and peers, client connections turned into [`ClientCall`]s, and
//! one outgoing connection per peer fed by a bounded queue.
//!
//! A system sees only two inboxes (client calls, peer messages) and a
//! [`PeerSender`]; it never touches a socket. Peer messages are best-effort:
//! a full queue or a broken connection drops them, as a network would, and
//! the protocols above retry. Nothing here knows what a message means.

use super::wire::{FirstLine, FrameError, PeerHello, Reply, Request, encode_frame, read_frame};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// Requests one client connection may have in flight; more wait to be read.
const MAX_INFLIGHT_PER_CONNECTION: usize = 1024;
/// Client calls queued for the system.
const CLIENT_QUEUE: usize = 8192;
/// Peer messages queued for the system (all peers together).
const PEER_INBOX: usize = 8192;
/// Messages queued for one peer; more are dropped.
const PEER_OUTBOX: usize = 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
/// A write to a peer that takes longer drops the connection (and the stale
/// messages queued behind it).
const PEER_WRITE_TIMEOUT: Duration = Duration::from_millis(2000);
const RECONNECT_DELAY: Duration = Duration::from_millis(100);
/// Data a peer has not acknowledged for this long closes the connection
/// (TCP_USER_TIMEOUT), and the dialer connects again. Without it, a link cut
/// by a partition stays open after the partition heals, its queued messages
/// waiting for TCP's backed-off retransmission: seconds after an 8 s cut,
/// longer than a short healed window, so elections that need that link
/// never complete.
const PEER_UNACKED_TIMEOUT: Duration = Duration::from_millis(1000);
/// How many bytes of queued messages one write to a peer gathers.
const PEER_WRITE_BATCH_BYTES: usize = 1 << 20;

/// One request from a client, with the way back.
pub struct ClientCall {
    pub request: Request,
    reply_to: ReplyTo,
}

struct ReplyTo {
    tx: mpsc::Sender<(Reply, OwnedSemaphorePermit)>,
    permit: OwnedSemaphorePermit,
}

impl ClientCall {
    /// Sends the reply. A client that went away is not an error.
    pub fn reply(self, reply: Reply) {
        debug_assert_eq!(reply.id, self.request.id, "a reply answers its own request");
        // Never full: the channel holds as many replies as there are permits.
        let _ = self.reply_to.tx.try_send((reply, self.reply_to.permit));
    }
}

/// What the system receives.
pub struct Inbox<M> {
    pub clients: mpsc::Receiver<ClientCall>,
    /// (sender's node id, message)
    pub peers: mpsc::Receiver<(String, M)>,
}

/// Sends messages to peers, best-effort.
pub struct PeerSender<M> {
    outboxes: HashMap<String, mpsc::Sender<Vec<u8>>>,
    _msg: PhantomData<fn(M)>,
}

impl<M: Serialize> PeerSender<M> {
    /// Queues `msg` for `to`; false when it was dropped (queue full, unknown peer).
    pub fn send(&self, to: &str, msg: &M) -> bool {
        match self.outboxes.get(to) {
            Some(tx) => tx.try_send(encode_frame(msg)).is_ok(),
            None => false,
        }
    }
}

/// Binds `listen` and starts accepting; dials every peer in the background.
pub async fn start<M>(
    id: &str,
    listen: &str,
    peers: &[(String, String)],
) -> std::io::Result<(Inbox<M>, PeerSender<M>)>
where
    M: DeserializeOwned + Send + 'static,
{
    let listener = TcpListener::bind(listen).await?;
    let (client_tx, clients) = mpsc::channel(CLIENT_QUEUE);
    let (peer_tx, peer_rx) = mpsc::channel(PEER_INBOX);
    let known: Arc<Vec<String>> = Arc::new(peers.iter().map(|p| p.0.clone()).collect());
    tokio::spawn(accept_loop(listener, client_tx, peer_tx, known));
    let mut outboxes = HashMap::new();
    for (peer, addr) in peers {
        let (tx, rx) = mpsc::channel(PEER_OUTBOX);
        outboxes.insert(peer.clone(), tx);
        tokio::spawn(dial_loop(id.to_string(), peer.clone(), addr.clone(), rx));
    }
    Ok((
        Inbox {
            clients,
            peers: peer_rx,
        },
        PeerSender {
            outboxes,
            _msg: PhantomData,
        },
    ))
}

async fn accept_loop<M: DeserializeOwned + Send + 'static>(
    listener: TcpListener,
    client_tx: mpsc::Sender<ClientCall>,
    peer_tx: mpsc::Sender<(String, M)>,
    known: Arc<Vec<String>>,
) {
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(RECONNECT_DELAY).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (client_tx, peer_tx, known) = (client_tx.clone(), peer_tx.clone(), known.clone());
        tokio::spawn(async move {
            if let Err(e) = serve_connection(stream, client_tx, peer_tx, &known).await {
                tracing::debug!(%from, "connection closed: {e}");
            }
        });
    }
}

async fn serve_connection<M: DeserializeOwned>(
    stream: TcpStream,
    client_tx: mpsc::Sender<ClientCall>,
    peer_tx: mpsc::Sender<(String, M)>,
    known: &[String],
) -> Result<(), FrameError> {
    let (read, write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    if !read_frame(&mut reader, &mut line).await? {
        return Ok(());
    }
    match FirstLine::classify(&line) {
        FirstLine::Peer(peer) if known.contains(&peer) => loop {
            if !read_frame(&mut reader, &mut line).await? {
                return Ok(());
            }
            match serde_json::from_slice::<M>(&line) {
                Ok(msg) => {
                    if peer_tx.send((peer.clone(), msg)).await.is_err() {
                        return Ok(());
                    }
                }
                Err(e) => {
                    tracing::warn!(%peer, "malformed peer message, dropping the connection: {e}");
                    return Ok(());
                }
            }
        },
        FirstLine::Peer(peer) => {
            tracing::warn!(%peer, "connection from a node that is not a peer");
            Ok(())
        }
        FirstLine::Client => serve_client(reader, write, line, client_tx).await,
    }
}

async fn serve_client(
    mut reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    mut write: tokio::net::tcp::OwnedWriteHalf,
    mut line: Vec<u8>,
    client_tx: mpsc::Sender<ClientCall>,
) -> Result<(), FrameError> {
    let permits = Arc::new(Semaphore::new(MAX_INFLIGHT_PER_CONNECTION));
    let (reply_tx, mut reply_rx) =
        mpsc::channel::<(Reply, OwnedSemaphorePermit)>(MAX_INFLIGHT_PER_CONNECTION);
    let writer = tokio::spawn(async move {
        let mut buf = Vec::new();
        while let Some((reply, permit)) = reply_rx.recv().await {
            buf.extend_from_slice(&encode_frame(&reply));
            drop(permit);
            while let Ok((reply, permit)) = reply_rx.try_recv() {
                buf.extend_from_slice(&encode_frame(&reply));
                drop(permit);
            }
            if write.write_all(&buf).await.is_err() {
                return;
            }
            buf.clear();
        }
    });
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        match serde_json::from_slice::<Request>(&line) {
            Ok(request) => {
                let call = ClientCall {
                    request,
                    reply_to: ReplyTo {
                        tx: reply_tx.clone(),
                        permit,
                    },
                };
                if client_tx.send(call).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                let id = serde_json::from_slice::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|v| v["id"].as_u64())
                    .unwrap_or(0);
                let reply = Reply {
                    id,
                    outcome: bad_request(&e),
                };
                let _ = reply_tx.try_send((reply, permit));
            }
        }
        if !read_frame(&mut reader, &mut line).await? {
            break;
        }
    }
    drop(reply_tx);
    // Let replies still owed reach a client that half-closed its side.
    let _ = writer.await;
    Ok(())
}

fn bad_request(e: &serde_json::Error) -> super::wire::Outcome {
    tracing::debug!("bad request: {e}");
    super::wire::Outcome::Fail {
        error: super::wire::FailCode::BadRequest,
        leader: None,
    }
}

/// Keeps one connection to `peer` open and writes its queued messages.
async fn dial_loop(me: String, peer: String, addr: String, mut rx: mpsc::Receiver<Vec<u8>>) {
    let hello = encode_frame(&PeerHello { peer: me });
    let mut buf = Vec::with_capacity(64 << 10);
    loop {
        let mut stream =
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr)).await {
                Ok(Ok(s)) => s,
                _ => {
                    // Whatever waited for this peer is stale by now.
                    while rx.try_recv().is_ok() {}
                    tokio::time::sleep(RECONNECT_DELAY).await;
                    if rx.is_closed() {
                        return;
                    }
                    continue;
                }
            };
        let _ = stream.set_nodelay(true);
        if let Err(e) =
            socket2::SockRef::from(&stream).set_tcp_user_timeout(Some(PEER_UNACKED_TIMEOUT))
        {
            tracing::warn!(%peer, "cannot set TCP_USER_TIMEOUT: {e}");
        }
        tracing::debug!(%peer, %addr, "connected to peer");
        buf.clear();
        buf.extend_from_slice(&hello);
        loop {
            if buf.is_empty() {
                match rx.recv().await {
                    Some(msg) => buf.extend_from_slice(&msg),
                    None => return,
                }
            }
            while buf.len() < PEER_WRITE_BATCH_BYTES {
                match rx.try_recv() {
                    Ok(msg) => buf.extend_from_slice(&msg),
                    Err(_) => break,
                }
            }
            match tokio::time::timeout(PEER_WRITE_TIMEOUT, stream.write_all(&buf)).await {
                Ok(Ok(())) => buf.clear(),
                _ => {
                    tracing::debug!(%peer, "write to peer failed or stalled; reconnecting");
                    break;
                }
            }
        }
    }
}
