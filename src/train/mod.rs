//! Training: the loop ([`trainer`]), the worker thread and its channel protocol
//! ([`worker`], [`events`]), and checkpoints ([`checkpoint`]).

pub mod checkpoint;
pub mod events;
pub mod trainer;
pub mod worker;

pub use events::{Control, LossComponents, TrainEvent};
pub use trainer::{default_epochs, fit_mixture, MixtureFit, TrainConfig, Trainer};
pub use worker::{spawn, DataContext, Trained, WorkerHandle};
