//! D4RL's normalised score.

/// The returns that map to 0 and 100: a random policy's and an expert's (D4RL's constants,
/// e.g. hopper (-20.272305, 3234.3); the data crate's registry holds them).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScoreRef {
    pub min: f64,
    pub max: f64,
}

impl ScoreRef {
    /// 100 * (return - min) / (max - min).
    pub fn normalize(&self, ret: f64) -> f64 {
        100.0 * (ret - self.min) / (self.max - self.min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_min_to_0_and_max_to_100() {
        let hopper = ScoreRef { min: -20.272305, max: 3234.3 };
        assert_eq!(hopper.normalize(-20.272305), 0.0);
        assert!((hopper.normalize(3234.3) - 100.0).abs() < 1e-12);
        let mid = (hopper.min + hopper.max) / 2.0;
        assert!((hopper.normalize(mid) - 50.0).abs() < 1e-12);
    }
}
