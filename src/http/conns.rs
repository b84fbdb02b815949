//! Every open connection and the request bytes it holds, so that no client can take the server from the
//! others: not with slow or idle connections, not with bodies that never finish, not with large ones.
//!
//! - A connection is *reading* from its request's first byte (or from accept) until its body is in; it
//!   must get there within `server.request_timeout`. It is *working* while its notification is decoded,
//!   stored and answered, and *idle* between requests, for at most `server.idle_timeout`.
//! - Past `server.max_connections` (or `max_connections_per_client` for one IP address) a new connection
//!   is let in by closing the oldest one that is reading or idle, taken from the client with the most
//!   connections: whoever holds many connections open loses them first, and a request that just arrived is
//!   the last to go. Working connections are never closed.
//! - Request bytes held at once stay within `server.max_inflight_bytes`, half of it for bodies being read
//!   and half for notifications being decoded (at their estimated decoded size). Two pools, because a
//!   request holding its body while it waits to be decoded must not wait on other bodies, which wait on
//!   it in turn. A body that needs more first closes
//!   connections whose body has stalled (no byte for three seconds), oldest first; otherwise it waits for
//!   requests in progress to give bytes back, at most until its deadline, and is then answered 503 so
//!   Alertmanager retries.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::ServerConfig;

/// A body with no new byte for this long may be closed to free the bytes it holds (long enough that a
/// sender slowed by a busy machine is not taken for an attacker).
const STALLED: Duration = Duration::from_secs(3);

/// How long past its deadline a request's handler has to answer before the connection is closed.
const ANSWER_GRACE: Duration = Duration::from_secs(1);

const IDLE: u8 = 0;
const READING: u8 = 1;
const WORKING: u8 = 2;

/// Why a connection was closed by the server (metric label values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Its request was not in within `server.request_timeout`.
    RequestTimeout,
    /// Idle past `server.idle_timeout`.
    Idle,
    /// Closed to let a newer connection in, or to free request bytes.
    Evicted,
    /// Refused at accept: every connection was working.
    Refused,
}

impl crate::metrics::Reason for Closed {
    fn label(self) -> &'static str {
        self.as_str()
    }
}

impl Closed {
    pub const ALL: [Closed; 4] = [Closed::RequestTimeout, Closed::Idle, Closed::Evicted, Closed::Refused];

    pub fn as_str(self) -> &'static str {
        match self {
            Closed::RequestTimeout => "request_timeout",
            Closed::Idle => "idle_timeout",
            Closed::Evicted => "evicted",
            Closed::Refused => "refused",
        }
    }
}

/// One open connection.
pub struct Conn {
    id: u64,
    pub client: IpAddr,
    phase: AtomicU8,
    /// When the phase began, in milliseconds since the registry's start.
    since_ms: AtomicU64,
    /// When a byte last arrived, in milliseconds since the registry's start.
    progress_ms: AtomicU64,
    /// Request bytes it holds, per pool (changed under the registry's lock).
    bytes: [AtomicUsize; 2],
    closed: AtomicBool,
    /// Fires when the server closes it.
    pub close: Notify,
    epoch: Instant,
}

impl Conn {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// A request has begun (its first byte arrived, or hyper handed it over while idle).
    pub fn reading(&self) {
        if self.phase.compare_exchange(IDLE, READING, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            self.since_ms.store(self.now_ms(), Ordering::Release);
        }
    }

    /// The request is in; from here it is never closed for being slow.
    pub fn working(&self) {
        self.phase.store(WORKING, Ordering::Release);
    }

    /// Answered; waiting for the next request.
    pub fn idle(&self) {
        self.since_ms.store(self.now_ms(), Ordering::Release);
        self.phase.store(IDLE, Ordering::Release);
    }

