//! rtpengine's control protocol ("ng"): a cookie, a space and a bencoded dictionary over UDP,
//! answered with the same cookie. Only what the benchmark sends and reads: `ping`, `offer`
//! and `answer` with SDP, the `result` and `sdp` of the reply.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use anyhow::{Context, bail};

/// A bencoded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    // Bencode wants a dictionary's keys sorted; a BTreeMap keeps them so.
    Dict(BTreeMap<Vec<u8>, Value>),
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    pub fn dict<'a>(pairs: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
        Value::Dict(
            pairs
                .into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v))
                .collect(),
        )
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
            Value::Bytes(b) => {
                out.extend_from_slice(format!("{}:", b.len()).as_bytes());
                out.extend_from_slice(b);
            }
            Value::List(items) => {
                out.push(b'l');
                items.iter().for_each(|v| v.encode(out));
                out.push(b'e');
            }
            Value::Dict(map) => {
                out.push(b'd');
                for (k, v) in map {
                    Value::Bytes(k.clone()).encode(out);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }

    /// Decodes one value from the front of `input`, returning it and the rest.
    pub fn decode(input: &[u8]) -> anyhow::Result<(Value, &[u8])> {
        let (&first, rest) = input.split_first().context("bencode: unexpected end")?;
        match first {
            b'i' => {
                let end = rest
                    .iter()
                    .position(|&b| b == b'e')
                    .context("bencode: open int")?;
                let n = std::str::from_utf8(&rest[..end])?.parse()?;
                Ok((Value::Int(n), &rest[end + 1..]))
            }
            b'l' => {
                let mut items = Vec::new();
                let mut rest = rest;
                while rest.first() != Some(&b'e') {
                    let (v, r) = Value::decode(rest)?;
                    items.push(v);
                    rest = r;
                }
                Ok((Value::List(items), &rest[1..]))
            }
            b'd' => {
                let mut map = BTreeMap::new();
                let mut rest = rest;
                while rest.first() != Some(&b'e') {
                    let (Value::Bytes(k), r) = Value::decode(rest)? else {
                        bail!("bencode: dictionary key is not a string");
                    };
                    let (v, r) = Value::decode(r)?;
                    map.insert(k, v);
                    rest = r;
                }
                Ok((Value::Dict(map), &rest[1..]))
            }
            b'0'..=b'9' => {
                let colon = input
                    .iter()
                    .position(|&b| b == b':')
                    .context("bencode: no colon")?;
                let len: usize = std::str::from_utf8(&input[..colon])?.parse()?;
                let body = input
                    .get(colon + 1..colon + 1 + len)
                    .context("bencode: short string")?;
                Ok((Value::Bytes(body.to_vec()), &input[colon + 1 + len..]))
            }
            other => bail!("bencode: unexpected byte {other:#x}"),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(map) => map.get(key.as_bytes()),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
}

/// A client of one rtpengine's ng port.
pub struct Client {
    socket: UdpSocket,
    server: SocketAddr,
    cookie: u64,
    buf: Vec<u8>,
}

impl Client {
    pub fn new(server: SocketAddr) -> anyhow::Result<Client> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(Duration::from_secs(2)))?;
        Ok(Client {
            socket,
            server,
            cookie: 0,
            buf: vec![0; 65536],
        })
    }

    /// Sends one command and returns the reply's dictionary; a reply whose `result` is not
    /// `ok` (or `pong`) is an error carrying rtpengine's `error-reason`.
    pub fn command(&mut self, cmd: &Value) -> anyhow::Result<Value> {
        self.cookie += 1;
        let cookie = format!("{}", self.cookie);
        let mut msg = format!("{cookie} ").into_bytes();
        cmd.encode(&mut msg);
        self.socket.send_to(&msg, self.server)?;
        loop {
            let n = self
                .socket
                .recv(&mut self.buf)
                .context("no answer from rtpengine")?;
            let reply = &self.buf[..n];
            // A late answer to an earlier command carries an older cookie: skip it.
            let Some(space) = reply.iter().position(|&b| b == b' ') else {
                continue;
            };
            if &reply[..space] != cookie.as_bytes() {
                continue;
            }
            let (v, _) = Value::decode(&reply[space + 1..])?;
            return match v.get("result").and_then(Value::as_str) {
                Some("ok" | "pong") => Ok(v),
                other => bail!(
                    "rtpengine answered {other:?}: {:?}",
                    v.get("error-reason").and_then(Value::as_str)
                ),
            };
        }
    }
}

/// The port of the first `m=audio` line of an SDP body.
pub fn audio_port(sdp: &str) -> anyhow::Result<u16> {
    sdp.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|rest| rest.split(' ').next())
        .context("SDP without m=audio")?
        .parse()
        .context("SDP audio port")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let v = Value::dict([
            ("command", Value::str("offer")),
            ("flags", Value::List(vec![Value::str("a"), Value::Int(-3)])),
        ]);
        let mut out = Vec::new();
        v.encode(&mut out);
        assert_eq!(out, b"d7:command5:offer5:flagsl1:ai-3eee");
        let (back, rest) = Value::decode(&out).expect("decodes");
        assert_eq!(back, v);
        assert!(rest.is_empty());
    }
}
