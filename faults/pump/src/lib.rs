//! `faults.toxiproxy._pump`: the proxy's compiled data path for proxies without toxics.
//!
//! One native thread runs an epoll loop: it accepts on a proxy's listening socket (which Python
//! created and keeps owning), dials the upstream, and copies bytes both ways with the socket
//! semantics of the Python links (`faults/toxiproxy/link.py`): an EOF from one side is passed on
//! as a half-close (shutdown SHUT_WR) once what came before it is written; a socket error on one
//! side closes the other after what was already read for it is written; both directions done
//! closes both. Reads stop while the other side cannot take more (back-pressure).
//!
//! Python hands a proxy over with `listen` and takes it back with `detach` (the first toxic: the
//! open connections' sockets and the bytes read but not yet written come back, and Python's links
//! carry on with them) or `drop` (the proxy is disabled or deleted: every connection is closed).
//! The loop blocks in epoll_wait; it wakes once a second only while a dial is in progress (for the
//! dial timeout) or a listener rests after an accept error (EMFILE). It never touches a Python
//! object, so it runs without the GIL. It also counts bytes per direction for `-proxy-metrics`.
//!
//! Any thread may call the Python-facing functions: they take the state's mutex, which the loop
//! holds only while it handles the events of one epoll_wait, so a socket is never removed or handed
//! back while the loop is using it (an event for a connection already gone is ignored by its id).

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::collections::HashMap;
use std::io;
use std::mem;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

// One read's worth: 64 KiB moves bulk data as fast as 256 KiB did on loopback (~1 GB/s either way, within
// noise), and the pump's memory after a bulk transfer is ~0.5 MiB smaller (its buffer, and the leftovers it
// queues when a writer is slower).
const BUF: usize = 64 << 10;
const DIAL_TIMEOUT: Duration = Duration::from_secs(30);
const WAKE: u64 = u64::MAX;
const CLIENT: u64 = 0;
const SERVER: u64 = 1;
const LISTENER: u64 = 2;

fn token(id: u64, kind: u64) -> u64 {
    (id << 2) | kind
}

struct Listener {
    fd: RawFd,
    host: String,
    port: u16,
    numeric: Option<SocketAddr>,
    /// Connections accepted so far: each one's serial (Python's toxics draw their randomness by it).
    accepted: u64,
    /// Out of file descriptors (or another accept error): not watched until then, as asyncio does, so
    /// that a listener the loop cannot serve does not wake it over and over.
    paused_until: Option<Instant>,
}

/// One direction: bytes read from its source not yet written to its destination, its end, and its
/// byte counts (GET /metrics: Toxiproxy's received and sent bytes per direction).
#[derive(Default)]
struct Dir {
    pending: Vec<u8>,
    offset: usize,
    eof: bool,
    done: bool,
    received: u64,
    sent: u64,
}

impl Dir {
    fn has_pending(&self) -> bool {
        self.offset < self.pending.len()
    }
    fn take(&mut self) -> Vec<u8> {
        let rest = self.pending.split_off(self.offset);
        self.pending.clear();
        self.offset = 0;
        rest
    }
}

#[derive(PartialEq, Clone, Copy)]
enum Phase {
    Resolving,
    Dialling,
    Open,
}

struct Conn {
    proxy: u64,
    serial: u64,
    client: RawFd,
    server: RawFd,
    phase: Phase,
    addrs: Vec<SocketAddr>,
    next_addr: usize,
    started: Instant,
    up: Dir,   // client -> server
    down: Dir, // server -> client
    client_mask: u32,
    server_mask: u32,
}

struct State {
    listeners: HashMap<u64, Listener>,
    conns: HashMap<u64, Conn>,
    next_id: u64,
    resolved: Vec<(u64, io::Result<Vec<SocketAddr>>)>,
    /// Per proxy handle: the byte counts of its connections that ended or were handed back
    /// (upstream received, upstream sent, downstream received, downstream sent).
    totals: HashMap<u64, Counts>,
}

type Counts = [u64; 4];

fn add_counts(totals: &mut Counts, conn: &Conn) {
    totals[0] += conn.up.received;
    totals[1] += conn.up.sent;
    totals[2] += conn.down.received;
    totals[3] += conn.down.sent;
}

