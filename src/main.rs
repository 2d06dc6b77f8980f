//! The camfleet command line. Output for people goes to stdout; logs go to
//! stderr through tracing (RUST_LOG=camfleet=debug for more).

use clap::Parser;

/// mimalloc: the client allocates many small, short-lived buffers per camera
/// answer; glibc malloc/free were ~11% of adopt CPU (BENCHMARKS.md).
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let _ = camfleet::cli::PROCESS_START.set(std::time::Instant::now());
    // Before the runtime's threads start allocating (cli::memory says why).
    let small_pages = camfleet::cli::memory::small_pages_only();
    let cli = camfleet::cli::Cli::parse();
    // `camfleet discover | head` should end quietly, as Unix tools do; the
    // servers (serve, demo, simulate) keep Rust's default of ignoring
    // SIGPIPE, or a client hanging up mid-answer would kill them.
    #[cfg(unix)]
    if cli.is_short_lived() {
        // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("camfleet=info,warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format() {
        // One JSON object a line, for journald/Loki/Elastic.
        camfleet::config::LogFormat::Json => logs.json().flatten_event(true).init(),
        camfleet::config::LogFormat::Text => logs.init(),
    }
    if let Err(e) = small_pages {
        tracing::warn!(error = %e, "could not turn transparent huge pages off: resident memory may include huge pages the heap does not use");
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(camfleet::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<camfleet::cli::PartialFailure>().is_some() => {
            eprintln!("partly failed: {e:#}");
            std::process::ExitCode::from(camfleet::cli::PARTIAL_EXIT_CODE)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
