//! MeanFlow: (t, r) sampling, the flow behaviour-cloning loss and the samplers.

pub mod time;