struct Pump {
    epfd: RawFd,
    wake: RawFd,
    state: Mutex<State>,
}

static PUMP: OnceLock<Arc<Pump>> = OnceLock::new();

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn close(fd: RawFd) {
    if fd >= 0 {
        unsafe { libc::close(fd) };
    }
}

impl Pump {
    fn start() -> io::Result<Arc<Pump>> {
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epfd < 0 {
            return Err(io::Error::last_os_error());
        }
        let wake = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if wake < 0 {
            return Err(io::Error::last_os_error());
        }
        let pump = Arc::new(Pump {
            epfd,
            wake,
            state: Mutex::new(State { listeners: HashMap::new(), conns: HashMap::new(), next_id: 1, resolved: vec![], totals: HashMap::new() }),
        });
        pump.ctl(libc::EPOLL_CTL_ADD, wake, libc::EPOLLIN as u32, WAKE);
        let runner = pump.clone();
        std::thread::Builder::new()
            .name("toxiproxy-pump".into())
            .stack_size(256 << 10)
            .spawn(move || runner.run())?;
        Ok(pump)
    }

    fn ctl(&self, op: i32, fd: RawFd, events: u32, data: u64) -> i32 {
        let mut ev = libc::epoll_event { events, u64: data };
        unsafe { libc::epoll_ctl(self.epfd, op, fd, &mut ev) }
    }

    fn run(&self) {
        let mut events: Vec<libc::epoll_event> = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
        let mut buf = vec![0u8; BUF];
        let mut timeout = -1;
        loop {
            let n = unsafe { libc::epoll_wait(self.epfd, events.as_mut_ptr(), events.len() as i32, timeout) };
            if n < 0 && errno() != libc::EINTR {
                return;
            }
            let mut state = self.state.lock().unwrap();
            for ev in &events[..n.max(0) as usize] {
                let (data, bits) = (ev.u64, ev.events);
                if data == WAKE {
                    let mut value = 0u64;
                    unsafe { libc::read(self.wake, &mut value as *mut u64 as *mut libc::c_void, 8) };
                    continue;
                }
                let (id, kind) = (data >> 2, data & 3);
                if kind == LISTENER {
                    self.accept(&mut state, id);
                } else {
                    self.on_event(&mut state, id, kind, bits, &mut buf);
                }
            }
            for (id, result) in mem::take(&mut state.resolved) {
                self.resolved(&mut state, id, result);
            }
            self.expire_dials(&mut state);
            self.resume_listeners(&mut state);
            let waiting = state.conns.values().any(|c| c.phase != Phase::Open)
                || state.listeners.values().any(|l| l.paused_until.is_some());
            timeout = if waiting { 1000 } else { -1 };
        }
    }

    // --- accepting and dialling ---------------------------------------------------------------

