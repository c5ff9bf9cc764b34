//! `ferret push`: send runs to an OpenTelemetry receiver over OTLP/HTTP
//! (protobuf), in batches, with retries on 429/502/503/504.

use crate::error::{CliError, CliResult};
use crate::fmt;
use ferret_analyze::analysis::Query;
use ferret_analyze::export::otlp::{self, proto, OtlpOptions};
use ferret_analyze::export::Options;
use prost::Message;
use std::io::Write;
use std::time::{Duration, Instant};

/// Send runs to an OpenTelemetry collector (or Jaeger, Tempo, a vendor)
/// over OTLP/HTTP protobuf, to ENDPOINT/v1/traces.
#[derive(clap::Args)]
#[command(
    after_help = "Exit codes: 0 every span accepted or reported rejected by the receiver, \
2 bad input or a receiver that refuses or cannot be reached, 1 internal error."
)]
pub struct Args {
    /// Trace files (native or ferret-io) or globs.
    #[arg(required = true, value_name = "DB")]
    pub db: Vec<String>,
    /// The receiver, e.g. http://localhost:4318 (`/v1/traces` is added
    /// unless the URL already ends with it).
    #[arg(long)]
    pub endpoint: String,
    /// An HTTP header for every request, K=V (e.g. an API key); may repeat.
    #[arg(long = "header", value_name = "K=V", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// Compress requests with gzip.
    #[arg(long)]
    pub gzip: bool,
    /// Spans per request.
    #[arg(long, default_value_t = otlp::DEFAULT_BATCH_SPANS)]
    pub batch_size: usize,
    /// service.name of the resources (default: the run label, else the
    /// file name).
    #[arg(long)]
    pub service_name: Option<String>,
    /// Run id (default: each file's latest run).
    #[arg(long)]
    pub run: Option<String>,
    /// Only spans starting at or after this time (as for analyze).
    #[arg(long)]
    pub since: Option<String>,
    /// Only spans starting before this time.
    #[arg(long)]
    pub until: Option<String>,
    /// Retries of one request on 429, 502, 503, 504 or a failed connection.
    #[arg(long, default_value_t = 5)]
    pub retries: u32,
    /// First retry delay in milliseconds (doubles each retry; a
    /// Retry-After header, up to 30 s, wins).
    #[arg(long, default_value_t = 500)]
    pub backoff_ms: u64,
    /// Seconds before one request times out.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// ferret-io log name holding the spans.
    #[arg(long, default_value = ferret_analyze::store::DEFAULT_NAMESPACE)]
    pub namespace: String,
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("expected K=V, got '{s}'")),
    }
}

/// What the receiver said about the spans sent.
#[derive(Default)]
struct Tally {
    requests: u64,
    sent: u64,
    rejected: u64,
    retries: u64,
    messages: Vec<String>,
}

struct Client {
    agent: ureq::Agent,
    url: String,
    headers: Vec<(String, String)>,
    gzip: bool,
    retries: u32,
    backoff: Duration,
}

fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4),
        flate2::Compression::fast(),
    );
    e.write_all(data)?;
    e.finish()
}

fn retryable(code: u16) -> bool {
    matches!(code, 429 | 502 | 503 | 504)
}

impl Client {
    /// Sends one request, retrying on 429/502/503/504 and failed
    /// connections; returns the partial-success report.
    fn send(
        &self,
        body: &[u8],
        tally: &mut Tally,
    ) -> CliResult<Option<proto::ExportTracePartialSuccess>> {
        let mut delay = self.backoff;
        let mut attempt = 0u32;
        loop {
            let mut req = self
                .agent
                .post(&self.url)
                .header("Content-Type", "application/x-protobuf");
            if self.gzip {
                req = req.header("Content-Encoding", "gzip");
            }
            for (k, v) in &self.headers {
                req = req.header(k.as_str(), v.as_str());
            }
            let (wait, why) = match req.send(body) {
                Ok(mut resp) => {
                    let code = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s.min(30)));
                    let body = resp
                        .body_mut()
                        .with_config()
                        .limit(1 << 20)
                        .read_to_vec()
                        .unwrap_or_default();
                    if (200..300).contains(&code) {
                        let r = proto::ExportTraceServiceResponse::decode(body.as_slice())
                            .ok()
                            .and_then(|r| r.partial_success);
                        return Ok(r);
                    }
                    let text = String::from_utf8_lossy(&body[..body.len().min(300)])
                        .trim()
                        .to_owned();
                    if !retryable(code) {
                        return Err(CliError::user(format!(
                            "{} refused the spans: HTTP {code}{}",
                            self.url,
                            if text.is_empty() {
                                String::new()
                            } else {
                                format!(": {text}")
                            }
                        )));
                    }
                    (retry_after.unwrap_or(delay), format!("HTTP {code}"))
                }
                Err(e) => (delay, e.to_string()),
            };
            if attempt >= self.retries {
                return Err(CliError::user(format!(
                    "cannot send to {}: {why} (after {} attempts)",
                    self.url,
                    attempt + 1
                )));
            }
            attempt += 1;
            tally.retries += 1;
            std::thread::sleep(wait);
            delay = (delay * 2).min(Duration::from_secs(30));
        }
    }
}

