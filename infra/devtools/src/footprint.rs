//! `orderflow-dev footprint`: each function's release binary, its size and its init time,
//! side by side with a hello-world `lambda_runtime` function built the same way.
//!
//! Init time is what a cold start costs before the first invocation: from the process
//! start to its first `GET /2018-06-01/runtime/invocation/next` on the Runtime API.
//! This command serves that API itself, on loopback, the way Lambda's does: it starts
//! the binary with the environment a Lambda sandbox sets (the runtime's variables,
//! credentials, the template's function environment), notes when the request arrives,
//! and stops the process there. No function calls AWS at init (the order API reads its
//! cursor key when a list first needs it); Secrets Manager's endpoint points at this
//! server, which answers anything but the Runtime API with a 404, so a function that
//! began to read a secret at init would fail here and be named. A binary that reports
//! an init error (`POST /runtime/init/error`) or exits is a failure, named with what it
//! said.
//!
//! The runs interleave: each round starts the baseline, then every binary once, so a
//! busy moment of the machine falls on all of them alike. The report gives the median
//! and the 90th percentile of each and the ratio of medians to the baseline's; it
//! fails when a binary is over the size budget or its init over the allowed ratio.

#![allow(
    clippy::float_arithmetic,
    clippy::cast_precision_loss,
    reason = "sizes in MB and ratios, for people"
)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Arguments of `orderflow-dev footprint`.
#[derive(Debug, clap::Args)]
pub struct FootprintArgs {
    /// The functions' binaries (a `bootstrap` is named by its directory, as `sam build`
    /// lays them out).
    #[arg(required = true)]
    pub binaries: Vec<PathBuf>,
    /// The hello-world baseline, built the same way (`hello-lambda`).
    #[arg(long)]
    pub baseline: PathBuf,
    /// Starts of each binary.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// The most a binary may weigh, in bytes.
    #[arg(long, default_value_t = 6_000_000)]
    pub max_bytes: u64,
    /// The most a binary's median init time may be, as a multiple of the baseline's.
    #[arg(long, default_value_t = 1.5)]
    pub max_init_ratio: f64,
    /// Write the report as JSON too.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// One binary, measured.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Measured {
    /// Its name: the file's, or its directory's for a `bootstrap`.
    pub name: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Median init time, in microseconds.
    pub init_p50_us: u64,
    /// 90th percentile init time, in microseconds.
    pub init_p90_us: u64,
    /// Median init time over the baseline's.
    pub init_ratio: f64,
    /// Size over the baseline's.
    pub size_ratio: f64,
}

/// The report: the baseline, then every binary.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Footprint {
    /// Starts of each binary.
    pub runs: u32,
    /// The baseline.
    pub baseline: Measured,
    /// The functions.
    pub binaries: Vec<Measured>,
    /// The size budget, in bytes.
    pub max_bytes: u64,
    /// The allowed init ratio.
    pub max_init_ratio: f64,
}

impl Footprint {
    /// What is over its budget, one sentence each.
    #[must_use]
    pub fn over(&self) -> Vec<String> {
        let mut over = Vec::new();
        for m in &self.binaries {
            if m.bytes > self.max_bytes {
                over.push(format!(
                    "{} weighs {} bytes, over the {} allowed",
                    m.name, m.bytes, self.max_bytes
                ));
            }
            if m.init_ratio > self.max_init_ratio {
                over.push(format!(
                    "{} takes {:.2}× the baseline's init time, over {:.2}×",
                    m.name, m.init_ratio, self.max_init_ratio
                ));
            }
        }
        over
    }
}

/// A binary's name in the report.
fn name_of(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    if file == "bootstrap"
        && let Some(dir) = path.parent().and_then(Path::file_name)
    {
        return dir.to_string_lossy().into_owned();
    }
    file
}

/// How a start ended.
#[derive(Debug, PartialEq, Eq)]
enum Start {
    /// The first `next` request arrived this long after the start.
    Ready(Duration),
    /// The runtime reported an init error with this body.
    InitError(String),
}

/// One HTTP request's line and body, read off a connection.
async fn read_request(stream: &mut tokio::net::TcpStream) -> std::io::Result<(String, String)> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).await? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length.min(64 * 1024)];
    reader.read_exact(&mut body).await?;
    Ok((
        line.trim().to_owned(),
        String::from_utf8_lossy(&body).into_owned(),
    ))
}

