//! Neural networks for OFQL on candle: tangent-carrying MLPs, time embeddings, velocity and Q
//! networks, Adam with saveable state, EMA and safetensors checkpoints.

pub mod init;
