//! [`OpenAICompatibleBackend::health`]: reachability, authentication, readiness, the model
//! list, the server's kind and the latency.

use std::time::{Duration, Instant};

use http::Uri;

use super::{parse_models, OpenAICompatibleBackend, Shared};
use crate::detect;
use crate::health::HealthReport;
use crate::preset::{Preset, Probe};

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

impl Shared {
    fn root_uri(&self, path: &str) -> Option<Uri> {
        let scheme = self.chat_uri.scheme_str()?;
        let authority = self.chat_uri.authority()?;
        format!("{scheme}://{authority}{path}").parse().ok()
    }

    /// GET with a short timeout; the status and up to 64 KiB of body.
    async fn probe(&self, uri: &Uri) -> Option<(u16, Vec<u8>)> {
        let fut = async {
            let mut response = self.get(uri).await.ok()?;
            let bytes = response.body.read_to_end(PROBE_TIMEOUT, 64 * 1024).await.ok()?;
            Some((response.status, bytes))
        };
        tokio::time::timeout(PROBE_TIMEOUT, fut).await.ok().flatten()
    }
}

impl OpenAICompatibleBackend {
    /// Checks the server in detail: `GET {base_url}/models` (reachability, status, latency,
    /// key, model list), the preset's readiness probe, and probes that identify the kind of
    /// server (Ollama, vLLM, llama.cpp, LM Studio, SGLang, TGI, LocalAI, LiteLLM). Never fails:
    /// problems are in the report.
    pub async fn health(&self) -> HealthReport {
        let s = &*self.shared;
        let mut report = HealthReport::default();
        let started = Instant::now();
        let response = match s.get(&s.models_uri).await {
            Ok(response) => response,
            Err(e) => {
                report.error = Some(s.finish_error(e).to_string());
                return report;
            }
        };
        report.reachable = true;
        report.latency = Some(started.elapsed());
        let crate::http::Response { status, headers, mut body } = response;
        report.status = Some(status);
        let bytes = body.read_to_end(s.timeouts.idle, s.max_response_bytes).await.unwrap_or_default();
        match status {
            200..=299 => {
                report.authenticated = Some(true);
                if let Ok(models) = parse_models(&bytes) {
                    report.models = models.into_iter().map(|m| m.id).collect();
                    if !report.models.is_empty() {
                        report.model_listed = Some(report.models.contains(&s.model));
                    }
                }
            }
            401 | 403 => {
                report.authenticated = Some(false);
                report.error = Some(format!("the server rejected the API key (HTTP {status})"));
            }
            503 => {
                report.ready = Some(false);
                report.error = Some("the server is not ready (HTTP 503)".to_owned());
            }
            _ => {}
        }
        report.server_kind = detect::from_models(&headers, &bytes);
        if report.server_kind.is_none() && s.chat_uri.host().is_some_and(is_local) {
            for (path, preset, check) in detect::PROBES {
                let Some(uri) = s.root_uri(path) else { continue };
                if let Some((200, body)) = s.probe(&uri).await {
                    if serde_json::from_slice(&body).is_ok_and(|v| check(&v)) {
                        report.server_kind = Some(*preset);
                        break;
                    }
                }
            }
        }
        // Readiness: the probe of the configured preset, else of the detected one.
        let preset = if s.preset == Preset::Generic { report.server_kind.unwrap_or(Preset::Generic) } else { s.preset };
        if let Probe::Root(path) = preset.spec().probe {
            if let Some(uri) = s.root_uri(path) {
                match s.probe(&uri).await {
                    Some((200..=299, _)) => report.ready = report.ready.or(Some(true)),
                    Some((503, _)) => {
                        report.ready = Some(false);
                        report.error.get_or_insert_with(|| format!("{path} says the server is not ready (HTTP 503)"));
                    }
                    _ => {}
                }
            }
        }
        report
    }
}

/// Whether `host` is this machine or a private network: `localhost`, or an address that parses
/// as loopback, unspecified, private (10/8, 172.16/12, 192.168/16), link-local, or IPv6
/// unique-local (fc00::/7). Names are not resolved: `10.example.com` is not local.
fn is_local(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => {
            ip.is_loopback() || ip.is_unspecified() || ip.is_private() || ip.is_link_local()
        }
        Ok(std::net::IpAddr::V6(ip)) => {
            let first = ip.segments()[0];
            ip.is_loopback()
                || ip.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || ip.to_ipv4_mapped().is_some_and(|v4| is_local(&v4.to_string()))
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_local;

    #[test]
    fn local_hosts_are_parsed_not_matched_by_prefix() {
        for host in [
            "localhost",
            "127.0.0.1",
            "127.9.9.9",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.0.1",
            "::1",
            "[::1]",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_local(host), "{host}");
        }
        for host in [
            "10.example.com",
            "127.evil.com",
            "172.32.0.1",
            "172.15.0.1",
            "8.8.8.8",
            "api.openai.com",
            "2001:db8::1",
            "192.169.0.1",
        ] {
            assert!(!is_local(host), "{host}");
        }
    }
}
