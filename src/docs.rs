//! Shell completions and the man page, generated from the clap
//! definitions so they never drift from the flags.

use std::io::{self, Write};

use clap::CommandFactory;

use crate::args::Cli;
use crate::ui::exit;

/// `dedupe completions SHELL`.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "dedupe", &mut out);
    write_out(&out)
}

/// `dedupe man`: the top-level page, then each command's options, so
/// `man dedupe` shows everything in one place.
pub fn man() -> anyhow::Result<u8> {
    let mut out = Vec::new();
    let cmd = Cli::command();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    for sub in cmd.get_subcommands() {
        if matches!(sub.get_name(), "help" | "completions" | "man") {
            continue;
        }
        writeln!(out, ".SH \"DEDUPE {}\"", sub.get_name().to_uppercase())?;
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            // Roff: a backslash starts an escape, a leading dot a request.
            let text = about.to_string().replace('\\', "\\e");
            for line in text.lines() {
                let line = line
                    .strip_prefix('.')
                    .map_or(line.to_string(), |l| format!("\\&.{l}"));
                writeln!(out, "{line}")?;
            }
        }
        clap_mangen::Man::new(sub.clone()).render_options_section(&mut out)?;
    }
    write_out(&out)
}

fn write_out(bytes: &[u8]) -> anyhow::Result<u8> {
    let mut stdout = io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(exit::OK),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(exit::OK),
        Err(e) => {
            crate::ui::warn(format_args!("dedupe: cannot write output: {e}"));
            Ok(exit::OUTPUT)
        }
    }
}
