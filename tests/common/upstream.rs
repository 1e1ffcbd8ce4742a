//! The test upstream (a real HTTP/1.1 server on loopback that tallies what it answered) and
//! the requests tests send through Envoy.

use super::*;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// A response the test upstream sends.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: Duration,
    /// Sent with `transfer-encoding: chunked` (no `content-length`) in pieces of this many
    /// bytes, `pause` apart, when set.
    pub chunked: Option<(usize, Duration)>,
    /// A trailer section after the last chunk (the answer is then chunked, `chunked`'s pieces
    /// or the body in one), which tiny_http cannot send: written raw.
    pub trailers: Vec<(String, String)>,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
            chunked: None,
            trailers: Vec::new(),
        }
    }
    /// JSON with its content type.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply::new(status, body).header("content-type", "application/json")
    }
    /// Sent chunked, `piece` bytes at a time, `pause` between pieces.
    pub fn chunked(mut self, piece: usize, pause: Duration) -> Reply {
        self.chunked = Some((piece, pause));
        self
    }
    /// Ends the chunked answer with this trailer.
    pub fn trailer(mut self, name: &str, value: &str) -> Reply {
        self.trailers.push((name.to_string(), value.to_string()));
        self
    }
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// Responses answered, by (method, path, status).
pub type Tally = Arc<Mutex<BTreeMap<(String, String, u16), u64>>>;

pub type Route = Box<dyn Fn(&str, &str) -> Reply + Send + Sync>;

/// A real HTTP/1.1 upstream on loopback that counts what it answered, by (method, path, status).
pub struct Upstream {
    pub port: u16,
    server: Arc<tiny_http::Server>,
    pub answered: Tally,
    route: Arc<Mutex<Route>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Upstream {
    pub fn start(route: impl Fn(&str, &str) -> Reply + Send + Sync + 'static) -> Upstream {
        // tiny_http serves a request per thread at a time; plenty of threads keeps a burst of new
        // connections from waiting behind slow ones.
        Upstream::start_with_threads(16, route)
    }

    pub fn start_with_threads(
        threads: usize,
        route: impl Fn(&str, &str) -> Reply + Send + Sync + 'static,
    ) -> Upstream {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let answered: Tally = Arc::default();
        let route: Arc<Mutex<Route>> = Arc::new(Mutex::new(Box::new(route)));
        let handles = (0..threads)
            .map(|_| {
                let (server, answered, route) = (server.clone(), answered.clone(), route.clone());
                thread::spawn(move || {
                    for mut request in server.incoming_requests() {
                        let method = request.method().to_string();
                        let url = request.url().to_string();
                        let mut sink = Vec::new();
                        let _ = request.as_reader().read_to_end(&mut sink);
                        let reply = (route.lock().unwrap())(&method, &url);
                        if !reply.delay.is_zero() {
                            thread::sleep(reply.delay);
                        }
                        let path = url.split('?').next().unwrap_or("").to_string();
                        let key = (method, path, reply.status);
                        if !reply.trailers.is_empty() {
                            *answered.lock().unwrap().entry(key).or_default() += 1;
                            let _ = write_with_trailers(request.into_writer(), &reply);
                            continue;
                        }
                        let mut response = match reply.chunked {
                            None => tiny_http::Response::from_data(reply.body).boxed(),
                            Some((piece, pause)) => tiny_http::Response::new(
                                reply.status.into(),
                                Vec::new(),
                                Paced::boxed(reply.body, piece, pause),
                                None,
                                None,
                            )
                            .with_chunked_threshold(0)
                            .boxed(),
                        }
                        .with_status_code(reply.status);
                        for (name, value) in &reply.headers {
                            response.add_header(
                                tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes())
                                    .unwrap(),
                            );
                        }
                        // Tallied before the answer leaves, so a client that has it can read
                        // the tally at once (a test reading after its request never races).
                        *answered.lock().unwrap().entry(key).or_default() += 1;
                        let _ = request.respond(response);
                    }
                })
            })
            .collect();
        Upstream {
            port,
            server,
            answered,
            route,
            threads: handles,
        }
    }

    /// Swaps the routing function (e.g. to make the upstream fail, then heal).
    pub fn set_route(&self, route: impl Fn(&str, &str) -> Reply + Send + Sync + 'static) {
        *self.route.lock().unwrap() = Box::new(route);
    }

    pub fn count(&self, method: &str, path: &str, status: u16) -> u64 {
        self.answered
            .lock()
            .unwrap()
            .get(&(method.to_string(), path.to_string(), status))
            .copied()
            .unwrap_or(0)
    }

    /// Requests answered for `path`, any method and status.
    pub fn hits(&self, path: &str) -> u64 {
        self.answered
            .lock()
            .unwrap()
            .iter()
            .filter(|((_, p, _), _)| p == path)
            .map(|(_, n)| n)
            .sum()
    }
}

