//! How `hoist run` shows task events: one line each (`web hook_phase: ...`), except image
//! pulls, which on a terminal are a progress bar per task (indicatif) and elsewhere a line when
//! they start and one when they end.

use std::collections::HashMap;
use std::io::IsTerminal as _;

use hoist::TaskId;
use hoist::observe::{TaskEvent, TaskEventKind};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Prints task events as they come.
pub struct EventPrinter {
    enabled: bool,
    /// The bars, when standard output is a terminal.
    terminal: Option<MultiProgress>,
    pulls: HashMap<TaskId, ProgressBar>,
}

impl EventPrinter {
    /// A printer; `enabled` false prints nothing.
    pub fn new(enabled: bool) -> Self {
        EventPrinter {
            enabled,
            terminal: std::io::stdout().is_terminal().then(MultiProgress::new),
            pulls: HashMap::new(),
        }
    }

    /// Shows one event.
    pub fn print(&mut self, event: &TaskEvent) {
        if !self.enabled {
            return;
        }
        let Some(bars) = &self.terminal else {
            // Progress is for bars; a log gets the start and the end of a pull.
            if event.kind != TaskEventKind::ImagePullProgress {
                println!("{event}");
            }
            return;
        };
        match event.kind {
            TaskEventKind::ImagePullStarted => {
                let bar = bars.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template(
                        "{spinner} {prefix} pulling {msg} {bytes}/{total_bytes}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix(event.task.to_string());
                bar.set_message(event.message.clone());
                bar.enable_steady_tick(std::time::Duration::from_millis(120));
                self.pulls.insert(event.task.clone(), bar);
            }
            TaskEventKind::ImagePullProgress => {
                if let Some(bar) = self.pulls.get(&event.task) {
                    let number = |key: &str| event.details.get(key).and_then(|v| v.parse().ok());
                    if let Some(total) = number("total") {
                        bar.set_length(total);
                    }
                    if let Some(current) = number("current") {
                        bar.set_position(current);
                    }
                }
            }
            TaskEventKind::ImagePulled => {
                if let Some(bar) = self.pulls.remove(&event.task) {
                    bar.finish_and_clear();
                }
                let _ = bars.println(event.to_string());
            }
            _ => {
                let _ = bars.println(event.to_string());
            }
        }
    }

    /// Clears the bars of pulls that never ended.
    pub fn finish(&mut self) {
        for (_, bar) in self.pulls.drain() {
            bar.finish_and_clear();
        }
    }
}
