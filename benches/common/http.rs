//! A small blocking HTTP/1.1 client over one keep-alive `TcpStream`: cheap
//! enough that the client is not what a benchmark measures (no async
//! runtime, no per-request allocation beyond the head), with the bodies the
//! benchmark needs (generated blobs streamed without materialising them).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use sha2::Digest as _;

use super::data::Blob;

/// What a request sends.
pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// `blob[start..end]`, streamed from its generator.
    Blob(&'a Blob, u64, u64),
}

/// What becomes of a response body.
#[derive(Clone, Copy, PartialEq)]
pub enum Sink {
    /// Kept in [`Resp::body`].
    Keep,
    /// Counted and dropped.
    Discard,
    /// Counted and hashed into [`Resp::sha256`].
    Hash,
}

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub len: u64,
    pub sha256: Option<String>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `Location`, as a path (registry:2 answers absolute URLs).
    pub fn location(&self) -> String {
        let l = self.header("location").unwrap_or("");
        path_of(l)
    }

    /// The target of `Link: <...>; rel="next"`, as a path.
    pub fn next_link(&self) -> Option<String> {
        let l = self.header("link")?;
        let start = l.find('<')? + 1;
        let end = l[start..].find('>')? + start;
        Some(path_of(&l[start..end]))
    }
}

fn path_of(url: &str) -> String {
    match url.strip_prefix("http://").or(url.strip_prefix("https://")) {
        Some(rest) => rest.find('/').map_or("/".into(), |i| rest[i..].to_string()),
        None => url.to_string(),
    }
}

/// One keep-alive connection to `addr` (reopened when the server closes it).
pub struct Conn {
    addr: String,
    io: Option<(BufReader<TcpStream>, TcpStream)>,
}

impl Conn {
    pub fn new(addr: &str) -> Conn {
        Conn {
            addr: addr.to_string(),
            io: None,
        }
    }

    fn open(&mut self) -> io::Result<&mut (BufReader<TcpStream>, TcpStream)> {
        if self.io.is_none() {
            let s = TcpStream::connect(&self.addr)?;
            s.set_nodelay(true)?;
            let r = BufReader::with_capacity(256 * 1024, s.try_clone()?);
            self.io = Some((r, s));
        }
        self.io
            .as_mut()
            .ok_or_else(|| io::Error::other("no connection"))
    }

    /// Sends one request and reads its whole response.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Body,
        sink: Sink,
    ) -> io::Result<Resp> {
        let r = self.exchange(method, path, headers, &body, sink);
        if r.is_err() {
            self.io = None;
        }
        r
    }

    fn exchange(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &Body,
        sink: Sink,
    ) -> io::Result<Resp> {
        let addr = self.addr.clone();
        let (reader, writer) = self.open()?;
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
        for (k, v) in headers {
            head.push_str(k);
            head.push_str(": ");
            head.push_str(v);
            head.push_str("\r\n");
        }
        let len = match body {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::Blob(_, s, e) => e - s,
        };
        if len > 0 || matches!(method, "PUT" | "POST" | "PATCH") {
            head.push_str(&format!("Content-Length: {len}\r\n"));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        match body {
            Body::Empty => writer.write_all(&out)?,
            Body::Bytes(b) => {
                out.extend_from_slice(b);
                writer.write_all(&out)?;
            }
            Body::Blob(blob, s, e) => {
                writer.write_all(&out)?;
                blob.write_range(*s, *e, writer)?;
            }
        }
        let resp = read_response(reader, method == "HEAD", sink)?;
        if resp
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
        {
            self.io = None;
        }
        Ok(resp)
    }
}

fn read_line(r: &mut BufReader<TcpStream>, line: &mut String) -> io::Result<()> {
    line.clear();
    if r.read_line(line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    while line.ends_with('\n') || line.ends_with('\r') {
        line.pop();
    }
    Ok(())
}

struct BodyOut {
    sink: Sink,
    body: Vec<u8>,
    len: u64,
    hash: Option<sha2::Sha256>,
}

impl BodyOut {
    fn take(&mut self, b: &[u8]) {
        self.len += b.len() as u64;
        match self.sink {
            Sink::Keep => self.body.extend_from_slice(b),
            Sink::Discard => {}
            Sink::Hash => {
                if let Some(h) = self.hash.as_mut() {
                    h.update(b)
                }
            }
        }
    }
}

/// Moves `n` bytes (all until EOF when `None`) from `r` to `out`.
fn copy(r: &mut BufReader<TcpStream>, n: Option<u64>, out: &mut BodyOut) -> io::Result<()> {
    let mut left = n.unwrap_or(u64::MAX);
    while left > 0 {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            if n.is_none() {
                return Ok(());
            }
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short body"));
        }
        let take = buf.len().min(left.min(usize::MAX as u64) as usize);
        out.take(&buf[..take]);
        r.consume(take);
        left -= take as u64;
    }
    Ok(())
}

fn read_response(r: &mut BufReader<TcpStream>, head_only: bool, sink: Sink) -> io::Result<Resp> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    let mut line = String::new();
    let status = loop {
        read_line(r, &mut line)?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("status line"))?;
        if status != 100 {
            break status;
        }
        // Skip an interim response's (empty) header block.
        loop {
            read_line(r, &mut line)?;
            if line.is_empty() {
                break;
            }
        }
    };
    let mut headers = Vec::new();
    loop {
        read_line(r, &mut line)?;
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut out = BodyOut {
        sink,
        body: Vec::new(),
        len: 0,
        hash: (sink == Sink::Hash).then(sha2::Sha256::new),
    };
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    if !(head_only || status == 204 || status == 304) {
        if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            loop {
                read_line(r, &mut line)?;
                let size = line.split(';').next().unwrap_or("").trim();
                let size = u64::from_str_radix(size, 16).map_err(|_| bad("chunk size"))?;
                if size == 0 {
                    // Trailers, then the empty line.
                    loop {
                        read_line(r, &mut line)?;
                        if line.is_empty() {
                            break;
                        }
                    }
                    break;
                }
                copy(r, Some(size), &mut out)?;
                read_line(r, &mut line)?;
            }
        } else if let Some(n) = get("content-length") {
            let n: u64 = n.parse().map_err(|_| bad("content-length"))?;
            copy(r, Some(n), &mut out)?;
        } else {
            copy(r, None, &mut out)?;
        }
    }
    let sha256 = out
        .hash
        .take()
        .map(|h| format!("sha256:{}", hex::encode(h.finalize())));
    Ok(Resp {
        status,
        headers,
        body: out.body,
        len: out.len,
        sha256,
    })
}

/// Reads everything a reader holds (for the child processes' output).
#[allow(dead_code)]
pub fn drain(mut r: impl Read) {
    let mut buf = [0u8; 8192];
    while matches!(r.read(&mut buf), Ok(n) if n > 0) {}
}
