//! The OFQL paper's D4RL table (normalised scores, mean of 3 seeds; docs/spec section 8), so
//! that reports can put our numbers beside it.

/// One row of the paper's table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PaperScores {
    pub dataset: &'static str,
    pub bc: f64,
    pub dql: f64,
    pub fql: f64,
    pub ofql: f64,
}

const fn row(dataset: &'static str, bc: f64, dql: f64, fql: f64, ofql: f64) -> PaperScores {
    PaperScores { dataset, bc, dql, fql, ofql }
}

/// The nine MuJoCo rows, in the paper's order.
pub const MUJOCO: [PaperScores; 9] = [
    row("halfcheetah-medium-expert-v2", 55.2, 96.8, 99.8, 95.2),
    row("hopper-medium-expert-v2", 52.5, 111.1, 86.2, 110.2),
    row("walker2d-medium-expert-v2", 107.5, 110.1, 100.5, 113.0),
    row("halfcheetah-medium-v2", 42.6, 51.1, 60.1, 63.8),
    row("hopper-medium-v2", 52.9, 90.5, 74.5, 103.6),
    row("walker2d-medium-v2", 75.3, 87.0, 72.7, 87.4),
    row("halfcheetah-medium-replay-v2", 36.6, 47.8, 51.1, 51.2),
    row("hopper-medium-replay-v2", 18.1, 101.3, 85.4, 101.9),
    row("walker2d-medium-replay-v2", 26.0, 95.5, 82.1, 106.2),
];

pub fn lookup(dataset: &str) -> Option<&'static PaperScores> {
    MUJOCO.iter().find(|r| r.dataset == dataset)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paper's MuJoCo averages (BC, DQL, FQL, OFQL): a check of the rows' transcription.
    const MUJOCO_AVERAGE: PaperScores = row("MuJoCo average", 51.9, 87.9, 79.2, 92.5);

    #[test]
    fn averages_match_the_rows() {
        let mean = |f: fn(&PaperScores) -> f64| MUJOCO.iter().map(f).sum::<f64>() / 9.0;
        // The paper rounds each entry to 0.1, so its averages agree to about 0.1.
        assert!((mean(|r| r.bc) - MUJOCO_AVERAGE.bc).abs() < 0.1);
        assert!((mean(|r| r.dql) - MUJOCO_AVERAGE.dql).abs() < 0.1);
        assert!((mean(|r| r.fql) - MUJOCO_AVERAGE.fql).abs() < 0.1);
        assert!((mean(|r| r.ofql) - MUJOCO_AVERAGE.ofql).abs() < 0.1);
    }
}
