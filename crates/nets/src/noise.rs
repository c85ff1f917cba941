//! Gaussian noise drawn from a seeded RNG (candle's own randn is not reproducible from a seed).

use candle_core::{DType, Device, Result, Tensor};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// N(0, temperature^2) noise of shape (rows, cols). temperature = 1 is the plain sampler;
/// the evaluation protocol uses 0.5 for its candidates.
pub fn gaussian<R: Rng>(
    rng: &mut R,
    rows: usize,
    cols: usize,
    temperature: f64,
    dtype: DType,
    dev: &Device,
) -> Result<Tensor> {
    let n = rows * cols;
    match dtype {
        DType::F64 => {
            let v: Vec<f64> = (0..n)
                .map(|_| {
                    temperature
                        * <StandardNormal as Distribution<f64>>::sample(&StandardNormal, rng)
                })
                .collect();
            Tensor::from_vec(v, (rows, cols), dev)
        }
        _ => {
            let t = temperature as f32;
            let v: Vec<f32> = (0..n)
                .map(|_| t * <StandardNormal as Distribution<f32>>::sample(&StandardNormal, rng))
                .collect();
            Tensor::from_vec(v, (rows, cols), dev)?.to_dtype(dtype)
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn seeded_with_the_requested_spread() {
        let draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            gaussian(&mut rng, 200, 50, 0.5, DType::F32, &Device::Cpu).unwrap()
        };
        let (a, b) = (draw(1), draw(1));
        assert_eq!(
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        let var: f32 = a.sqr().unwrap().mean_all().unwrap().to_scalar().unwrap();
        assert!((var - 0.25).abs() < 0.01, "variance {var}");
        assert_ne!(
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            draw(2).flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
    }
}
