//! Training: the loop ([`trainer`]), the worker thread and its channel protocol
//! ([`worker`], [`events`]), the workbench's loading-and-training session ([`session`]),
//! per-row results as plain data ([`scoring`]) and checkpoints ([`checkpoint`]).

pub mod checkpoint;
pub mod events;
pub mod feedback;
pub mod scoring;
pub mod session;
pub mod trainer;
pub mod whole_file;
pub mod worker;

pub use events::{Control, DetectorKind, Divergence, LoadedData, Marked, TrainEvent};
pub use feedback::FeedbackLayer;
pub use scoring::{ranking, Explain, NoExplanation, Scoring};
pub use session::{spawn_session, ModelSource, SessionPlan};
pub use trainer::{default_epochs, member_of, SharedRoles, TrainConfig, Trainer, DEFAULT_MEMBERS};
pub use worker::{
    spawn, DataContext, DetectorPlan, Rescoring, Trained, WorkerHandle, WorkerOptions,
};
