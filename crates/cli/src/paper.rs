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

/// The AntMaze and Kitchen rows (BC has no AntMaze numbers in the paper: NaN). The paper
/// trained on D4RL's files; this tool scores Minari's regenerations of them (`lookup` maps
/// `D4RL/antmaze/medium-play-v1` to `antmaze-medium-play-v2`): not the same data.
pub const ANTMAZE_KITCHEN: [PaperScores; 6] = [
    row("antmaze-medium-play-v2", f64::NAN, 76.6, 78.0, 88.1),
    row("antmaze-large-play-v2", f64::NAN, 46.4, 84.0, 84.0),
    row("antmaze-medium-diverse-v2", f64::NAN, 78.6, 71.0, 90.2),
    row("antmaze-large-diverse-v2", f64::NAN, 56.6, 83.0, 76.1),
    row("kitchen-mixed-v0", 51.5, 62.6, 50.5, 69.0),
    row("kitchen-partial-v0", 38.0, 60.5, 55.7, 65.0),
];

/// The paper's row for a dataset: D4RL's name, or Minari's id of the regenerated dataset.
pub fn lookup(dataset: &str) -> Option<&'static PaperScores> {
    let name = paper_name(dataset);
    MUJOCO.iter().chain(&ANTMAZE_KITCHEN).find(|r| r.dataset == name)
}

/// Whether `dataset` is one of the nine MuJoCo rows (the paper's average is over those).
pub fn is_mujoco(dataset: &str) -> bool {
    MUJOCO.iter().any(|r| r.dataset == dataset)
}

/// The paper's position of a dataset's row (others after them).
pub fn order(dataset: &str) -> usize {
    let name = paper_name(dataset);
    MUJOCO.iter().chain(&ANTMAZE_KITCHEN).position(|r| r.dataset == name).unwrap_or(usize::MAX)
}

/// Minari's regenerated ids -> the D4RL names the paper reported.
fn paper_name(dataset: &str) -> String {
    if let Some(rest) = dataset.strip_prefix("D4RL/antmaze/") {
        return format!("antmaze-{}-v2", rest.trim_end_matches("-v1"));
    }
    if let Some(rest) = dataset.strip_prefix("D4RL/kitchen/") {
        return format!("kitchen-{}-v0", rest.trim_end_matches("-v2"));
    }
    dataset.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paper's MuJoCo averages (BC, DQL, FQL, OFQL): a check of the rows' transcription.
    const MUJOCO_AVERAGE: PaperScores = row("MuJoCo average", 51.9, 87.9, 79.2, 92.5);

    #[test]
    fn minari_ids_find_the_papers_d4rl_rows() {
        assert_eq!(lookup("D4RL/antmaze/large-play-v1").unwrap().ofql, 84.0);
        assert_eq!(lookup("D4RL/kitchen/partial-v2").unwrap().dql, 60.5);
        assert_eq!(lookup("antmaze-medium-diverse-v2").unwrap().ofql, 90.2);
        assert!(lookup("D4RL/antmaze/umaze-v1").is_none(), "the paper has no umaze row");
        assert!(is_mujoco("hopper-medium-v2") && !is_mujoco("D4RL/kitchen/mixed-v2"));
        assert!(order("hopper-medium-v2") < order("D4RL/kitchen/mixed-v2"));
    }

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