    fn accept(&self, state: &mut State, proxy: u64) {
        let Some(listener) = state.listeners.get(&proxy) else { return };
        let (lfd, host, port, numeric) = (listener.fd, listener.host.clone(), listener.port, listener.numeric);
        for _ in 0..64 {
            let Some(listener) = state.listeners.get_mut(&proxy) else { return };
            let fd = unsafe {
                libc::accept4(lfd, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
            };
            if fd < 0 {
                let e = errno();
                if e != libc::EAGAIN && e != libc::EWOULDBLOCK && e != libc::EINTR && e != libc::ECONNABORTED {
                    if let Some(listener) = state.listeners.get_mut(&proxy) {
                        listener.paused_until = Some(Instant::now() + Duration::from_secs(1));
                        self.ctl(libc::EPOLL_CTL_MOD, lfd, 0, token(proxy, LISTENER));
                    }
                }
                return;
            }
            nodelay(fd);
            listener.accepted += 1;
            let serial = listener.accepted;
            let id = state.next_id;
            state.next_id += 1;
            let conn = Conn {
                proxy,
                serial,
                client: fd,
                server: -1,
                phase: Phase::Resolving,
                addrs: vec![],
                next_addr: 0,
                started: Instant::now(),
                up: Dir::default(),
                down: Dir::default(),
                client_mask: 0,
                server_mask: 0,
            };
            state.conns.insert(id, conn);
            // The client is watched for errors only until the upstream answers (Python pauses its reads).
            self.ctl(libc::EPOLL_CTL_ADD, fd, 0, token(id, CLIENT));
            match numeric {
                Some(addr) => self.resolved(state, id, Ok(vec![addr])),
                None => {
                    if !self.resolve_in_thread(id, host.clone(), port) {
                        self.finish(state, id);
                    }
                }
            }
        }
    }

    /// Names are resolved off the loop (getaddrinfo blocks), as Python's dial resolves per connection.
    fn resolve_in_thread(&self, id: u64, host: String, port: u16) -> bool {
        let pump = PUMP.get().cloned();
        let spawned = std::thread::Builder::new().stack_size(128 << 10).spawn(move || {
            let result = (host.as_str(), port).to_socket_addrs().map(|addrs| addrs.collect::<Vec<_>>());
            if let Some(pump) = pump {
                pump.state.lock().unwrap().resolved.push((id, result));
                let one = 1u64;
                unsafe { libc::write(pump.wake, &one as *const u64 as *const libc::c_void, 8) };
            }
        });
        spawned.is_ok()
    }

    fn resolved(&self, state: &mut State, id: u64, result: io::Result<Vec<SocketAddr>>) {
        let Some(conn) = state.conns.get_mut(&id) else { return }; // detached or dropped meanwhile
        if conn.phase != Phase::Resolving {
            return;
        }
        conn.addrs = result.unwrap_or_default();
        conn.next_addr = 0;
        conn.phase = Phase::Dialling;
        self.dial_next(state, id);
    }

    /// Dial the next address of the upstream; with none left, close the client (Python aborts it).
    fn dial_next(&self, state: &mut State, id: u64) {
        let Some(conn) = state.conns.get_mut(&id) else { return };
        if conn.server >= 0 {
            self.ctl(libc::EPOLL_CTL_DEL, conn.server, 0, 0);
            close(conn.server);
            conn.server = -1;
            conn.server_mask = 0;
        }
        while conn.next_addr < conn.addrs.len() {
            let addr = conn.addrs[conn.next_addr];
            conn.next_addr += 1;
            if let Some(fd) = connect(addr) {
                conn.server = fd;
                conn.server_mask = libc::EPOLLOUT as u32;
                self.ctl(libc::EPOLL_CTL_ADD, fd, conn.server_mask, token(id, SERVER));
                return;
            }
        }
        self.finish(state, id);
    }

    fn resume_listeners(&self, state: &mut State) {
        let now = Instant::now();
        for (id, listener) in state.listeners.iter_mut() {
            if listener.paused_until.is_some_and(|until| until <= now) {
                listener.paused_until = None;
                self.ctl(libc::EPOLL_CTL_MOD, listener.fd, libc::EPOLLIN as u32, token(*id, LISTENER));
            }
        }
    }

    fn expire_dials(&self, state: &mut State) {
        let now = Instant::now();
        let late: Vec<u64> = state
            .conns
            .iter()
            .filter(|(_, c)| c.phase != Phase::Open && now.duration_since(c.started) > DIAL_TIMEOUT)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            self.finish(state, id);
        }
    }

    // --- moving bytes -------------------------------------------------------------------------

