//! Action element types. Gymnasium computes the control cost `w * sum(a^2)` in the action
//! array's dtype (NumPy 2 keeps a float32 sum float32 when multiplied by a Python float), so a
//! float32 policy pays a float32-rounded cost: this trait reproduces both.

/// An action element: `f64` (as a NumPy float64 array) or `f32` (float32, e.g. from a torch
/// policy).
pub trait ActionScalar: Copy + Send + Sync + 'static {
    fn to_f64(self) -> f64;
    fn is_finite(self) -> bool;
    /// `weight * np.sum(np.square(action))`, in NumPy's order (left to right for the short
    /// arrays here) and precision.
    fn ctrl_cost(weight: f64, action: &[Self]) -> f64;
}

impl ActionScalar for f64 {
    fn to_f64(self) -> f64 {
        self
    }
    fn is_finite(self) -> bool {
        f64::is_finite(self)
    }
    fn ctrl_cost(weight: f64, action: &[f64]) -> f64 {
        weight * action.iter().fold(0.0, |sum, a| sum + a * a)
    }
}

impl ActionScalar for f32 {
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn is_finite(self) -> bool {
        f32::is_finite(self)
    }
    fn ctrl_cost(weight: f64, action: &[f32]) -> f64 {
        let sum = action.iter().fold(0.0f32, |sum, a| sum + a * a);
        f64::from(weight as f32 * sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f64_cost_is_weighted_square_sum_of_the_unclipped_action() {
        // Out of range actions pay for their full size, though MuJoCo clamps the control.
        assert_eq!(f64::ctrl_cost(0.1, &[3.0, -4.0]), 0.1 * 25.0);
    }

    #[test]
    fn f32_cost_is_rounded_to_f32() {
        let a = [0.1f32, 0.2, 0.3];
        let exact: f64 = a.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() * 0.1;
        let got = f32::ctrl_cost(0.1, &a);
        assert_eq!(got, f64::from(got as f32), "result must be an f32 value");
        assert!((got - exact).abs() < 1e-7 && got != exact, "{got} vs {exact}");
    }
}