/// Serves the Runtime API until the first `next` request or an init error.
async fn serve_until_ready(listener: &TcpListener, started: Instant) -> std::io::Result<Start> {
    loop {
        let (mut stream, _) = listener.accept().await?;
        let (line, body) = read_request(&mut stream).await?;
        let arrived = started.elapsed();
        if line.starts_with("GET /2018-06-01/runtime/invocation/next") {
            return Ok(Start::Ready(arrived));
        }
        if line.starts_with("POST /2018-06-01/runtime/init/error") {
            let _ = stream
                .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}")
                .await;
            return Ok(Start::InitError(body));
        }
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
            .await;
    }
}

/// The environment of a Lambda sandbox, with the template's function environment.
fn sandbox_environment(
    name: &str,
    api: &str,
    functions: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = functions.clone();
    let secrets = format!("http://{api}");
    for (key, value) in [
        ("AWS_LAMBDA_RUNTIME_API", api),
        ("AWS_LAMBDA_FUNCTION_NAME", name),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/footprint"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "footprint"),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "footprint"),
        ("AWS_SECRET_ACCESS_KEY", "footprint"),
        ("AWS_SESSION_TOKEN", "footprint"),
        // Not answered: see the module's doc.
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", &secrets),
        ("_HANDLER", "bootstrap"),
        ("TZ", ":UTC"),
        ("LANG", "en_US.UTF-8"),
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ] {
        env.insert(key.to_owned(), value.to_owned());
    }
    env
}

/// Starts `binary` once and measures its init.
async fn start_once(
    binary: &Path,
    name: &str,
    functions: &BTreeMap<String, String>,
) -> anyhow::Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let api = listener.local_addr()?.to_string();
    let mut command = tokio::process::Command::new(binary);
    command
        .env_clear()
        .envs(sandbox_environment(name, &api, functions))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let outcome = tokio::select! {
        served = serve_until_ready(&listener, started) => served.map_err(anyhow::Error::from),
        status = child.wait() => Err(anyhow::anyhow!("{name} exited ({}) before asking for an invocation", status?)),
        () = tokio::time::sleep(Duration::from_secs(10)) => Err(anyhow::anyhow!("{name} did not ask for an invocation within 10 s")),
    };
    let _ = child.start_kill();
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = tokio::time::timeout(Duration::from_secs(1), pipe.read_to_string(&mut stderr)).await;
    }
    let _ = child.wait().await;
    match outcome {
        Ok(Start::Ready(elapsed)) => Ok(elapsed),
        Ok(Start::InitError(body)) => {
            anyhow::bail!("{name} reported an init error: {body} {}", stderr.trim())
        }
        // What failed first, then what the binary wrote, in one sentence.
        Err(e) if stderr.trim().is_empty() => Err(e),
        Err(e) => Err(anyhow::anyhow!("{e}; it wrote: {}", stderr.trim())),
    }
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let index = (sorted.len() * p).div_ceil(100).saturating_sub(1);
    sorted.get(index).copied().unwrap_or_default()
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Measures every binary beside the baseline.
///
/// # Errors
/// A binary that cannot be read or started, or fails its init.
pub async fn measure(args: &FootprintArgs) -> anyhow::Result<Footprint> {
    let template = orderflow_provision::Template::load(&orderflow_provision::Template::default_path())?;
    let functions = template.function_environment("footprint")?;
    let all: Vec<&PathBuf> = std::iter::once(&args.baseline).chain(&args.binaries).collect();
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); all.len()];
    for _ in 0..args.runs {
        for (i, binary) in all.iter().enumerate() {
            let elapsed = start_once(binary, &name_of(binary), &functions).await?;
            times[i].push(elapsed);
        }
    }
    let mut measured = Vec::new();
    for (binary, mut t) in all.iter().zip(times) {
        t.sort();
        let bytes = std::fs::metadata(binary)
            .with_context(|| format!("reading {}", binary.display()))?
            .len();
        measured.push((name_of(binary), bytes, percentile(&t, 50), percentile(&t, 90)));
    }
    let (_, base_bytes, base_p50, _) = measured[0].clone();
    let report = |(name, bytes, p50, p90): (String, u64, Duration, Duration)| Measured {
        name,
        bytes,
        init_p50_us: micros(p50),
        init_p90_us: micros(p90),
        init_ratio: p50.as_secs_f64() / base_p50.as_secs_f64().max(1e-9),
        size_ratio: bytes as f64 / base_bytes.max(1) as f64,
    };
    let mut all = measured.into_iter().map(report);
    let baseline = all.next().context("the baseline was measured")?;
    Ok(Footprint {
        runs: args.runs,
        baseline,
        binaries: all.collect(),
        max_bytes: args.max_bytes,
        max_init_ratio: args.max_init_ratio,
    })
}

