//! MeanFlow: (t, r) sampling, the flow behaviour-cloning loss, the samplers and the 2-D toy
//! experiment of the paper's Figure 4.

pub mod diffusion;
pub mod loss;
pub mod one_step;
pub mod sample;
pub mod time;
pub mod toy;

pub use diffusion::{
    CompiledDiffusion, DiffusionDraw, VpSchedule, diffusion_sample, noise_prediction_loss,
};
pub use loss::{
    LossStats, MeanFlowConfig, MeanFlowDraw, flow_matching_loss, meanflow_loss, meanflow_sq_error,
};
pub use one_step::OneStepPolicy;
pub use sample::{clamp_actions, euler_sample, mean_flow_sample, one_step_sample};
pub use time::{TimeDist, sample_t_r};
