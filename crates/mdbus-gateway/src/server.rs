//! HTTP and WebSocket: the routes, the token check, and one task per
//! connection that reads requests and writes batches.
//!
//! Length (~600 lines): the routes, the token check and the connection task
//! share the per-connection state; the batch writer is the only large part,
//! and splitting it off would split one state machine.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use mdbus_types::{InstrumentId, RecordRef, clock, json};
use rustc_hash::FxHashMap;

use crate::client::{Channel, Client, Drained, Entry, Folded, Pending};
use crate::config::{HARD_FRAME_LIMIT, MAX_CLIENT_FRAME};
use crate::protocol::{self, ErrorCode, ProtocolError, Request as ClientRequest};
use crate::shared::Shared;

/// The live depth page (static HTML and JavaScript, nothing fetched from
/// elsewhere).
pub(crate) const DEPTH_PAGE: &str = include_str!("depth.html");

/// How long a connection tries to send its Close frame at shutdown.
pub(crate) const CLOSE_DEADLINE: std::time::Duration = std::time::Duration::from_millis(500);

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(|| async { Html(DEPTH_PAGE) }))
        .route("/stats", get(stats))
        .route("/metrics", get(metrics))
        .route("/instruments", get(instruments))
        .route("/ws", get(upgrade))
        .layer(middleware::from_fn_with_state(Arc::clone(&shared), require_token))
        .with_state(shared)
}

/// Constant-time comparison (the token's length is not secret).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn presented_token<'a>(query: Option<&'a str>, headers: &'a HeaderMap) -> impl Iterator<Item = &'a [u8]> {
    let from_query = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|pair| pair.strip_prefix("token="))
        .map(str::as_bytes);
    let bearer = headers
        .get_all(header::AUTHORIZATION)
        .into_iter()
        .filter_map(|v| v.as_bytes().strip_prefix(b"Bearer "));
    let custom = headers.get_all("x-mdbus-token").into_iter().map(|v| v.as_bytes());
    from_query.chain(bearer).chain(custom)
}

async fn require_token(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    if let Some(token) = &shared.config.token
        && !presented_token(request.uri().query(), request.headers()).any(|t| same(t, token.as_bytes()))
    {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "401: this gateway needs its token: add ?token=... to the URL, or send Authorization: Bearer ...\n",
        )
            .into_response();
    }
    next.run(request).await
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], shared.stats().to_json()).into_response()
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let text = crate::metrics::gateway_text(&shared.config.feed, shared.stats());
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
}

async fn instruments(State(shared): State<Arc<Shared>>) -> Response {
    let symbols: Vec<String> = shared
        .l1
        .instruments()
        .iter()
        .map(|id| id.as_str().to_string())
        .collect();
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::Value::from(symbols).to_string(),
    )
        .into_response()
}

/// A browser's `Origin` must be the gateway's own page or one allowed.
fn origin_allowed(shared: &Shared, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let own = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|rest| rest == host);
    own || shared.config.allowed_origins.iter().any(|o| o == "*" || o == origin)
}

async fn upgrade(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if !origin_allowed(&shared, &headers) {
        return (
            StatusCode::FORBIDDEN,
            "403: this page's origin may not open the gateway's WebSocket (see --allow-origin)\n",
        )
            .into_response();
    }
    // A small read buffer: requests are small, and the WebSocket layer
    // zeroes the whole read buffer before every read attempt (with the
    // default 128 KiB that was a memset per batch written).
    ws.read_buffer_size(4096)
        .max_message_size(HARD_FRAME_LIMIT)
        .max_frame_size(HARD_FRAME_LIMIT)
        .on_upgrade(move |socket| connection(socket, shared, peer))
}

async fn connection(mut socket: WebSocket, shared: Arc<Shared>, peer: SocketAddr) {
    let id = shared.next_client_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let client = Arc::new(Client::new(id, peer, shared.config.queue_capacity));
    shared.add_client(Arc::clone(&client));
    let mut connection = Connection {
        shared: Arc::clone(&shared),
        client,
        floors: FxHashMap::default(),
        max_floor: 0,
        last_sent: 0,
        spare: VecDeque::new(),
    };
    let mut closing = shared.closing.subscribe();
    let shutting_down = tokio::select! {
        // An error here is the peer going away: nothing to report.
        _ = connection.run(&mut socket) => false,
        _ = async { closing.wait_for(|closing| *closing).await.is_ok() } => true,
    };
    if shutting_down {
        // Tell the peer, briefly.
        let close = Message::Close(Some(CloseFrame {
            code: close_code::AWAY,
            reason: "the gateway is shutting down".into(),
        }));
        let _ = tokio::time::timeout(CLOSE_DEADLINE, socket.send(close)).await;
    }
    shared.remove_client(id);
}

