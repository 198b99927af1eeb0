//! Proxies (issue 15, section 1) against a real forward proxy nobody here wrote: proxy.py
//! (PyPI `proxy.py`), installed by `scripts/peers/install-proxy.sh` into
//! `~/.cache/mamba-peers/venv-proxy` and started by each test on 127.0.0.1. Without it the
//! tests fail and say how to install it (`MAMBA_SKIP_PEERS=1` skips them, like the live
//! suite). SOCKS5 runs against a minimal SOCKS5 server in this file (no SOCKS server is
//! available from the registries here).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mamba_backends::{
    http::{Certificate, HttpClient, Proxy},
    ErrorKind,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{RawServer, Reply};
use crate::tls::{ask, Ca, TlsServer};

const OK_BODY: &str = r#"{"choices":[{"message":{"content":"via proxy"},"finish_reason":"stop"}]}"#;

/// A running proxy.py, stopped on drop with every process it started.
pub(crate) struct ProxyPy {
    child: Child,
    pub(crate) port: u16,
}

impl Drop for ProxyPy {
    fn drop(&mut self) {
        // proxy.py forks its acceptors, which outlive a killed parent: it runs in a process
        // group of its own, and the whole group goes.
        #[cfg(unix)]
        let _ =
            Command::new("kill").args(["-KILL", "--", &format!("-{}", self.child.id())]).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn proxy_py_binary() -> Option<PathBuf> {
    let root = std::env::var_os("MAMBA_PEERS_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/mamba-peers"));
    let bin = root.join("venv-proxy/bin/proxy");
    if bin.exists() {
        return Some(bin);
    }
    if std::env::var_os("MAMBA_SKIP_PEERS").is_some() {
        eprintln!("SKIPPED proxy test: MAMBA_SKIP_PEERS is set and proxy.py is not installed");
        return None;
    }
    panic!("proxy.py is not installed at {}: run scripts/peers/install-proxy.sh", bin.display());
}

impl ProxyPy {
    /// Starts proxy.py on 127.0.0.1 (a free port), with `basic_auth` ("user:password") if given.
    pub(crate) async fn start(basic_auth: Option<&str>) -> Option<ProxyPy> {
        let bin = proxy_py_binary()?;
        let dir = std::env::temp_dir().join(format!("mamba-proxy-{}-{}", std::process::id(), rand_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let port_file = dir.join("port");
        let mut cmd = Command::new(bin);
        cmd.args(["--hostname", "127.0.0.1", "--port", "0", "--num-workers", "1", "--num-acceptors", "1"])
            .arg("--port-file")
            .arg(&port_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(auth) = basic_auth {
            cmd.args(["--basic-auth", auth]);
        }
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        // Wrapped at once, so that every way out of here stops it.
        let mut proxy = ProxyPy { child: cmd.spawn().expect("start proxy.py"), port: 0 };
        for _ in 0..150 {
            if let Some(port) = std::fs::read_to_string(&port_file).ok().and_then(|s| s.trim().parse().ok()) {
                // The port file is written before the socket accepts; wait until it does.
                if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                    proxy.port = port;
                    return Some(proxy);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("proxy.py did not start within 15 s");
    }

    pub(crate) fn url(&self, auth: &str) -> String {
        format!("http://{auth}127.0.0.1:{}", self.port)
    }
}

/// The processes whose parent is `pid` (Linux's /proc; empty elsewhere).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces, so read after ')'.
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| s.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse::<u32>().ok())
                == Some(pid)
        })
        .collect()
}

/// True while `pid` runs (a zombie waiting for its reaper has ended).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')')?.1.split_whitespace().next().map(|state| state != "Z"))
        .unwrap_or(false)
}

/// Stopping the proxy stops the processes it forked too (they outlived a test run before).
#[tokio::test]
async fn a_stopped_proxy_leaves_no_process_behind() {
    let Some(proxy) = ProxyPy::start(None).await else { return };
    let children = children_of(proxy.child.id());
    assert!(!children.is_empty() || !std::path::Path::new("/proc").exists(), "proxy.py forks its acceptor");
    drop(proxy);
    // The group is killed at once; give the kernel a moment to reap.
    for _ in 0..50 {
        if children.iter().all(|c| !alive(*c)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("proxy.py's processes {children:?} outlived it");
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn via(proxy: &str) -> HttpClient {
    HttpClient::builder().proxy(Proxy::all(proxy).unwrap()).build()
}

/// An http target goes through the proxy in absolute form; with the proxy's basic auth
/// accepted, refused (wrong password) and missing, the last two as proxy errors.
#[tokio::test]
async fn http_target_through_proxy_with_basic_auth() {
    let Some(proxy) = ProxyPy::start(Some("alice:s3cret")).await else { return };
    let origin = RawServer::fixed(Reply::json(200, OK_BODY)).await;
    assert_eq!(ask(&origin.url(), via(&proxy.url("alice:s3cret@"))).await.unwrap(), "via proxy");
    let seen = &origin.requests()[0];
    assert_eq!(seen.path, "/v1/chat/completions");
    assert!(seen.header("proxy-authorization").is_none(), "the proxy must consume its credentials");

    for auth in ["alice:wrong-pw@", ""] {
        let e = ask(&origin.url(), via(&proxy.url(auth))).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
        assert_eq!(e.status(), Some(407));
        assert!(!e.is_retryable());
        assert!(e.message().contains("the proxy http://"), "{e}");
        assert!(!e.to_string().contains("wrong-pw") && !format!("{e:?}").contains("wrong-pw"), "{e}");
    }
    assert_eq!(origin.request_count(), 1);
}

/// An https target goes through a CONNECT tunnel, TLS end to end with the origin; a refused
/// CONNECT says it was the proxy.
#[tokio::test]
async fn https_target_through_connect_tunnel() {
    let Some(proxy) = ProxyPy::start(Some("bob:pw")).await else { return };
    let ca = Ca::new("mamba proxy test CA");
    let origin = TlsServer::start(&ca, &["localhost"], None).await;
    let client = |proxy_url: &str| {
        HttpClient::builder()
            .tls_built_in_roots(false)
            .add_root_certificate(Certificate::from_pem(ca.pem().as_bytes()).unwrap())
            .proxy(Proxy::https(proxy_url).unwrap())
            .build()
    };
    assert_eq!(ask(&origin.url("localhost"), client(&proxy.url("bob:pw@"))).await.unwrap(), "secure");
    let e = ask(&origin.url("localhost"), client(&proxy.url("bob:nope@"))).await.unwrap_err();
    assert_eq!(e.status(), Some(407), "{e}");
    assert!(e.message().contains("refused a tunnel to localhost:"), "{e}");
    assert!(e.message().contains("the proxy http://[REDACTED]@127.0.0.1:"), "{e}");
}

/// NO_PROXY: listed hosts are reached directly, others through the proxy (a dead one here,
/// so going through it fails).
#[tokio::test]
async fn no_proxy_hosts_go_direct() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let origin = RawServer::fixed(Reply::json(200, OK_BODY)).await;
    let proxied = |no_proxy: &str| {
        HttpClient::builder().proxy(Proxy::all(&format!("http://{dead}")).unwrap().no_proxy(no_proxy)).build()
    };
    assert_eq!(ask(&origin.url(), proxied("localhost,127.0.0.0/8")).await.unwrap(), "via proxy");
    assert_eq!(ask(&origin.url(), proxied("127.0.0.1")).await.unwrap(), "via proxy");
    let e = ask(&origin.url(), proxied("example.com")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connect);
    assert!(e.message().contains("could not reach the proxy"), "{e}");
    // And with a live proxy in between, the same host not excepted goes through it.
    let Some(proxy) = ProxyPy::start(None).await else { return };
    assert_eq!(ask(&origin.url(), via(&proxy.url(""))).await.unwrap(), "via proxy");
    assert_eq!(origin.request_count(), 3);
}

/// A minimal SOCKS5 server (RFC 1928 CONNECT, RFC 1929 username/password): records the
/// target it was asked for, then relays.
async fn socks5_server(
    credentials: Option<(&'static str, &'static str)>,
) -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut head = [0u8; 2];
                c.read_exact(&mut head).await?;
                let mut methods = vec![0u8; head[1] as usize];
                c.read_exact(&mut methods).await?;
                match credentials {
                    None => c.write_all(&[5, 0]).await?,
                    Some((user, pass)) => {
                        c.write_all(&[5, 2]).await?;
                        let mut v = [0u8; 2];
                        c.read_exact(&mut v).await?;
                        let mut u = vec![0u8; v[1] as usize];
                        c.read_exact(&mut u).await?;
                        let mut pl = [0u8; 1];
                        c.read_exact(&mut pl).await?;
                        let mut p = vec![0u8; pl[0] as usize];
                        c.read_exact(&mut p).await?;
                        let ok = u == user.as_bytes() && p == pass.as_bytes();
                        c.write_all(&[1, if ok { 0 } else { 1 }]).await?;
                        if !ok {
                            return Ok::<(), std::io::Error>(());
                        }
                    }
                }
                let mut req = [0u8; 4];
                c.read_exact(&mut req).await?;
                let host = match req[3] {
                    1 => {
                        let mut a = [0u8; 4];
                        c.read_exact(&mut a).await?;
                        std::net::Ipv4Addr::from(a).to_string()
                    }
                    3 => {
                        let mut l = [0u8; 1];
                        c.read_exact(&mut l).await?;
                        let mut d = vec![0u8; l[0] as usize];
                        c.read_exact(&mut d).await?;
                        String::from_utf8_lossy(&d).into_owned()
                    }
                    _ => return Ok(()),
                };
                let mut p = [0u8; 2];
                c.read_exact(&mut p).await?;
                let port = u16::from_be_bytes(p);
                let _ = tx.send(format!("{host}:{port}"));
                let connect_to = if host == "localhost" { "127.0.0.1".to_owned() } else { host };
                let mut upstream = TcpStream::connect((connect_to.as_str(), port)).await?;
                c.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0]).await?;
                let _ = tokio::io::copy_bidirectional(&mut c, &mut upstream).await;
                Ok(())
            });
        }
    });
    (port, rx)
}

