//! The progress bar of a long `dry-run`: on stderr, only on a terminal, only
//! once the scan has taken more than a moment. It only displays what the
//! scan reports through `bulk::Progress`.

use std::cell::Cell;
use std::io::IsTerminal;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::scan::bulk;
use crate::scan::input::Input;

/// The progress bar: on stderr, only on a terminal, only once the scan has
/// taken more than a moment.
pub(super) struct Bar {
    names: Vec<String>,
    total: Option<u64>,
    consumed: Rc<Cell<u64>>,
    current: usize,
    started: Instant,
    enabled: bool,
    bar: Option<indicatif::ProgressBar>,
}

const BAR_DELAY: Duration = Duration::from_millis(300);

impl Bar {
    pub(super) fn new(inputs: &[Input], consumed: Rc<Cell<u64>>) -> Bar {
        let total = inputs.iter().map(Input::size).sum::<Option<u64>>();
        Bar {
            names: inputs.iter().map(|i| i.name.clone()).collect(),
            total,
            consumed,
            current: 0,
            started: Instant::now(),
            enabled: std::io::stderr().is_terminal(),
            bar: None,
        }
    }

    pub(super) fn current_name(&self) -> &str {
        self.names.get(self.current).map_or("input", String::as_str)
    }

    pub(super) fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl bulk::Progress for Bar {
    fn input_started(&mut self, index: usize) {
        self.current = index;
    }

    fn mapped(&mut self, bytes: u64) {
        self.consumed.set(self.consumed.get() + bytes);
        self.advanced();
    }

    fn advanced(&mut self) {
        if !self.enabled {
            return;
        }
        if self.bar.is_none() {
            if self.started.elapsed() < BAR_DELAY {
                return;
            }
            let bar = match self.total {
                Some(t) => indicatif::ProgressBar::new(t).with_style(
                    indicatif::ProgressStyle::with_template(
                        "{bar:25} {binary_bytes}/{binary_total_bytes} {wide_msg}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                ),
                None => indicatif::ProgressBar::new_spinner().with_style(
                    indicatif::ProgressStyle::with_template("{spinner} {binary_bytes} {wide_msg}")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                ),
            };
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            self.bar = Some(bar);
        }
        if let Some(b) = &self.bar {
            let done = self.consumed.get();
            let rate =
                done as f64 / self.started.elapsed().as_secs_f64().max(1e-3) / (1 << 20) as f64;
            b.set_position(done);
            b.set_message(format!("{rate:.0} MiB/s  {}", self.current_name()));
        }
    }
}