    fn on_event(&self, state: &mut State, id: u64, kind: u64, bits: u32, buf: &mut [u8]) {
        let Some(conn) = state.conns.get_mut(&id) else { return };
        let (inb, outb) = (libc::EPOLLIN as u32, libc::EPOLLOUT as u32);
        let broken = bits & (libc::EPOLLERR as u32 | libc::EPOLLHUP as u32) != 0;
        if conn.phase != Phase::Open {
            if kind == SERVER && conn.phase == Phase::Dialling && (bits & outb != 0 || broken) {
                if so_error(conn.server) == 0 && bits & libc::EPOLLERR as u32 == 0 {
                    conn.phase = Phase::Open;
                } else {
                    self.dial_next(state, id);
                    return;
                }
            } else if kind == CLIENT && broken {
                self.finish(state, id); // the client went away while the upstream was dialled
                return;
            } else {
                return;
            }
        } else {
            let client = kind == CLIENT;
            let (fd, other, mask) =
                if client { (conn.client, conn.server, conn.client_mask) } else { (conn.server, conn.client, conn.server_mask) };
            if fd < 0 {
                return;
            }
            if mask & inb != 0 && bits & (inb | libc::EPOLLHUP as u32 | libc::EPOLLERR as u32) != 0 {
                let dir = if client { &mut conn.up } else { &mut conn.down };
                match pass(fd, other, dir, buf) {
                    Flow::Ok => {}
                    Flow::SourceLost => self.lose(conn, client),
                    Flow::DestLost => self.lose(conn, !client),
                }
            } else if broken {
                self.lose(conn, client); // an error on a socket that is not being read
            }
            let fd = if client { conn.client } else { conn.server };
            if bits & outb != 0 && fd >= 0 {
                let dir = if client { &mut conn.down } else { &mut conn.up };
                if let Flow::DestLost = flush(fd, dir) {
                    self.lose(conn, client);
                }
            }
        }
        self.settle(state, id);
    }

    /// One side is gone (a socket error): close it now and drop what was waiting to be written to it.
    /// What was read from it still goes to the other side, which is then closed (Python's links do so).
    fn lose(&self, conn: &mut Conn, client: bool) {
        let (fd, dir) = if client { (&mut conn.client, &mut conn.down) } else { (&mut conn.server, &mut conn.up) };
        if *fd >= 0 {
            self.ctl(libc::EPOLL_CTL_DEL, *fd, 0, 0);
            close(*fd);
            *fd = -1;
        }
        dir.pending.clear();
        dir.offset = 0;
    }

    /// After any change: close what is over, then watch each socket for what it can do next.
    fn settle(&self, state: &mut State, id: u64) {
        let Some(conn) = state.conns.get_mut(&id) else { return };
        let over = (conn.up.done && conn.down.done)
            || (conn.client < 0 && (conn.server < 0 || !conn.up.has_pending()))
            || (conn.server < 0 && (conn.client < 0 || !conn.down.has_pending()));
        if over {
            self.finish(state, id);
            return;
        }
        let both = conn.client >= 0 && conn.server >= 0;
        let want_client = mask(both && !conn.up.eof && !conn.up.has_pending(), conn.down.has_pending());
        let want_server = mask(both && !conn.down.eof && !conn.down.has_pending(), conn.up.has_pending());
        if conn.client >= 0 && want_client != conn.client_mask {
            conn.client_mask = want_client;
            self.ctl(libc::EPOLL_CTL_MOD, conn.client, want_client, token(id, CLIENT));
        }
        if conn.server >= 0 && want_server != conn.server_mask {
            conn.server_mask = want_server;
            self.ctl(libc::EPOLL_CTL_MOD, conn.server, want_server, token(id, SERVER));
        }
    }

    /// Close the connection's sockets and forget it.
    fn finish(&self, state: &mut State, id: u64) {
        if let Some(conn) = state.conns.remove(&id) {
            add_counts(state.totals.entry(conn.proxy).or_default(), &conn);
            for fd in [conn.client, conn.server] {
                if fd >= 0 {
                    self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0);
                    close(fd);
                }
            }
        }
    }
}

enum Flow {
    Ok,
    SourceLost,
    DestLost,
}

fn mask(read: bool, write: bool) -> u32 {
    (if read { libc::EPOLLIN as u32 } else { 0 }) | (if write { libc::EPOLLOUT as u32 } else { 0 })
}

fn again() -> bool {
    let e = errno();
    e == libc::EAGAIN || e == libc::EWOULDBLOCK
}

