use clap::Parser;
use zkreceipt::cli::{Cli, run};

fn main() {
    // Output into a closed pipe (`zkreceipt model X | head -1`) ends the process quietly, as it
    // does other Unix tools: Rust ignores SIGPIPE, and println! then panics on the write error.
    #[cfg(unix)]
    // SAFETY: at the start of main, before any thread; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // color-eyre renders panics readably; our own errors carry their exit code (design.md §2).
    let _ = color_eyre::install();
    // Panics caught inside tract calls become errors; their reports stay quiet.
    zkreceipt::panics::install_hook();
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
