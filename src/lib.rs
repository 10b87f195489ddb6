//! dagmm-tui: unsupervised anomaly detection on tabular data with DAGMM.
//!
//! `data` turns a CSV into a feature matrix, `model` holds the networks and the mixture
//! maths, `train` runs training (on a worker thread for the UI), `triage` ranks and writes
//! scores, `eval` measures detection quality (the paper's protocol and the unsupervised one),
//! `text` makes untrusted text safe to print, and `cli` is the command line.

pub mod bench;
pub mod cli;
pub mod data;
pub mod eval;
pub mod files;
pub mod hash;
pub mod logging;
pub mod model;
pub mod text;
pub mod train;
pub mod triage;
pub mod ui;
