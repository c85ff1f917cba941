//! FQL's fused bias + GELU and LayerNorm kernels against candle's composed ops and against
//! central finite differences of their gradients.

use candle_core::{D, DType, Device, Tensor, Var};
use ofql_nets::kernels::gelu::{bias_gelu, gelu_scalar, layer_norm};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(shape: (usize, usize), scale: f64, rng: &mut ChaCha8Rng) -> Vec<f64> {
    (0..shape.0 * shape.1).map(|_| scale * (rng.random::<f64>() * 2.0 - 1.0)).collect()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    let d = (a.to_dtype(DType::F64).unwrap() - b.to_dtype(DType::F64).unwrap()).unwrap();
    d.abs().unwrap().max_all().unwrap().to_scalar().unwrap()
}

/// What the networks computed before the fused kernels: candle's ops.
fn layer_norm_composed(x: &Tensor, scale: &Tensor, bias: &Tensor, eps: f64) -> Tensor {
    let mean = x.mean_keepdim(D::Minus1).unwrap();
    let centred = x.broadcast_sub(&mean).unwrap();
    let var = centred.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
    let normed = centred.broadcast_div(&(var + eps).unwrap().sqrt().unwrap()).unwrap();
    normed.broadcast_mul(scale).unwrap().broadcast_add(bias).unwrap()
}

#[test]
fn forward_matches_composed_ops_in_f64_and_f32() {
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (n, h) = (9, 37);
    // Values out to +-12 reach both tails of GELU, where tanh saturates.
    let z = Tensor::from_vec(random((n, h), 12.0, &mut rng), (n, h), &dev).unwrap();
    let b = Tensor::from_vec(random((1, h), 1.0, &mut rng), h, &dev).unwrap();
    let want = z.broadcast_add(&b).unwrap().gelu().unwrap();
    assert!(max_abs_diff(&bias_gelu(&z, &b).unwrap(), &want) < 1e-13);
    let (z32, b32) = (z.to_dtype(DType::F32).unwrap(), b.to_dtype(DType::F32).unwrap());
    assert!(max_abs_diff(&bias_gelu(&z32, &b32).unwrap(), &want) < 1e-5);

    let x = Tensor::from_vec(random((n, h), 3.0, &mut rng), (n, h), &dev).unwrap();
    let scale = Tensor::from_vec(random((1, h), 2.0, &mut rng), h, &dev).unwrap();
    let want = layer_norm_composed(&x, &scale, &b, 1e-6);
    assert!(max_abs_diff(&layer_norm(&x, &scale, &b, 1e-6).unwrap(), &want) < 1e-12);
    let s32 = scale.to_dtype(DType::F32).unwrap();
    let got32 = layer_norm(&x.to_dtype(DType::F32).unwrap(), &s32, &b32, 1e-6).unwrap();
    assert!(max_abs_diff(&got32, &want) < 1e-5);
    // A constant row normalises to the bias (the variance is 0, eps keeps it finite).
    let flat = Tensor::ones((2, h), DType::F64, &dev).unwrap();
    let bias_rows = b.unsqueeze(0).unwrap().broadcast_as((2, h)).unwrap();
    assert!(max_abs_diff(&layer_norm(&flat, &scale, &b, 1e-6).unwrap(), &bias_rows) < 1e-12);
    assert_eq!(gelu_scalar(0.0f64), 0.0);
}

/// d/dp of sum(w * f(p)) by autodiff, against central differences, for every input p.
fn check_gradients(f: &dyn Fn(&[Tensor]) -> Tensor, inputs: &[Tensor], rng: &mut ChaCha8Rng) {
    let vars: Vec<Var> = inputs.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
    let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let y = f(&tensors);
    let (n, h) = y.dims2().unwrap();
    let w = Tensor::from_vec(random((n, h), 1.0, rng), (n, h), &Device::Cpu).unwrap();
    let loss = |y: &Tensor| (y * &w).unwrap().sum_all().unwrap();
    let grads = loss(&y).backward().unwrap();
    let eps = 1e-6;
    for (k, v) in vars.iter().enumerate() {
        let g: Vec<f64> = grads.get(v).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let base: Vec<f64> = inputs[k].flatten_all().unwrap().to_vec1().unwrap();
        for i in 0..base.len() {
            let eval = |delta: f64| {
                let mut p = base.clone();
                p[i] += delta;
                let mut args = inputs.to_vec();
                args[k] = Tensor::from_vec(p, inputs[k].shape(), &Device::Cpu).unwrap();
                loss(&f(&args)).to_scalar::<f64>().unwrap()
            };
            let fd = (eval(eps) - eval(-eps)) / (2.0 * eps);
            let tol = 1e-6 * (1.0 + fd.abs());
            assert!((g[i] - fd).abs() < tol, "input {k} element {i}: autodiff {} vs fd {fd}", g[i]);
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (n, h) = (5, 8);
    let z = Tensor::from_vec(random((n, h), 4.0, &mut rng), (n, h), &dev).unwrap();
    let b = Tensor::from_vec(random((1, h), 1.0, &mut rng), h, &dev).unwrap();
    check_gradients(&|p| bias_gelu(&p[0], &p[1]).unwrap(), &[z.clone(), b.clone()], &mut rng);
    let scale = Tensor::from_vec(random((1, h), 2.0, &mut rng), h, &dev).unwrap();
    check_gradients(
        &|p| layer_norm(&p[0], &p[1], &p[2], 1e-6).unwrap(),
        &[z.clone(), scale.clone(), b.clone()],
        &mut rng,
    );
    // The layer as FQL stacks it: LayerNorm(GELU(z + b)).
    check_gradients(
        &|p| layer_norm(&bias_gelu(&p[0], &p[1]).unwrap(), &p[2], &p[3], 1e-6).unwrap(),
        &[z, b.clone(), scale, b],
        &mut rng,
    );
}

#[test]
fn mismatched_shapes_are_clear_errors() {
    let dev = Device::Cpu;
    let z = Tensor::zeros((3, 4), DType::F32, &dev).unwrap();
    let wrong = Tensor::zeros(5, DType::F32, &dev).unwrap();
    let err = bias_gelu(&z, &wrong).unwrap_err().to_string();
    assert!(err.contains("bias") && err.contains("[5]"), "{err}");
    let err = layer_norm(&z, &wrong, &wrong, 1e-6).unwrap_err().to_string();
    assert!(err.contains("scale"), "{err}");
    let f64s = Tensor::zeros(4, DType::F64, &dev).unwrap();
    assert!(bias_gelu(&z, &f64s).is_err(), "mixed dtypes are refused");
}