    /// When the request being read must be in.
    pub fn deadline(&self, timeout: Duration) -> Instant {
        self.epoch + Duration::from_millis(self.since_ms.load(Ordering::Acquire)) + timeout
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

#[derive(Default)]
struct Table {
    next_id: u64,
    open: HashMap<u64, Arc<Conn>>,
    per_client: HashMap<IpAddr, usize>,
    /// Held per pool.
    bytes: [usize; 2],
    /// Closed by the server since the last report, by reason.
    closed: [u64; 4],
}

/// The registry.
pub struct Conns {
    table: Mutex<Table>,
    freed: Notify,
    epoch: Instant,
}

/// What request bytes are held for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// A body being read.
    Body = 0,
    /// A notification being decoded, rendered and stored: its estimated size beyond its body.
    Decoding = 1,
}

/// Request bytes could not be had before the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// What a sweep did, for the log and metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub open: usize,
    pub bytes: usize,
    /// Closed by the server since the last report: request_timeout, idle, evicted, refused.
    pub closed: [u64; 4],
    /// The client with the most open connections, and how many.
    pub busiest: Option<(IpAddr, usize)>,
}

impl Default for Conns {
    fn default() -> Self {
        Conns { table: Mutex::new(Table::default()), freed: Notify::new(), epoch: Instant::now() }
    }
}

impl Conns {
    /// Registers a new connection from `client`, closing others to make room; `None` if every connection
    /// that could make room is working (the new one is then refused).
    pub fn open(&self, client: IpAddr, cfg: &ServerConfig) -> Option<Arc<Conn>> {
        let mut t = self.table.lock().expect("connections lock");
        while t.per_client.get(&client).copied().unwrap_or(0) >= cfg.max_connections_per_client {
            let victim = oldest(&t, |c| c.client == client);
            if !self.evict(&mut t, victim, Closed::Evicted) {
                t.closed[Closed::Refused as usize] += 1;
                return None;
            }
        }
        while t.open.len() >= cfg.max_connections {
            // From the client holding the most connections.
            let busiest = t.per_client.iter().max_by_key(|(_, n)| **n).map(|(ip, _)| *ip);
            let victim = oldest(&t, |c| Some(c.client) == busiest).or_else(|| oldest(&t, |_| true));
            if !self.evict(&mut t, victim, Closed::Evicted) {
                t.closed[Closed::Refused as usize] += 1;
                return None;
            }
        }
        t.next_id += 1;
        let conn = Arc::new(Conn {
            id: t.next_id,
            client,
            phase: AtomicU8::new(READING),
            since_ms: AtomicU64::new(self.epoch.elapsed().as_millis() as u64),
            progress_ms: AtomicU64::new(self.epoch.elapsed().as_millis() as u64),
            bytes: [AtomicUsize::new(0), AtomicUsize::new(0)],
            closed: AtomicBool::new(false),
            close: Notify::new(),
            epoch: self.epoch,
        });
        t.open.insert(conn.id, conn.clone());
        *t.per_client.entry(client).or_insert(0) += 1;
        Some(conn)
    }

    /// The connection has ended (either side closed it).
    pub fn ended(&self, conn: &Conn) {
        let mut t = self.table.lock().expect("connections lock");
        if t.open.remove(&conn.id).is_some() {
            forget(&mut t, conn);
            self.freed.notify_waiters();
        }
    }