/// Read once from `src` and write it to `dst`; keep what `dst` cannot take yet (reads then stop
/// until it is written). An EOF is passed on as a half-close once everything before it is written.
fn pass(src: RawFd, dst: RawFd, dir: &mut Dir, buf: &mut [u8]) -> Flow {
    let n = unsafe { libc::read(src, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
    if n == 0 {
        dir.eof = true;
        end_if_flushed(dir, dst);
        return Flow::Ok;
    }
    if n < 0 {
        return if again() || errno() == libc::EINTR { Flow::Ok } else { Flow::SourceLost };
    }
    let n = n as usize;
    dir.received += n as u64;
    let mut written = 0usize;
    while written < n {
        let w = unsafe { libc::write(dst, buf[written..n].as_ptr() as *const libc::c_void, n - written) };
        if w > 0 {
            written += w as usize;
            dir.sent += w as u64;
        } else if w < 0 && errno() == libc::EINTR {
            continue;
        } else if w < 0 && again() {
            dir.pending.extend_from_slice(&buf[written..n]);
            return Flow::Ok;
        } else {
            return Flow::DestLost;
        }
    }
    Flow::Ok
}

/// A direction whose source ended and whose bytes are all written is passed on as a half-close.
fn end_if_flushed(dir: &mut Dir, dst: RawFd) {
    if dir.eof && !dir.has_pending() && !dir.done {
        dir.done = true;
        unsafe { libc::shutdown(dst, libc::SHUT_WR) };
    }
}

/// Write what is pending for `dst`.
fn flush(dst: RawFd, dir: &mut Dir) -> Flow {
    while dir.has_pending() {
        let rest = &dir.pending[dir.offset..];
        let w = unsafe { libc::write(dst, rest.as_ptr() as *const libc::c_void, rest.len()) };
        if w > 0 {
            dir.offset += w as usize;
            dir.sent += w as u64;
        } else if w < 0 && errno() == libc::EINTR {
            continue;
        } else if w < 0 && again() {
            return Flow::Ok;
        } else {
            return Flow::DestLost;
        }
    }
    dir.pending.clear();
    dir.offset = 0;
    end_if_flushed(dir, dst);
    Flow::Ok
}

fn nodelay(fd: RawFd) {
    let one: libc::c_int = 1;
    unsafe {
        libc::setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, &one as *const _ as *const libc::c_void, 4);
    }
}

fn so_error(fd: RawFd) -> i32 {
    let mut err: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    let r = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, &mut err as *mut _ as *mut libc::c_void, &mut len) };
    if r < 0 {
        errno()
    } else {
        err
    }
}

/// A non-blocking connect to `addr`: the socket while the dial is in progress, None if it failed at once.
fn connect(addr: SocketAddr) -> Option<RawFd> {
    let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, libc::IPPROTO_TCP) };
    if fd < 0 {
        return None;
    }
    nodelay(fd);
    let (storage, len) = sockaddr(addr);
    let r = unsafe { libc::connect(fd, &storage as *const _ as *const libc::sockaddr, len) };
    if r == 0 || errno() == libc::EINPROGRESS {
        Some(fd)
    } else {
        close(fd);
        None
    }
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                sin_zero: [0; 8],
            };
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
            (storage, mem::size_of::<libc::sockaddr_in>() as libc::socklen_t)
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                sin6_scope_id: a.scope_id(),
            };
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
            (storage, mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t)
        }
    }
}

fn pump() -> PyResult<Arc<Pump>> {
    if let Some(p) = PUMP.get() {
        return Ok(p.clone());
    }
    let started = Pump::start()?;
    Ok(PUMP.get_or_init(|| started).clone())
}

// --- the Python API -------------------------------------------------------------------------------

/// Pump the connections of a listening socket (its fd; Python keeps the socket) to `host:port`.
/// Returns the handle for `detach` and `drop`.
#[pyfunction]
fn listen(fd: RawFd, host: String, port: u16) -> PyResult<u64> {
    let pump = pump()?;
    let mut state = pump.state.lock().unwrap();
    let id = state.next_id;
    state.next_id += 1;
    let numeric = host.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, port));
    state.listeners.insert(id, Listener { fd, host, port, numeric, accepted: 0, paused_until: None });
    if pump.ctl(libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN as u32, token(id, LISTENER)) < 0 {
        state.listeners.remove(&id);
        return Err(io::Error::last_os_error().into());
    }
    Ok(id)
}

