use clap::Parser;
use zkreceipt::cli::{Cli, print_json, run};
use zkreceipt::error::Error;

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
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // A usage error of a script that asked for JSON is JSON on stdout too; help and
            // --version print as usual.
            if e.use_stderr() && std::env::args().any(|a| a == "--json") {
                // clap's first paragraph (the usage line and hints follow a blank line).
                let text = e.to_string();
                let para: Vec<&str> = text
                    .lines()
                    .take_while(|l| !l.trim().is_empty())
                    .map(str::trim)
                    .collect();
                let msg = para.join(" ");
                let msg = msg.strip_prefix("error: ").unwrap_or(&msg);
                print_json(&Error::Usage(msg.to_string()).to_json());
            }
            e.exit()
        }
    };
    let json = cli.json_output();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            if json {
                print_json(&e.to_json());
            }
            e.exit_code()
        }
    };
    std::process::exit(code);
}
