//! What the user sees: data on stdout (a table, or `--json`), progress and notes on stderr.
//! Progress bars show only on a terminal and without `--quiet`.

use std::io::IsTerminal as _;
use std::sync::Arc;

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How output is written.
#[derive(Debug, Clone)]
pub struct Printer {
    /// `--json`: one JSON document on stdout.
    pub json: bool,
    /// `--quiet`: no progress, no notes.
    pub quiet: bool,
    bars: MultiProgress,
    tty: bool,
}

impl Printer {
    /// A printer; bars are drawn only on a terminal.
    pub fn new(json: bool, quiet: bool) -> Printer {
        let tty = std::io::stderr().is_terminal();
        let target = if quiet || !tty { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() };
        Printer { json, quiet, bars: MultiProgress::with_draw_target(target), tty }
    }

    /// A note on stderr (not with `--quiet`).
    pub fn note(&self, msg: impl AsRef<str>) {
        if self.quiet {
            return;
        }
        if self.tty {
            // Above the bars, so they are not torn.
            let _ = self.bars.println(msg.as_ref());
        } else {
            eprintln!("{}", msg.as_ref());
        }
    }

    /// A JSON value on stdout.
    pub fn json_out(&self, v: &impl serde::Serialize) -> anyhow::Result<()> {
        println!("{}", serde_json::to_string_pretty(v)?);
        Ok(())
    }

    /// A bar for one file transfer; none where nothing would be drawn (`--quiet`, or stderr
    /// not a terminal), so that thousands of small files cost no bars.
    pub fn transfer(&self, name: &str, size: u64) -> FileBar {
        if self.quiet || !self.tty {
            return FileBar(None);
        }
        let bar = self.bars.add(ProgressBar::new(size));
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:30!} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} eta {eta:>4} [{bar:25}]",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_message(name.to_owned());
        FileBar(Some(bar))
    }
}

/// One transfer's bar, if one is drawn; cleared when dropped.
pub struct FileBar(Option<ProgressBar>);

impl FileBar {
    /// The client library's progress callback feeding this bar.
    pub fn sink(&self) -> Option<Arc<dyn ocloud_client::Progress>> {
        let bar = self.0.clone()?;
        Some(Arc::new(move |n: u64| bar.inc(n)))
    }
}

impl Drop for FileBar {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// `1.2 MiB`.
pub fn human(bytes: u64) -> String {
    HumanBytes(bytes).to_string()
}
