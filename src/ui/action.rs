//! The whole vocabulary of things a user can ask the workbench to do. Keys map to these
//! (see [`super::keymap`]); the help screen and the footer describe them from here.

use serde::Deserialize;

/// One intent, independent of the key that triggered it.
/// Declaration order is the order of the help screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
pub enum Action {
    Quit,
    Help,
    /// Close the inspect view or the help screen.
    Back,
    Down,
    Up,
    PageDown,
    PageUp,
    Top,
    Bottom,
    Inspect,
    /// Inspect the next/previous row of the table without leaving the inspect view.
    NextRow,
    PreviousRow,
    /// Inspect view: explain by contribution to the score, or by reconstruction error.
    ToggleExplanation,
    MarkAnomaly,
    MarkNormal,
    MarkUnsure,
    ClearMark,
    NextUnmarked,
    CycleFilter,
    Search,
    SearchNext,
    ThresholdUp,
    ThresholdDown,
    Export,
    TogglePause,
    SaveCheckpoint,
    Rescore,
    /// Hold the table's ranking still while new scores arrive.
    ToggleFreeze,
    /// Side by side: order the table by the next detector's score.
    CycleRanking,
    /// Side by side: show the next detector's loss and second panes.
    CyclePanes,
    /// Show or hide loss series 0–3 (reconstruction, energy, penalty, total).
    ToggleSeries(usize),
    LogScale,
}

impl Action {
    /// What the action does, for the help screen.
    pub fn describe(self) -> &'static str {
        match self {
            Action::Quit => "quit (asks while training or when the model is not saved)",
            Action::Help => "show / hide this help",
            Action::Back => "close this view",
            Action::Down => "move down",
            Action::Up => "move up",
            Action::PageDown => "page down",
            Action::PageUp => "page up",
            Action::Top => "go to the top",
            Action::Bottom => "go to the bottom",
            Action::Inspect => "inspect the selected row (why is it flagged?)",
            Action::NextRow => "inspect the next row",
            Action::PreviousRow => "inspect the previous row",
            Action::ToggleExplanation => {
                "why flagged: contribution to the score ↔ reconstruction error"
            }
            Action::MarkAnomaly => "mark the row as an anomaly",
            Action::MarkNormal => "mark the row as normal",
            Action::MarkUnsure => "mark the row as unsure",
            Action::ClearMark => "clear the row's mark",
            Action::NextUnmarked => "jump to the next unmarked row",
            Action::CycleFilter => "filter: all → flagged → marked → unmarked",
            Action::Search => "search by row number or cell text",
            Action::SearchNext => "next search match",
            Action::ThresholdUp => "flag more rows (raise the contamination)",
            Action::ThresholdDown => "flag fewer rows (lower the contamination)",
            Action::Export => "export flagged and marked rows (CSV or .jsonl)",
            Action::TogglePause => "pause / resume training",
            Action::SaveCheckpoint => "save a checkpoint of the model",
            Action::Rescore => "refit without rows marked anomaly, rescore every row",
            Action::ToggleFreeze => "freeze / unfreeze the table's ranking",
            Action::CycleRanking => "side by side: rank the table by the other detector's score",
            Action::CyclePanes => "side by side: show the other detector's loss and score panes",
            Action::ToggleSeries(0) => "show / hide reconstruction loss",
            Action::ToggleSeries(1) => "show / hide sample energy",
            Action::ToggleSeries(2) => "show / hide covariance penalty",
            Action::ToggleSeries(_) => "show / hide total loss",
            Action::LogScale => "loss charts: linear / log scale",
        }
    }

    /// A word or two for the footer's key hints.
    pub fn hint(self) -> &'static str {
        match self {
            Action::Quit => "quit",
            Action::Help => "help",
            Action::Back => "back",
            Action::Inspect => "inspect",
            Action::MarkAnomaly => "anomaly",
            Action::MarkNormal => "normal",
            Action::MarkUnsure => "unsure",
            Action::ClearMark => "clear",
            Action::NextUnmarked => "next unmarked",
            Action::CycleFilter => "filter",
            Action::Search => "search",
            Action::ThresholdUp | Action::ThresholdDown => "threshold",
            Action::Export => "export",
            Action::TogglePause => "pause",
            Action::SaveCheckpoint => "save",
            Action::Rescore => "refit",
            Action::NextRow => "next row",
            Action::ToggleExplanation => "why: score / reconstruction",
            Action::CycleRanking => "rank by",
            Action::CyclePanes => "panes",
            _ => "",
        }
    }
}
