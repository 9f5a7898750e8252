//! The `dedupe` command: parse flags, hand them to the library, pick the
//! exit code. Everything else lives in the `dedupe` library crate.

mod act;
mod act_print;
mod args;
mod bars;
mod cache;
mod dirs;
mod docs;
mod find;
mod gen;
mod scan;
mod ui;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use clap::Parser;

use args::{Cli, Command};

/// What Ctrl-C runs: stops the current walk or search.
type StopFn = Box<dyn Fn() + Send>;

/// Ctrl-C: the first press stops the walk and pipeline (or `gen`) cleanly;
/// output already written stays valid.
#[derive(Clone, Default)]
pub struct Interrupt {
    fired: Arc<AtomicBool>,
    stopper: Arc<Mutex<Option<StopFn>>>,
}

impl Interrupt {
    fn install() -> Interrupt {
        let me = Interrupt::default();
        let handler = me.clone();
        // Without a handler Ctrl-C still kills the process; nothing is lost.
        let _ = ctrlc::set_handler(move || {
            handler.fired.store(true, Ordering::SeqCst);
            if let Some(stop) = handler
                .stopper
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .as_ref()
            {
                stop();
            }
        });
        me
    }

    /// Run `stop` when Ctrl-C is pressed.
    pub fn arm(&self, stop: impl Fn() + Send + 'static) {
        *self
            .stopper
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Box::new(stop));
    }

    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = cli.check() {
        e.exit();
    }
    let interrupt = Interrupt::install();
    let result = match cli.command {
        Some(Command::Scan(a)) => scan::run(a, &interrupt),
        Some(Command::Gen(a)) => gen::run(a, &interrupt),
        Some(Command::Find(a)) => find::run(a, &interrupt),
        Some(Command::Completions { shell }) => docs::completions(shell),
        Some(Command::Man) => docs::man(),
        Some(Command::Cache(c)) => cache::run(c),
        Some(Command::Remove(a)) => act::remove(a, &interrupt),
        Some(Command::Link(a)) => act::link(a, &interrupt),
        Some(Command::Move(a)) => act::move_(a, &interrupt),
        Some(Command::Trash(a)) => act::run(a, dedupe::act::Action::Trash, &interrupt),
        Some(Command::Clone(a)) => act::run(a, dedupe::act::Action::Clone, &interrupt),
        Some(Command::Undo(a)) => act::undo(a),
        Some(Command::Dirs(a)) => dirs::run(a, &interrupt),
        None => find::run(cli.find, &interrupt),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            ui::warn(format_args!("dedupe: {e:#}"));
            ExitCode::from(ui::exit::USAGE)
        }
    }
}