/// The size and limit of a client message the WebSocket layer refused as
/// over [`HARD_FRAME_LIMIT`] (it read only the frame's header).
fn message_too_long(error: &axum::Error) -> Option<(usize, usize)> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(tungstenite::Error::Capacity(tungstenite::error::CapacityError::MessageTooLong {
            size,
            max_size,
        })) = cause.downcast_ref::<tungstenite::Error>()
        {
            return Some((*size, *max_size));
        }
        source = cause.source();
    }
    None
}

/// RFC 6455 7.4.1: 1009, a message too big to process, with the sizes as
/// the reason. The message's unread bytes are still in the socket, and
/// closing a socket with unread data resets the connection (the peer may
/// never read the close frame): the connection stays open, unread, for
/// [`CLOSE_DEADLINE`] more so that the peer can read it first.
async fn close_too_big(socket: &mut WebSocket, size: usize, limit: usize) {
    let close = Message::Close(Some(CloseFrame {
        code: close_code::SIZE,
        reason: format!("message too big: {size} bytes, the limit is {limit}").into(),
    }));
    if let Ok(Ok(())) = tokio::time::timeout(CLOSE_DEADLINE, socket.send(close)).await {
        tokio::time::sleep(CLOSE_DEADLINE).await;
    }
}

/// One connection's task state.
struct Connection {
    shared: Arc<Shared>,
    client: Arc<Client>,
    /// Per instrument, the seq of the tick and of the book a snapshot
    /// message carried: queued records at or below it are already in it.
    floors: FxHashMap<InstrumentId, [u64; 2]>,
    /// The highest seq in `floors`: a record above it is in no snapshot.
    max_floor: u64,
    /// Seq of the last record written: a folded state no newer than it
    /// was already delivered (the record that made it was sent).
    last_sent: u64,
    spare: VecDeque<Entry>,
}

type SendResult = Result<(), axum::Error>;

