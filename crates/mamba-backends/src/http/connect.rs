//! Opening a TCP connection: every resolved address raced Happy-Eyeballs style (RFC 8305).
//!
//! Addresses are tried in an order that alternates IPv6 and IPv4 (starting with the family the
//! resolver listed first); a new attempt starts when the previous one failed or after a short
//! stagger, whichever comes first, and the first connection made wins (the others are dropped,
//! which closes them). The caller bounds the whole race with one connect timeout. Name
//! resolution goes through `tokio::net::lookup_host`, which runs the system resolver on Tokio's
//! blocking pool, off the async worker threads.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::net::TcpStream;

/// The delay before the next address is tried while earlier attempts are still pending
/// (RFC 8305 recommends 250 ms).
pub(crate) const STAGGER: Duration = Duration::from_millis(250);

/// The addresses of `host`: an IP literal as is, a name through the system resolver.
pub(crate) async fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    if addrs.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, "the name has no address"));
    }
    Ok(addrs)
}

/// IPv6 and IPv4 interleaved, the first family first, each family in the resolver's order.
pub(crate) fn interleave(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let Some(first) = addrs.first() else { return addrs };
    let first_v6 = first.is_ipv6();
    let (mut same, mut other): (Vec<_>, Vec<_>) = addrs.into_iter().partition(|a| a.is_ipv6() == first_v6);
    let mut out = Vec::with_capacity(same.len() + other.len());
    same.reverse();
    other.reverse();
    loop {
        match (same.pop(), other.pop()) {
            (None, None) => return out,
            (a, b) => out.extend(a.into_iter().chain(b)),
        }
    }
}

/// Races connections to `addrs` (already interleaved), starting one every `stagger` or when
/// one fails. Returns the first connected stream, or the last error once all failed.
pub(crate) async fn race(addrs: &[SocketAddr], stagger: Duration) -> Result<TcpStream, (SocketAddr, io::Error)> {
    let mut pending = FuturesUnordered::new();
    let mut next = addrs.iter();
    let mut last: Option<(SocketAddr, io::Error)> = None;
    let start = |addr: SocketAddr| async move { (addr, TcpStream::connect(addr).await) };
    if let Some(addr) = next.next() {
        pending.push(start(*addr));
    }
    loop {
        if pending.is_empty() {
            match next.next() {
                Some(addr) => pending.push(start(*addr)),
                None => {
                    return Err(last.unwrap_or_else(|| {
                        (SocketAddr::from(([0, 0, 0, 0], 0)), io::Error::new(io::ErrorKind::NotFound, "no address"))
                    }))
                }
            }
        }
        let more = next.len() > 0;
        let outcome = {
            let timer = pin!(tokio::time::sleep(stagger));
            let done = pending.next();
            if more {
                match futures_util::future::select(done, timer).await {
                    futures_util::future::Either::Left((outcome, _)) => outcome,
                    futures_util::future::Either::Right(_) => None,
                }
            } else {
                done.await
            }
        };
        match outcome {
            Some((_, Ok(stream))) => return Ok(stream),
            Some((addr, Err(e))) => {
                tracing::debug!(%addr, error = %e, "connection attempt failed");
                last = Some((addr, e));
                if let Some(addr) = next.next() {
                    pending.push(start(*addr));
                }
            }
            // The stagger passed with attempts still pending: start the next one too.
            None => {
                if let Some(addr) = next.next() {
                    pending.push(start(*addr));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn families_alternate_from_the_first() {
        let got = interleave(vec![a("[::1]:1"), a("[::2]:1"), a("[::3]:1"), a("1.1.1.1:1"), a("2.2.2.2:1")]);
        assert_eq!(got, vec![a("[::1]:1"), a("1.1.1.1:1"), a("[::2]:1"), a("2.2.2.2:1"), a("[::3]:1")]);
        let got = interleave(vec![a("1.1.1.1:1"), a("[::1]:1"), a("2.2.2.2:1")]);
        assert_eq!(got, vec![a("1.1.1.1:1"), a("[::1]:1"), a("2.2.2.2:1")]);
        assert!(interleave(Vec::new()).is_empty());
    }

    /// A listener whose accept queue is full: new connection attempts to it get no answer
    /// (the SYN is dropped), as with a black-holed route. Loopback only.
    pub(crate) async fn black_hole() -> (SocketAddr, Vec<TcpStream>, tokio::net::TcpListener) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(a("127.0.0.1:0")).unwrap();
        let listener = socket.listen(1).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut fillers = Vec::new();
        // Fill the queue: attempts that still connect (in the queue) are kept; once one
        // stalls, the hole is ready.
        for _ in 0..64 {
            match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
                Ok(Ok(s)) => fillers.push(s),
                _ => return (addr, fillers, listener),
            }
        }
        panic!("the listener's accept queue never filled");
    }

    #[tokio::test]
    async fn a_black_holed_first_address_costs_one_stagger() {
        let (hole, _fillers, _listener) = black_hole().await;
        let good = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let good_addr = good.local_addr().unwrap();
        let t = std::time::Instant::now();
        let stream = race(&[hole, good_addr], STAGGER).await.unwrap();
        assert_eq!(stream.peer_addr().unwrap(), good_addr);
        let took = t.elapsed();
        assert!(took >= STAGGER && took < Duration::from_secs(2), "{took:?}");
    }

    #[tokio::test]
    async fn a_refused_first_address_moves_on_at_once() {
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let good = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
        let good_addr = good.local_addr().unwrap();
        let t = std::time::Instant::now();
        let stream = race(&interleave(vec![closed, good_addr]), Duration::from_secs(5)).await.unwrap();
        assert_eq!(stream.peer_addr().unwrap(), good_addr);
        assert!(t.elapsed() < Duration::from_secs(2));
        let (addr, _) = race(&[closed], STAGGER).await.unwrap_err();
        assert_eq!(addr, closed);
    }
}
