//! The detectors: dfdx networks, the mixture maths and losses. Nothing here knows about
//! terminals or files (beyond weight serialisation).

pub mod attribution;
pub mod config;
pub mod dagmm;
pub mod dense;
pub mod detector;
pub mod discriminator;
pub mod egbad;
pub mod ensemble;
pub mod gmm;
pub mod iforest;
pub mod parallel;
pub mod roles;

pub use attribution::{Attribution, ATTRIBUTION_STEPS};
pub use config::{DagmmConfig, Preset};
pub use dagmm::{Dagmm, Inference, StepLoss};
pub use detector::{
    DetailGroup, Detector, DetectorConfig, DetectorKind, Fit, FittedMeta, Network, RowDetail,
    StepReport,
};
pub use egbad::{Egbad, EgbadConfig, EgbadScore};
pub use ensemble::{Calibration, Ensemble, FittedDagmm, Member};
pub use gmm::{FactorisedGmm, GmmParams};
pub use roles::{BatchRoles, RowRole};
