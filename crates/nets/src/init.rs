//! PyTorch's default `nn.Linear` initialisation: weight and bias uniform in
//! +-1/sqrt(fan_in). (candle-nn's `linear` uses Kaiming-normal instead.)

use candle_core::{DType, Device, Result, Tensor};
use rand::Rng;
use rand_distr::{Distribution, Uniform};

/// Weight (out, in) and bias (out) of a linear layer, drawn from `rng` so that a seed fixes them.
pub fn pytorch_linear<R: Rng>(
    fan_in: usize,
    fan_out: usize,
    dtype: DType,
    device: &Device,
    rng: &mut R,
) -> Result<(Tensor, Tensor)> {
    let bound = 1.0 / (fan_in as f64).sqrt();
    let dist = Uniform::new(-bound, bound).expect("bound is positive");
    let w: Vec<f64> = (0..fan_in * fan_out).map(|_| dist.sample(rng)).collect();
    let b: Vec<f64> = (0..fan_out).map(|_| dist.sample(rng)).collect();
    let w = Tensor::from_vec(w, (fan_out, fan_in), device)?.to_dtype(dtype)?;
    let b = Tensor::from_vec(b, fan_out, device)?.to_dtype(dtype)?;
    Ok((w, b))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn bounds_shapes_and_seeding() {
        let dev = Device::Cpu;
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (w, b) = pytorch_linear(256, 64, DType::F32, &dev, &mut rng).unwrap();
        assert_eq!(w.dims(), &[64, 256]);
        assert_eq!(b.dims(), &[64]);
        let w: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
        let bound = 1.0 / 16.0;
        assert!(w.iter().all(|x| x.abs() <= bound));
        // Uniform(-c, c) has variance c^2 / 3: check the spread is uniform, not normal or tiny.
        let var = w.iter().map(|x| x * x).sum::<f32>() / w.len() as f32;
        assert!((var - bound * bound / 3.0).abs() < 0.05 * bound * bound, "{var}");

        let mut again = ChaCha8Rng::seed_from_u64(7);
        let (w2, _) = pytorch_linear(256, 64, DType::F32, &dev, &mut again).unwrap();
        assert_eq!(w, w2.flatten_all().unwrap().to_vec1::<f32>().unwrap());
    }
}
