use clap::Parser;
use zkreceipt::cli::{Cli, run};

fn main() {
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
