//! The terminal workbench. [`app`] holds state and turns messages into effects, [`panes`]
//! draw it, [`keymap`] and [`action`] turn keys into intents, [`theme`] colours it, and
//! [`runtime`] owns the terminal, the threads and the channel that joins them. The UI
//! learns about training only through `TrainEvent`s; it never touches dfdx.

pub mod action;
pub mod app;
pub mod histogram;
pub mod keymap;
pub mod panes;
pub mod prompt;
pub mod ranked;
pub mod runtime;
pub mod sgr;
pub mod text;
pub mod theme;

pub use runtime::{run, WorkbenchOptions};