/// SOCKS5: `socks5://` resolves the name here and sends an address, `socks5h://` lets the
/// proxy resolve it; username/password from the URL; a refusal says it was the proxy.
#[tokio::test]
async fn socks5_and_socks5h() {
    let origin = RawServer::fixed(Reply::json(200, OK_BODY)).await;
    let url = origin.url().replace("127.0.0.1", "localhost");
    let (port, mut seen) = socks5_server(None).await;
    assert_eq!(ask(&url, via(&format!("socks5://127.0.0.1:{port}"))).await.unwrap(), "via proxy");
    assert_eq!(seen.recv().await.unwrap(), format!("127.0.0.1:{}", origin.addr.port()));
    assert_eq!(ask(&url, via(&format!("socks5h://127.0.0.1:{port}"))).await.unwrap(), "via proxy");
    assert_eq!(seen.recv().await.unwrap(), format!("localhost:{}", origin.addr.port()));

    let (port, _seen) = socks5_server(Some(("carol", "pw1"))).await;
    assert_eq!(ask(&url, via(&format!("socks5h://carol:pw1@127.0.0.1:{port}"))).await.unwrap(), "via proxy");
    let e = ask(&url, via(&format!("socks5h://carol:bad-pw@127.0.0.1:{port}"))).await.unwrap_err();
    assert!(e.message().contains("SOCKS5 proxy socks5h://[REDACTED]@127.0.0.1"), "{e}");
    assert!(!e.is_retryable(), "{e}");
    assert!(!format!("{e:?}").contains("bad-pw"));
}