/// Stop accepting for a proxy; the number of connections it accepted.
fn unlisten(pump: &Pump, state: &mut State, id: u64) -> u64 {
    match state.listeners.remove(&id) {
        Some(listener) => {
            pump.ctl(libc::EPOLL_CTL_DEL, listener.fd, 0, 0);
            listener.accepted
        }
        None => 0,
    }
}

type Handed<'py> = (u64, RawFd, RawFd, Bound<'py, PyBytes>, Bound<'py, PyBytes>);

/// Stop pumping for a proxy and hand its connections back: (connections accepted, a list of (serial,
/// client fd, upstream fd or -1 while it was still dialling, bytes read from the client not yet written
/// upstream, bytes read from the upstream not yet written to the client), its final byte counts as
/// `counters` gives them). The caller owns the fds and counts what they carry from then on.
#[pyfunction]
fn detach<'py>(py: Python<'py>, id: u64) -> PyResult<(u64, Vec<Handed<'py>>, Counts)> {
    let pump = pump()?;
    let mut state = pump.state.lock().unwrap();
    let accepted = unlisten(&pump, &mut state, id);
    let ids: Vec<u64> = state.conns.iter().filter(|(_, c)| c.proxy == id).map(|(k, _)| *k).collect();
    let mut out = vec![];
    for cid in ids {
        let mut conn = state.conns.remove(&cid).unwrap();
        add_counts(state.totals.entry(id).or_default(), &conn);
        for fd in [conn.client, conn.server] {
            if fd >= 0 {
                pump.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0);
            }
        }
        if conn.client < 0 || conn.server < 0 && conn.phase == Phase::Open {
            close(conn.client); // a side was lost: it was being closed anyway
            close(conn.server);
            continue;
        }
        if conn.phase != Phase::Open {
            close(conn.server); // Python dials again
            conn.server = -1;
        }
        let (up, down) = (conn.up.take(), conn.down.take());
        out.push((conn.serial, conn.client, conn.server, PyBytes::new(py, &up), PyBytes::new(py, &down)));
    }
    Ok((accepted, out, state.totals.remove(&id).unwrap_or_default()))
}

/// Stop pumping for a proxy and close its connections at once (the proxy is disabled or deleted):
/// (the number of connections it accepted, its final byte counts as `counters` gives them).
#[pyfunction]
#[pyo3(name = "drop")]
fn drop_proxy(id: u64) -> PyResult<(u64, Counts)> {
    let pump = pump()?;
    let mut state = pump.state.lock().unwrap();
    let accepted = unlisten(&pump, &mut state, id);
    let ids: Vec<u64> = state.conns.iter().filter(|(_, c)| c.proxy == id).map(|(k, _)| *k).collect();
    for cid in ids {
        pump.finish(&mut state, cid);
    }
    Ok((accepted, state.totals.remove(&id).unwrap_or_default()))
}

/// A proxy's byte counts so far: (upstream received, upstream sent, downstream received, downstream sent).
#[pyfunction]
fn counters(id: u64) -> PyResult<Counts> {
    let pump = pump()?;
    let state = pump.state.lock().unwrap();
    let mut counts = state.totals.get(&id).copied().unwrap_or_default();
    for conn in state.conns.values().filter(|c| c.proxy == id) {
        add_counts(&mut counts, conn);
    }
    Ok(counts)
}

/// How many connections the pump holds for a proxy (for tests).
#[pyfunction]
fn connections(id: u64) -> PyResult<usize> {
    let pump = pump()?;
    let state = pump.state.lock().unwrap();
    Ok(state.conns.values().filter(|c| c.proxy == id).count())
}

/// Give the C heap's free pages back to the system (what importing and starting the server left behind).
#[pyfunction]
fn trim() {
    unsafe { libc::malloc_trim(0) };
}

#[pymodule]
fn _pump(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(trim, m)?)?;
    m.add_function(wrap_pyfunction!(listen, m)?)?;
    m.add_function(wrap_pyfunction!(detach, m)?)?;
    m.add_function(wrap_pyfunction!(drop_proxy, m)?)?;
    m.add_function(wrap_pyfunction!(connections, m)?)?;
    m.add_function(wrap_pyfunction!(counters, m)?)?;
    Ok(())
}