/// `reply` as a chunked HTTP/1.1 answer ending in its trailer section, on the connection's
/// raw writer (tiny_http keeps the connection for the client's next request).
fn write_with_trailers(mut out: Box<dyn Write + Send>, reply: &Reply) -> std::io::Result<()> {
    let reason = tiny_http::StatusCode(reply.status).default_reason_phrase();
    let mut head = format!("HTTP/1.1 {} {reason}\r\n", reply.status);
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let announced: Vec<&str> = reply.trailers.iter().map(|(n, _)| n.as_str()).collect();
    head.push_str(&format!(
        "transfer-encoding: chunked\r\ntrailer: {}\r\n\r\n",
        announced.join(", ")
    ));
    out.write_all(head.as_bytes())?;
    let (piece, pause) = reply.chunked.unwrap_or((reply.body.len(), Duration::ZERO));
    for (i, chunk) in reply.body.chunks(piece.max(1)).enumerate() {
        if i > 0 {
            thread::sleep(pause);
        }
        out.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
        out.write_all(chunk)?;
        out.write_all(b"\r\n")?;
        out.flush()?;
    }
    let mut tail = String::from("0\r\n");
    for (name, value) in &reply.trailers {
        tail.push_str(&format!("{name}: {value}\r\n"));
    }
    tail.push_str("\r\n");
    out.write_all(tail.as_bytes())?;
    out.flush()
}

/// A body read `piece` bytes at a time with a pause between pieces: each reaches the proxy
/// as a chunk of its own.
struct Paced {
    body: Vec<u8>,
    at: usize,
    piece: usize,
    pause: Duration,
}

impl Paced {
    fn boxed(body: Vec<u8>, piece: usize, pause: Duration) -> Box<dyn Read + Send> {
        Box::new(Paced {
            body,
            at: 0,
            piece: piece.max(1),
            pause,
        })
    }
}

impl Read for Paced {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at > 0 && self.at < self.body.len() {
            thread::sleep(self.pause);
        }
        let end = self.body.len().min(self.at + self.piece.min(buf.len()));
        let n = end - self.at;
        buf[..n].copy_from_slice(&self.body[self.at..end]);
        self.at = end;
        Ok(n)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.server.unblock();
        for _ in 1..self.threads.len() {
            self.server.unblock();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Sends one request through Envoy: the status, and whether the upstream made the answer (Envoy
/// adds `x-envoy-upstream-service-time` to those only; its own 503/504s lack it).
pub fn exchange(agent: &ureq::Agent, method: &str, url: &str, body: &str) -> (u16, bool) {
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .body(body.to_string())
        .unwrap();
    match agent.run(request) {
        Ok(mut resp) => {
            let _ = resp.body_mut().read_to_vec();
            let from_upstream = resp.headers().contains_key("x-envoy-upstream-service-time");
            (resp.status().as_u16(), from_upstream)
        }
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

/// Sends one request through Envoy and returns the status.
pub fn send(agent: &ureq::Agent, method: &str, url: &str, body: &str) -> u16 {
    exchange(agent, method, url, body).0
}

/// Sends one request with these request headers through Envoy and returns the status.
pub fn send_with(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> u16 {
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    match agent.run(request.body(body.to_string()).unwrap()) {
        Ok(mut resp) => {
            let _ = resp.body_mut().read_to_vec();
            resp.status().as_u16()
        }
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

/// Writes raw HTTP/1.1 bytes (for what clients refuse to send: odd methods, non-UTF-8 paths)
/// and returns the response status, or None if Envoy closed the connection without one.
pub fn raw_request(port: u16, request: &[u8]) -> Option<u16> {
    let response = raw_response(port, request);
    let head = String::from_utf8_lossy(response.get(..response.len().min(64))?);
    head.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Writes raw HTTP/1.1 bytes and returns every byte that came back until Envoy closed the
/// connection (send `connection: close`): the answer as it was on the wire (chunks, trailers).
pub fn raw_response(port: u16, request: &[u8]) -> Vec<u8> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    response
}

/// Gives the tiny_http upstream `n` idle threads for a burst of new connections. tiny_http serves
/// each connection on a pooled thread, and when connections arrive together while fewer threads
/// are idle than connections, the extra ones wait in a queue until some connection closes; Envoy
/// keeps its upstream connections open, so such a request waits for Envoy's 10 s route timeout
/// and becomes Envoy's own 504. Here: `n` keep-alive connections opened one after the other (each
/// served before the next, so each gets a thread of its own), then all closed: `n` threads are
/// idle for the next 5 s (then tiny_http retires them). The requests are not tallied.
pub fn prewarm_upstream(upstream: &Upstream, n: usize) {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", upstream.port)) else {
            break;
        };
        let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
        if c.write_all(b"GET /warm HTTP/1.1\r\nhost: app\r\n\r\n")
            .is_err()
        {
            break;
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => got.extend_from_slice(&buf[..k]),
            }
        }
        conns.push(c);
    }
    let opened = conns.len() as u64;
    drop(conns);
    eventually(Duration::from_secs(5), "warm-up tallied", || {
        (upstream.hits("/warm") >= opened).then_some(())
    });
    upstream.answered.lock().unwrap().clear();
}