    /// Takes `n` more request bytes from `pool` for `conn`: for a body, closing connections whose body has
    /// stalled (oldest first) if that makes room; else waiting for others to give some back, at most until
    /// `deadline`. A request alone in its pool always gets what it asks (its size is bounded by the limits).
    pub async fn take(
        &self,
        conn: &Conn,
        pool: Pool,
        n: usize,
        cfg: &ServerConfig,
        deadline: Instant,
    ) -> Result<(), Busy> {
        let (p, max) = (pool as usize, cfg.max_inflight_bytes / 2);
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut t = self.table.lock().expect("connections lock");
                if conn.is_closed() {
                    return Err(Busy);
                }
                loop {
                    if t.bytes[p] == 0 || t.bytes[p] + n <= max {
                        t.bytes[p] += n;
                        conn.bytes[p].fetch_add(n, Ordering::AcqRel);
                        return Ok(());
                    }
                    if pool == Pool::Decoding {
                        break;
                    }
                    // Only a body that has stalled: one still arriving finishes soon and gives its bytes back.
                    let stalled_since = conn.now_ms().saturating_sub(STALLED.as_millis() as u64);
                    let victim = oldest(&t, |c| {
                        c.id != conn.id
                            && c.phase.load(Ordering::Acquire) == READING
                            && c.bytes[p].load(Ordering::Acquire) > 0
                            && c.progress_ms.load(Ordering::Acquire) <= stalled_since
                    });
                    if !self.evict(&mut t, victim, Closed::Evicted) {
                        break;
                    }
                }
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return Err(Busy);
            }
        }
    }

    /// Moves the bytes `conn` holds to a [`Reservation`] that gives them back when dropped: for work that
    /// goes on after its connection is gone (decoding, rendering, storing), so a caller that hangs up
    /// cannot free its share while its notification still takes memory.
    pub fn detach(self: &Arc<Self>, conn: &Conn) -> Reservation {
        let _t = self.table.lock().expect("connections lock");
        let bytes = [conn.bytes[0].swap(0, Ordering::AcqRel), conn.bytes[1].swap(0, Ordering::AcqRel)];
        Reservation { conns: self.clone(), bytes }
    }

    /// Gives back every request byte `conn` holds.
    pub fn release(&self, conn: &Conn) {
        let mut t = self.table.lock().expect("connections lock");
        let mut freed = false;
        for p in 0..2 {
            let b = conn.bytes[p].swap(0, Ordering::AcqRel);
            t.bytes[p] -= b;
            freed |= b > 0;
        }
        if freed {
            self.freed.notify_waiters();
        }
    }

    /// Closes connections past their deadlines; returns what the registry holds and what it closed since
    /// the last sweep.
    pub fn sweep(&self, cfg: &ServerConfig) -> Report {
        let mut t = self.table.lock().expect("connections lock");
        let now = self.epoch.elapsed();
        let late: Vec<(u64, Closed)> = t
            .open
            .values()
            .filter_map(|c| {
                let since = Duration::from_millis(c.since_ms.load(Ordering::Acquire));
                let age = now.saturating_sub(since);
                match c.phase.load(Ordering::Acquire) {
                    IDLE if age >= cfg.idle_timeout => Some((c.id, Closed::Idle)),
                    // A handler at its deadline answers 503 itself; the close is for one that cannot.
                    READING if age >= cfg.request_timeout + ANSWER_GRACE => Some((c.id, Closed::RequestTimeout)),
                    _ => None,
                }
            })
            .collect();
        for (id, why) in late {
            self.evict(&mut t, Some(id), why);
        }
        let report = Report {
            open: t.open.len(),
            bytes: t.bytes[0] + t.bytes[1],
            closed: t.closed,
            busiest: t.per_client.iter().max_by_key(|(_, n)| **n).map(|(ip, n)| (*ip, *n)),
        };
        t.closed = [0; 4];
        report
    }

    /// Closes `victim` (if any): removed at once, its bytes given back, its task told to drop it.
    fn evict(&self, t: &mut Table, victim: Option<u64>, why: Closed) -> bool {
        let Some(conn) = victim.and_then(|id| t.open.remove(&id)) else { return false };
        forget(t, &conn);
        conn.closed.store(true, Ordering::Release);
        conn.close.notify_one();
        t.closed[why as usize] += 1;
        self.freed.notify_waiters();
        true
    }
}

/// Request bytes held by work that no longer belongs to a connection.
pub struct Reservation {
    conns: Arc<Conns>,
    bytes: [usize; 2],
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes != [0, 0] {
            let mut t = self.conns.table.lock().expect("connections lock");
            t.bytes[0] -= self.bytes[0];
            t.bytes[1] -= self.bytes[1];
            self.conns.freed.notify_waiters();
        }
    }
}