/// The report as a table, for people.
#[must_use]
pub fn render(report: &Footprint) -> String {
    let mb = |bytes: u64| bytes as f64 / 1_000_000.0;
    let ms = |us: u64| us as f64 / 1000.0;
    let mut out = String::new();
    // The names' column fits the longest (sam's `PendingTimeoutFunction`).
    let width = std::iter::once(&report.baseline)
        .chain(&report.binaries)
        .map(|m| m.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(18);
    let _ = writeln!(
        out,
        "{:<width$} {:>9} {:>8}   {:>9} {:>9} {:>8}",
        "binary", "size MB", "× size", "init p50", "init p90", "× init"
    );
    for (i, m) in std::iter::once(&report.baseline)
        .chain(&report.binaries)
        .enumerate()
    {
        let flag = if i > 0 && (m.bytes > report.max_bytes || m.init_ratio > report.max_init_ratio) {
            "  over"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{:<width$} {:>9.2} {:>7.2}×   {:>6.1} ms {:>6.1} ms {:>7.2}×{flag}",
            m.name,
            mb(m.bytes),
            m.size_ratio,
            ms(m.init_p50_us),
            ms(m.init_p90_us),
            m.init_ratio,
        );
    }
    let _ = writeln!(
        out,
        "\n{} starts each, interleaved; budget {:.1} MB a binary and {:.2}× the baseline's median init",
        report.runs,
        mb(report.max_bytes),
        report.max_init_ratio
    );
    out
}

/// `orderflow-dev footprint`: measures, prints, writes the JSON.
///
/// # Errors
/// As [`measure`], or writing the report.
pub async fn run(args: &FootprintArgs) -> anyhow::Result<Footprint> {
    let report = measure(args).await?;
    std::io::Write::write_all(&mut std::io::stdout().lock(), render(&report).as_bytes())?;
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn a_bootstrap_is_named_by_its_directory() {
        assert_eq!(
            name_of(Path::new(".aws-sam/build/RelayFunction/bootstrap")),
            "RelayFunction"
        );
        assert_eq!(name_of(Path::new("target/release/relay")), "relay");
    }

    #[test]
    fn percentiles_pick_the_rank() {
        let t: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        assert_eq!(percentile(&t, 50), Duration::from_millis(5));
        assert_eq!(percentile(&t, 90), Duration::from_millis(9));
        assert_eq!(percentile(&t[..1], 90), Duration::from_millis(1));
    }

    fn measured(name: &str, bytes: u64, init_ratio: f64) -> Measured {
        Measured {
            name: name.into(),
            bytes,
            init_p50_us: 1000,
            init_p90_us: 1200,
            init_ratio,
            size_ratio: 1.0,
        }
    }

    #[test]
    fn over_budget_names_the_binary_and_the_limit() {
        let report = Footprint {
            runs: 3,
            baseline: measured("hello-lambda", 1_000_000, 1.0),
            binaries: vec![
                measured("relay", 5_000_000, 1.2),
                measured("order-api", 7_000_000, 1.0),
                measured("payment", 5_000_000, 1.7),
            ],
            max_bytes: 6_000_000,
            max_init_ratio: 1.5,
        };
        let over = report.over();
        assert_eq!(over.len(), 2, "{over:?}");
        assert!(over[0].starts_with("order-api weighs 7000000 bytes"), "{over:?}");
        assert!(over[1].starts_with("payment takes 1.70×"), "{over:?}");
        let table = render(&report);
        assert_eq!(
            table.lines().filter(|l| l.ends_with("over")).count(),
            2,
            "{table}"
        );
    }
}