impl Connection {
    /// Writes one text frame; a write that waits past the send timeout
    /// (a dead peer, or one not reading) ends the connection.
    async fn send(&self, socket: &mut WebSocket, text: String) -> SendResult {
        let timeout = self.shared.config.send_timeout;
        match tokio::time::timeout(timeout, socket.send(Message::Text(text.into()))).await {
            Ok(sent) => sent,
            Err(_) => {
                use std::sync::atomic::Ordering::Relaxed;
                self.shared.send_timeouts.fetch_add(1, Relaxed);
                Err(axum::Error::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("a write to {} waited over {timeout:?}", self.client.peer),
                )))
            }
        }
    }

    async fn run(&mut self, socket: &mut WebSocket) -> SendResult {
        loop {
            tokio::select! {
                biased;
                message = socket.recv() => match message {
                    Some(Err(error)) => {
                        if let Some((size, limit)) = message_too_long(&error) {
                            close_too_big(socket, size, limit).await;
                        }
                        return Ok(());
                    }
                    None | Some(Ok(Message::Close(_))) => return Ok(()),
                    Some(Ok(Message::Text(text))) => self.on_text(socket, text.as_str()).await?,
                    Some(Ok(Message::Binary(bytes))) => {
                        let error = if bytes.len() > MAX_CLIENT_FRAME {
                            too_large(bytes.len())
                        } else {
                            ProtocolError::new(ErrorCode::BadJson, "binary frame: requests are JSON text frames")
                        };
                        self.send(socket, error.to_json()).await?;
                    }
                    // Pings are answered by the WebSocket layer.
                    Some(Ok(_)) => {}
                },
                () = self.client.doorbell.notified() => self.flush(socket).await?,
            }
        }
    }

    async fn on_text(&mut self, socket: &mut WebSocket, text: &str) -> SendResult {
        if text.len() > MAX_CLIENT_FRAME {
            return self.send(socket, too_large(text.len()).to_json()).await;
        }
        match protocol::parse_request(text) {
            Err(error) => self.send(socket, error.to_json()).await,
            Ok(ClientRequest::Ping { id }) => {
                let mut pong = serde_json::json!({"type": "pong", "ts": clock::now_ns()});
                if let Some(id) = id {
                    pong["id"] = id;
                }
                self.send(socket, pong.to_string()).await
            }
            Ok(ClientRequest::Subscribe { channels, instruments }) => {
                self.subscribe(socket, channels, instruments).await
            }
            Ok(ClientRequest::Unsubscribe { channels, instruments }) => {
                self.unsubscribe(socket, channels, instruments).await
            }
        }
    }

    /// The channel mask of a request (`None`: every channel), and an
    /// error naming the unknown ones.
    fn channels(channels: Option<Vec<String>>) -> (u8, Option<ProtocolError>) {
        let Some(channels) = channels else {
            return (Channel::ALL.iter().fold(0, |m, c| m | c.bit()), None);
        };
        let mut mask = 0;
        let mut unknown = Vec::new();
        for name in channels {
            match Channel::parse(&name) {
                Some(channel) => mask |= channel.bit(),
                None => unknown.push(name),
            }
        }
        let error = (!unknown.is_empty()).then(|| {
            ProtocolError::new(
                ErrorCode::UnknownChannel,
                format!("unknown channel(s) {unknown:?}: the channels are \"tick\" and \"orderbook\""),
            )
        });
        (mask, error)
    }

    /// The instruments of a request: `"*"`, the known ones (deduplicated),
    /// and an error naming the others.
    fn instruments(
        &self,
        symbols: Vec<String>,
        must_be_known: bool,
    ) -> (bool, Vec<InstrumentId>, Option<ProtocolError>) {
        let mut all = false;
        let mut ids: Vec<InstrumentId> = Vec::new();
        let mut unknown = Vec::new();
        for symbol in symbols {
            if symbol == "*" {
                all = true;
                continue;
            }
            match InstrumentId::new(&symbol) {
                Ok(id) if !must_be_known || self.is_known(&id) => {
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                _ => unknown.push(symbol),
            }
        }
        let error = (!unknown.is_empty()).then(|| {
            ProtocolError::new(
                ErrorCode::UnknownInstrument,
                format!(
                    "unknown instrument(s) {unknown:?}: the feed has {} instruments (GET /instruments lists them; \"*\" is every one)",
                    self.shared.l1.len()
                ),
            )
        });
        (all, ids, error)
    }

    fn is_known(&self, id: &InstrumentId) -> bool {
        let l1 = &self.shared.l1;
        l1.tick(id).is_some() || l1.with_book(id, |_| ()).is_some()
    }

    async fn subscribe(
        &mut self,
        socket: &mut WebSocket,
        channels: Option<Vec<String>>,
        instruments: Vec<String>,
    ) -> SendResult {
        let (mask, channel_error) = Self::channels(channels);
        let (all, ids, instrument_error) = self.instruments(instruments, true);
        for error in channel_error.iter().chain(&instrument_error) {
            self.send(socket, error.to_json()).await?;
        }
        if mask == 0 || (!all && ids.is_empty()) {
            return Ok(());
        }
        let limit = self.shared.config.max_subscriptions;
        let (accepted_all, accepted, refused) = self.client.update_subscriptions(|subs| {
            let mut accepted = Vec::new();
            let mut refused = Vec::new();
            let accepted_all = all && (subs.all != 0 || subs.count() < limit);
            if accepted_all {
                subs.add_all(mask);
            } else if all {
                refused.push("*".to_string());
            }
            for id in ids {
                if subs.add(id, mask, limit) {
                    accepted.push(id);
                } else {
                    refused.push(id.as_str().to_string());
                }
            }
            (accepted_all, accepted, refused)
        });
        if !refused.is_empty() {
            let error = ProtocolError::new(
                ErrorCode::TooManySubscriptions,
                format!(
                    "at most {limit} subscriptions per connection (\"*\" counts as one); refused {} instrument(s): {refused:?}",
                    refused.len()
                ),
            );
            self.send(socket, error.to_json()).await?;
        }
        // Snapshots after the subscription is in place: a record that
        // lands in between is either in the snapshot (and skipped from the
        // queue by its seq) or after it (and delivered).
        let targets = if accepted_all {
            self.shared.l1.instruments()
        } else {
            accepted.clone()
        };
        for id in &targets {
            let book = (mask & Channel::Book.bit() != 0)
                .then(|| self.shared.l1.book(id))
                .flatten();
            let tick = (mask & Channel::Tick.bit() != 0)
                .then(|| self.shared.l1.tick(id))
                .flatten();
            let floor = self.floors.entry(*id).or_insert([0, 0]);
            if let Some(tick) = &tick {
                floor[0] = floor[0].max(tick.header.seq);
            }
            if let Some(book) = &book {
                floor[1] = floor[1].max(book.header.seq);
            }
            self.max_floor = self.max_floor.max(floor[0]).max(floor[1]);
            self.send(
                socket,
                protocol::snapshot_message(id.as_str(), book.as_ref(), tick.as_ref()),
            )
            .await?;
        }
        self.send(socket, ack("subscribed", mask, accepted_all, &accepted))
            .await
    }

    async fn unsubscribe(
        &mut self,
        socket: &mut WebSocket,
        channels: Option<Vec<String>>,
        instruments: Vec<String>,
    ) -> SendResult {
        let (mask, channel_error) = Self::channels(channels);
        let (all, ids, instrument_error) = self.instruments(instruments, false);
        for error in channel_error.iter().chain(&instrument_error) {
            self.send(socket, error.to_json()).await?;
        }
        // An instrument taken out of `"*"` is remembered as an exclusion;
        // those are bounded like subscriptions.
        let limit = self.shared.config.max_subscriptions;
        let refused: Vec<String> = self.client.update_subscriptions(|subs| {
            if all {
                subs.remove_all(mask);
                return Vec::new();
            }
            ids.iter()
                .filter(|id| !subs.remove(id, mask, limit))
                .map(|id| id.as_str().to_string())
                .collect()
        });
        let ids: Vec<InstrumentId> = ids
            .into_iter()
            .filter(|id| !refused.iter().any(|r| r == id.as_str()))
            .collect();
        if !refused.is_empty() {
            let error = ProtocolError::new(
                ErrorCode::TooManySubscriptions,
                format!(
                    "at most {limit} instruments may be taken out of \"*\" per connection; still subscribed: {refused:?}"
                ),
            );
            self.send(socket, error.to_json()).await?;
        }
        self.send(socket, ack("unsubscribed", mask, all, &ids)).await
    }

    /// Whether a queued record is already in a snapshot message sent.
    #[inline]
    fn covered(&self, instrument: &InstrumentId, channel: Channel, seq: u64) -> bool {
        if self.floors.is_empty() {
            return false;
        }
        let index = usize::from(channel == Channel::Book);
        self.floors.get(instrument).is_some_and(|f| seq <= f[index])
    }

    /// Writes everything pending as one batch.
    async fn flush(&mut self, socket: &mut WebSocket) -> SendResult {
        let Some((batch, events)) = self.batch() else {
            return Ok(());
        };
        self.send(socket, batch).await?;
        use std::sync::atomic::Ordering::Relaxed;
        self.client.events_sent.fetch_add(events, Relaxed);
        self.client.batches_sent.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Everything pending as one batch message and its event count
    /// (`None`: nothing to send).
    fn batch(&mut self) -> Option<(String, u64)> {
        let drained = self.client.take(std::mem::take(&mut self.spare))?;
        let ts_send = clock::now_ns();
        let conflated = matches!(drained, Drained::Conflated(_));
        // Sized once: a batch under load is tens of KiB.
        let size = match &drained {
            Drained::Events(queue) => queue
                .iter()
                .map(|e| match e {
                    Entry::Record(p) => p.json.len() + 1,
                    Entry::Chunk(c) => c.body.len() + 1,
                    Entry::Gap(..) => 64,
                })
                .sum::<usize>(),
            Drained::Conflated(folded) => folded.ticks.len() * 256 + folded.books.len() * 512 + folded.gaps.len() * 64,
        };
        let mut out = String::with_capacity(128 + size);
        protocol::batch_head(&mut out, ts_send, conflated);
        let mut events = 0u64;
        // The oldest ts_publish of the batch: its latency is the batch's
        // worst, recorded once per batch (per event it was a tenth of the
        // writer's time at 1 M events/s).
        let mut oldest = i64::MAX;
        let mut record = |ts_publish: i64| oldest = oldest.min(ts_publish);
        match drained {
            // Records and gaps in the order they came.
            Drained::Events(mut queue) => {
                // One record as queued, unless a snapshot sent already has it.
                let write_record =
                    |this: &mut Connection, out: &mut String, events: &mut u64, oldest: &mut i64, pending: &Pending| {
                        if this.covered(&pending.instrument, pending.channel, pending.seq) {
                            return;
                        }
                        if *events > 0 {
                            out.push(',');
                        }
                        out.push_str(&pending.json);
                        *oldest = (*oldest).min(pending.ts_publish);
                        this.last_sent = pending.seq;
                        *events += 1;
                    };
                for entry in queue.drain(..) {
                    match entry {
                        Entry::Gap(gap) => {
                            if events > 0 {
                                out.push(',');
                            }
                            protocol::write_gap(&mut out, gap);
                            events += 1;
                        }
                        Entry::Record(pending) => write_record(self, &mut out, &mut events, &mut oldest, &pending),
                        // Above every snapshot sent: written whole, as made.
                        Entry::Chunk(chunk) if chunk.first_seq() > self.max_floor => {
                            if events > 0 {
                                out.push(',');
                            }
                            out.push_str(&chunk.body);
                            oldest = oldest.min(chunk.oldest_ts_publish());
                            self.last_sent = chunk.last_seq();
                            events += chunk.records.len() as u64;
                        }
                        Entry::Chunk(chunk) => {
                            for pending in &chunk.records {
                                write_record(self, &mut out, &mut events, &mut oldest, pending);
                            }
                        }
                    }
                }
                self.spare = queue;
            }
            // States and gaps in seq order; a state no newer than what was
            // sent, or than a snapshot, is already delivered.
            Drained::Conflated(folded) => {
                for state in folded.into_ordered() {
                    match state {
                        Folded::Gap(gap) => {
                            if events > 0 {
                                out.push(',');
                            }
                            protocol::write_gap(&mut out, gap);
                        }
                        Folded::Tick(p) => {
                            if p.seq <= self.last_sent || self.covered(&p.instrument, Channel::Tick, p.seq) {
                                continue;
                            }
                            if events > 0 {
                                out.push(',');
                            }
                            out.push_str(&p.json);
                            record(p.ts_publish);
                            self.last_sent = p.seq;
                        }
                        Folded::Book(id, book) => {
                            let seq = book.header.seq;
                            if seq <= self.last_sent || self.covered(&id, Channel::Book, seq) {
                                continue;
                            }
                            if events > 0 {
                                out.push(',');
                            }
                            json::write_record(&mut out, RecordRef::BookSnapshot(&book));
                            record(book.header.ts_publish);
                            self.last_sent = seq;
                        }
                    }
                    events += 1;
                }
            }
        }
        if events == 0 {
            return None;
        }
        if oldest != i64::MAX {
            let _ = self
                .client
                .latency
                .lock()
                .record(ts_send.saturating_sub(oldest).max(0) as u64);
        }
        out.push_str("]}");
        Some((out, events))
    }
}

fn too_large(len: usize) -> ProtocolError {
    ProtocolError::new(
        ErrorCode::FrameTooLarge,
        format!("frame of {len} bytes: requests are at most {MAX_CLIENT_FRAME} bytes"),
    )
}

/// The acknowledgement of a subscribe or unsubscribe: its channels, and
/// its instruments (`"*"` first when it named every instrument).
fn ack(kind: &str, mask: u8, all: bool, ids: &[InstrumentId]) -> String {
    let mut symbols: Vec<&str> = Vec::with_capacity(ids.len() + 1);
    if all {
        symbols.push("*");
    }
    symbols.extend(ids.iter().map(InstrumentId::as_str));
    serde_json::json!({
        "type": kind,
        "channels": Channel::names(mask),
        "instruments": symbols,
    })
    .to_string()
}