pub fn run(a: Args) -> CliResult {
    let bound = |s: &Option<String>| s.as_deref().map(fmt::parse_time).transpose();
    let query = Query {
        run: a.run.clone(),
        since: bound(&a.since).map_err(CliError::User)?,
        until: bound(&a.until).map_err(CliError::User)?,
        names: Vec::new(),
        ..Query::default()
    };
    let endpoint = a.endpoint.trim_end_matches('/');
    if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
        return Err(CliError::user(format!(
            "--endpoint must be an http:// URL, got '{}'",
            a.endpoint
        )));
    }
    if endpoint.starts_with("https://") {
        return Err(CliError::user(
            "this build of ferret sends plain http:// only; put a collector with TLS in front",
        ));
    }
    if a.batch_size == 0 {
        return Err(CliError::user("--batch-size must be at least 1"));
    }
    let url = if endpoint.ends_with("/v1/traces") {
        endpoint.to_owned()
    } else {
        format!("{endpoint}/v1/traces")
    };
    let files = super::expand_inputs(&a.db)?;
    let stores = super::open_stores(&files, &a.namespace)?;
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(a.timeout.max(1))))
        .build();
    let client = Client {
        agent: ureq::Agent::new_with_config(config),
        url: url.clone(),
        headers: a.headers.clone(),
        gzip: a.gzip,
        retries: a.retries,
        backoff: Duration::from_millis(a.backoff_ms),
    };
    let otlp_opts = OtlpOptions {
        service_name: a.service_name.clone(),
        batch_spans: a.batch_size,
        ..OtlpOptions::default()
    };
    let opts = Options {
        query: query.clone(),
        ..Options::default()
    };
    let total: u64 = stores
        .iter()
        .filter_map(|s| {
            let sel = ferret_analyze::analysis::select(s, &query).ok()?;
            sel.counters.map(|c| c.spans)
        })
        .sum();
    let bar = fmt::stderr_is_tty().then(|| {
        let b = if total > 0 && !query.has_window() {
            indicatif::ProgressBar::new(total)
        } else {
            indicatif::ProgressBar::new_spinner()
        };
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {pos}/{len} spans sent [{elapsed}] {per_sec}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let t = Instant::now();
    let mut tally = Tally::default();
    let mut failed: Option<CliError> = None;
    for (store, path) in stores.iter().zip(&files) {
        let r = otlp::for_each_batch(store, &opts, &otlp_opts, |data, n| {
            let raw = data.encode_to_vec();
            let body = if client.gzip { gzip(&raw)? } else { raw };
            match client.send(&body, &mut tally) {
                Ok(partial) => {
                    tally.requests += 1;
                    tally.sent += n;
                    if let Some(p) = partial {
                        tally.rejected += p.rejected_spans.max(0) as u64;
                        if !p.error_message.is_empty() && tally.messages.len() < 3 {
                            tally.messages.push(p.error_message);
                        }
                    }
                    if let Some(b) = &bar {
                        b.inc(n);
                    }
                    Ok(())
                }
                Err(e) => {
                    failed = Some(e);
                    Err(ferret_analyze::Error::Invalid("push stopped".into()))
                }
            }
        });
        if let Some(e) = failed.take() {
            if let Some(b) = &bar {
                b.abandon();
            }
            eprintln!(
                "ferret: {} spans were accepted before the failure ({} requests)",
                tally.sent, tally.requests
            );
            return Err(e);
        }
        match r {
            Ok(_) => {}
            Err(ferret_analyze::Error::UnknownRun { .. }) if files.len() > 1 => {
                eprintln!(
                    "{}: no run {}, skipped",
                    path.display(),
                    query.run.as_deref().unwrap_or("")
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let secs = t.elapsed().as_secs_f64();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "pushed {} spans from {} file(s) in {} requests to {url} in {secs:.2} s ({:.0} spans/s); \
         accepted {}, rejected {}, {} retries",
        tally.sent,
        files.len(),
        tally.requests,
        tally.sent as f64 / secs.max(1e-9),
        tally.sent - tally.rejected.min(tally.sent),
        tally.rejected,
        tally.retries,
    )?;
    for m in &tally.messages {
        writeln!(out, "receiver said: {m}")?;
    }
    Ok(())
}