fn forget(t: &mut Table, conn: &Conn) {
    for p in 0..2 {
        t.bytes[p] -= conn.bytes[p].swap(0, Ordering::AcqRel);
    }
    if let Some(n) = t.per_client.get_mut(&conn.client) {
        *n -= 1;
        if *n == 0 {
            t.per_client.remove(&conn.client);
        }
    }
}

/// The id of the connection that has been reading or idle longest among those `which` picks.
fn oldest(t: &Table, which: impl Fn(&Conn) -> bool) -> Option<u64> {
    t.open
        .values()
        .filter(|c| c.phase.load(Ordering::Acquire) != WORKING && which(c))
        // The earliest; among equals the first opened.
        .min_by_key(|c| (c.since_ms.load(Ordering::Acquire), c.id))
        .map(|c| c.id)
}

/// A connection's stream: the first bytes of a request start its deadline.
pub struct Watched<S> {
    pub inner: S,
    pub conn: Arc<Conn>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.conn.reading();
            self.conn.progress_ms.store(self.conn.now_ms(), Ordering::Release);
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max: usize, per_client: usize, bytes: usize) -> ServerConfig {
        let mut c = crate::config::Config::from_yaml(
            "targets: {t: {dry_run: true}}",
            "t.yaml",
            std::path::Path::new("."),
            &|_| None,
        )
        .unwrap()
        .server;
        c.max_connections = max;
        c.max_connections_per_client = per_client;
        c.max_inflight_bytes = bytes;
        c
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[tokio::test(start_paused = true)]
    async fn a_crowd_from_one_client_loses_its_oldest_connections_first() {
        let conns = Conns::default();
        let c = cfg(8, 4, 1 << 20);
        let crowd: Vec<_> = (0..4).map(|_| conns.open(ip(2), &c).unwrap()).collect();
        tokio::time::advance(Duration::from_millis(10)).await;
        let honest = conns.open(ip(1), &c).unwrap();
        // The crowd's fifth connection closes its own oldest, not the honest client's.
        let fifth = conns.open(ip(2), &c).unwrap();
        assert!(crowd[0].is_closed() && !crowd[1].is_closed() && !honest.is_closed());
        // Filling the server closes connections of the busiest client.
        let more: Vec<_> = (0..3).map(|i| conns.open(ip(10 + i), &c).unwrap()).collect();
        assert_eq!(conns.sweep(&c).open, 8);
        let ninth = conns.open(ip(20), &c).unwrap();
        assert!(crowd[1].is_closed(), "the busiest client's oldest goes");
        assert!(!honest.is_closed() && !fifth.is_closed() && more.iter().all(|m| !m.is_closed()));
        // Working connections are never closed: with every one working, a new connection is refused.
        let open = [&crowd[2], &crowd[3], &fifth, &honest, &ninth].into_iter().chain(more.iter());
        let open: Vec<_> = open.collect();
        open.iter().for_each(|c| c.working());
        assert!(conns.open(ip(30), &c).is_none());
        assert!(open.iter().all(|c| !c.is_closed()));
        // Since the last sweep: crowd[1] evicted, one refused.
        assert_eq!(conns.sweep(&c).closed, [0, 0, 1, 1]);
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_close_slow_requests_and_idle_connections() {
        let conns = Conns::default();
        let c = cfg(8, 8, 1 << 20);
        let slow = conns.open(ip(1), &c).unwrap();
        let quick = conns.open(ip(1), &c).unwrap();
        quick.working();
        quick.idle();
        tokio::time::advance(c.request_timeout + ANSWER_GRACE).await;
        let report = conns.sweep(&c);
        assert!(slow.is_closed() && !quick.is_closed());
        assert_eq!(report.closed, [1, 0, 0, 0]);
        tokio::time::advance(c.idle_timeout).await;
        conns.sweep(&c);
        assert!(quick.is_closed());
        assert_eq!(conns.sweep(&c).open, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_stay_within_the_budget_by_closing_unfinished_bodies() {
        let conns = Conns::default();
        let c = cfg(64, 64, 2000);
        let deadline = Instant::now() + Duration::from_secs(1);
        let stalled: Vec<_> = (0..4).map(|_| conns.open(ip(2), &c).unwrap()).collect();
        for s in &stalled {
            conns.take(s, Pool::Body, 250, &c, deadline).await.unwrap();
        }
        tokio::time::advance(STALLED).await;
        let honest = conns.open(ip(1), &c).unwrap();
        conns.take(&honest, Pool::Body, 400, &c, deadline).await.unwrap();
        assert!(stalled[0].is_closed() && stalled[1].is_closed() && !stalled[2].is_closed());
        assert_eq!(conns.sweep(&c).bytes, 900);
        // Working requests are not closed for bytes: the next one waits until its deadline, then is busy.
        honest.working();
        stalled[2].working();
        stalled[3].working();
        let late = conns.open(ip(3), &c).unwrap();
        assert_eq!(conns.take(&late, Pool::Body, 200, &c, Instant::now() + Duration::from_millis(50)).await, Err(Busy));
        // ...unless bytes come back meanwhile.
        let waiter = conns.take(&late, Pool::Body, 200, &c, Instant::now() + Duration::from_secs(5));
        tokio::pin!(waiter);
        assert!(futures_poll(&mut waiter).await.is_none());
        conns.release(&honest);
        assert_eq!(waiter.await, Ok(()));
        conns.ended(&late);
        assert_eq!(conns.sweep(&c).bytes, 500);
    }

    #[tokio::test(start_paused = true)]
    async fn work_that_outlives_its_connection_keeps_its_bytes_until_it_ends() {
        let conns = Arc::new(Conns::default());
        let c = cfg(8, 8, 2000);
        let conn = conns.open(ip(1), &c).unwrap();
        conns.take(&conn, Pool::Body, 600, &c, Instant::now() + Duration::from_secs(1)).await.unwrap();
        let held = conns.detach(&conn);
        // The caller hangs up: its connection ends, but the decoding it started still holds the bytes.
        conns.ended(&conn);
        assert_eq!(conns.sweep(&c).bytes, 600);
        let next = conns.open(ip(2), &c).unwrap();
        assert_eq!(conns.take(&next, Pool::Body, 600, &c, Instant::now() + Duration::from_millis(10)).await, Err(Busy));
        drop(held);
        assert_eq!(conns.sweep(&c).bytes, 0);
        conns.take(&next, Pool::Body, 600, &c, Instant::now() + Duration::from_millis(10)).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn requests_waiting_to_be_decoded_do_not_wait_on_each_others_bodies() {
        let conns = Conns::default();
        let c = cfg(8, 8, 2000);
        let deadline = Instant::now() + Duration::from_secs(1);
        // Two bodies in, together most of the body pool; each then needs more than half the decoding pool.
        let (a, b) = (conns.open(ip(1), &c).unwrap(), conns.open(ip(2), &c).unwrap());
        for conn in [&a, &b] {
            conns.take(conn, Pool::Body, 450, &c, deadline).await.unwrap();
            conn.working();
        }
        conns.take(&a, Pool::Decoding, 700, &c, deadline).await.unwrap();
        let waiting = conns.take(&b, Pool::Decoding, 700, &c, deadline);
        tokio::pin!(waiting);
        assert!(futures_poll(&mut waiting).await.is_none(), "b waits for a's decoding, not for a body");
        conns.release(&a);
        assert_eq!(waiting.await, Ok(()));
        assert_eq!(conns.sweep(&c).bytes, 1150);
    }

    /// Polls a future once.
    async fn futures_poll<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            Poll::Ready(match Pin::new(&mut *f).poll(cx) {
                Poll::Ready(v) => Some(v),
                Poll::Pending => None,
            })
        })
        .await
    }
}
