//! Neural networks for OFQL on candle: tangent-carrying MLPs, time embeddings, velocity and Q
//! networks, Adam with saveable state, EMA and safetensors checkpoints.

pub mod checkpoint;
pub mod critic;
pub mod embed;
pub mod gelu_mlp;
pub mod init;
pub mod kernels;
pub mod mlp;
pub mod noise;
pub mod noise_net;
pub mod optim;
pub mod params;
pub mod velocity;

pub use checkpoint::Checkpoint;
pub use critic::{CompiledDoubleQ, DoubleQ};
pub use embed::TimeEmbedding;
pub use gelu_mlp::GeluMlp;
pub use kernels::dense::CompiledMlp;
pub use mlp::{Kernels, Linear, Mlp};
pub use noise::gaussian;
pub use noise_net::{NoiseNet, NoiseNetConfig};
pub use optim::{Adam, AdamConfig, clip_grad_norm, cosine_lr, grad_norm};
pub use params::{NamedVars, copy_params, ema_update, soft_update};
pub use velocity::{VelocityConfig, VelocityNet};
