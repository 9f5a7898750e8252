//! How actions print: steps as they happen, held files, the summary; in
//! text (escaped paths), JSON or JSON Lines (lossless paths).

use std::io::{self, Write};
use std::path::Path;

use dedupe::act::{self, Action, Held, Outcome, Plan, Step};
use dedupe::report::{escape, human_bytes, plural, JsonPath};
use serde_json::json;

use crate::args::FindFormat;

/// Prints steps and the summary in the chosen format.
pub struct Printer {
    format: FindFormat,
    verb: &'static str,
    dry_run: bool,
    steps: Vec<serde_json::Value>,
    out: io::BufWriter<io::Stdout>,
}

impl Printer {
    pub fn new(format: FindFormat, action: &Action, dry_run: bool) -> Printer {
        Printer {
            format,
            verb: action.name(),
            dry_run,
            steps: Vec::new(),
            out: io::BufWriter::new(io::stdout()),
        }
    }

    /// One step, planned (`outcome` none) or run; `went`: where a moved or
    /// trashed file went (a trash name is chosen when the step runs).
    pub fn step(&mut self, s: &Step, outcome: Option<&Outcome>, went: Option<&Path>) {
        let dest = went.or(s.dest.as_deref());
        let (state, why) = match outcome {
            None => ("planned", None),
            Some(Outcome::Done) => ("done", None),
            Some(Outcome::Skipped(k)) => ("skipped", Some(k.to_string())),
            Some(Outcome::Failed(e)) => ("failed", Some(e.clone())),
        };
        let v = json!({
            "type": "step", "group": s.group, "action": self.verb, "state": state,
            "keep": JsonPath::of(&s.keep).to_value(), "victim": JsonPath::of(&s.victim).to_value(),
            "dest": dest.map(|d| JsonPath::of(d).to_value()), "size": s.size, "why": why,
        });
        match self.format {
            FindFormat::Jsonl => {
                let _ = writeln!(self.out, "{v}");
            }
            FindFormat::Json => self.steps.push(v),
            _ => {
                let dest = dest
                    .map(|d| format!(" -> {}", escape(d)))
                    .unwrap_or_default();
                let why = why.map(|w| format!(": {w}")).unwrap_or_default();
                let _ = writeln!(
                    self.out,
                    "{state} {} {}{dest} (keep {}){why}",
                    self.verb,
                    escape(&s.victim),
                    escape(&s.keep)
                );
            }
        }
    }

    pub fn held(&mut self, plan: &Plan) {
        if !matches!(self.format, FindFormat::Text) {
            return;
        }
        for g in &plan.groups {
            for (f, why) in &g.held {
                let why = match why {
                    Held::Kept => "kept",
                    Held::Reference => "under a --reference directory",
                    Held::Protected => "matches --protect",
                    Held::SameFile => "the same file as the kept copy",
                    Held::SameRoot => "same root as the kept copy (--isolate)",
                    Held::InTrash => "in a trash can already",
                };
                let _ = writeln!(self.out, "left {}: {why}", escape(f));
            }
        }
    }

    pub fn summary(&mut self, plan: &Plan, r: Option<&act::ActReport>, journal: Option<&Path>) {
        let s = json!({
            "type": "summary", "action": self.verb, "dry_run": self.dry_run,
            "groups": plan.groups.len(), "planned": plan.steps.len(), "planned_bytes": plan.bytes(),
            "done": r.map(|r| r.done), "skipped": r.map(|r| r.skipped), "failed": r.map(|r| r.failed),
            "bytes": r.map(|r| r.bytes), "interrupted": r.is_some_and(|r| r.interrupted),
            "journal": journal.map(|j| JsonPath::of(j).to_value()),
        });
        match self.format {
            FindFormat::Jsonl => {
                let _ = writeln!(self.out, "{s}");
            }
            FindFormat::Json => {
                let doc = json!({"steps": std::mem::take(&mut self.steps), "summary": s});
                let _ = writeln!(self.out, "{doc}");
            }
            _ => {
                let _ = match r {
                    None => writeln!(
                        self.out,
                        "{}: {} {} in {}, {} {}",
                        if self.dry_run {
                            "dry run"
                        } else {
                            "nothing to do"
                        },
                        self.verb,
                        plural(plan.steps.len() as u64, "file", "files"),
                        plural(plan.groups.len() as u64, "group", "groups"),
                        // Moved and trashed copies still take their space.
                        if matches!(self.verb, "move" | "trash") {
                            "moving"
                        } else {
                            "freeing"
                        },
                        human_bytes(plan.bytes())
                    ),
                    Some(r) => writeln!(
                        self.out,
                        "{} done, {} skipped, {} failed; {} freed",
                        r.done,
                        r.skipped,
                        r.failed,
                        human_bytes(r.bytes)
                    ),
                };
            }
        }
        let _ = self.out.flush();
    }
}
