//! The MLP's layers are one autodiff node each (`x W^T` with a hand-written backward):
//! their gradients match candle's own autodiff of the same function and central finite
//! differences, and the frozen forward gives the input's gradient without the weights'.

use candle_core::{DType, Device, Tensor, Var};
use ofql_nets::Mlp;
use ofql_nets::kernels::mish::mish_unfused;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn setup() -> (Mlp, Var, Tensor) {
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mlp = Mlp::new(&[5, 7, 6, 3], DType::F64, &dev, &mut rng).unwrap();
    let x = Var::from_tensor(&Tensor::randn(0f64, 1.0, (4, 5), &dev).unwrap()).unwrap();
    let c = Tensor::randn(0f64, 1.0, (4, 3), &dev).unwrap();
    (mlp, x, c)
}

/// sum(c * MLP(x)) from candle's plain ops (matmul on the transposed weight, composed Mish).
fn reference_loss(mlp: &Mlp, x: &Tensor, c: &Tensor) -> Tensor {
    let last = mlp.layers().len() - 1;
    let mut h = x.clone();
    for (i, layer) in mlp.layers().iter().enumerate() {
        let z = h.matmul(&layer.weight.as_tensor().t().unwrap()).unwrap();
        let z = z.broadcast_add(layer.bias.as_tensor()).unwrap();
        h = if i == last { z } else { mish_unfused(&z).unwrap() };
    }
    (h * c).unwrap().sum_all().unwrap()
}

fn loss(mlp: &Mlp, x: &Tensor, c: &Tensor) -> Tensor {
    (mlp.forward(x).unwrap() * c).unwrap().sum_all().unwrap()
}

fn scalar(t: &Tensor) -> f64 {
    t.to_scalar::<f64>().unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    scalar(&(a - b).unwrap().abs().unwrap().max_all().unwrap())
}

#[test]
fn layer_gradients_match_candle_autodiff_and_finite_differences() {
    let (mlp, x, c) = setup();
    let ours = loss(&mlp, x.as_tensor(), &c).backward().unwrap();
    let theirs = reference_loss(&mlp, x.as_tensor(), &c).backward().unwrap();
    let mut vars: Vec<&Var> = vec![&x];
    for layer in mlp.layers() {
        vars.push(&layer.weight);
        vars.push(&layer.bias);
    }
    for var in &vars {
        let (g, r) = (ours.get(var.as_tensor()).unwrap(), theirs.get(var.as_tensor()).unwrap());
        assert_eq!(g.dims(), r.dims());
        assert!(max_diff(g, r) < 1e-12, "gradient differs from candle's: {}", max_diff(g, r));
    }
    // Central differences on every entry of the input and of each weight.
    let eps = 1e-6;
    for var in vars.iter().step_by(2) {
        let g: Vec<f64> =
            ours.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let base: Vec<f64> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        for (i, &gi) in g.iter().enumerate() {
            let at = |d: f64| {
                let mut v = base.clone();
                v[i] += d;
                var.set(&Tensor::from_vec(v, var.dims(), &Device::Cpu).unwrap()).unwrap();
                scalar(&loss(&mlp, x.as_tensor(), &c))
            };
            let fd = (at(eps) - at(-eps)) / (2.0 * eps);
            var.set(&Tensor::from_vec(base.clone(), var.dims(), &Device::Cpu).unwrap()).unwrap();
            assert!((fd - gi).abs() < 1e-6 * (1.0 + fd.abs()), "entry {i}: {gi} vs {fd}");
        }
    }
}

#[test]
fn frozen_forward_gives_the_input_gradient_only() {
    let (mlp, x, c) = setup();
    let plain = loss(&mlp, x.as_tensor(), &c).backward().unwrap();
    let y = mlp.forward_frozen(x.as_tensor()).unwrap();
    let frozen = (y * &c).unwrap().sum_all().unwrap().backward().unwrap();
    let (gf, gp) = (frozen.get(x.as_tensor()).unwrap(), plain.get(x.as_tensor()).unwrap());
    assert!(max_diff(gf, gp) < 1e-12);
    for layer in mlp.layers() {
        assert!(frozen.get(layer.weight.as_tensor()).is_none(), "a frozen weight got a gradient");
        assert!(frozen.get(layer.bias.as_tensor()).is_none(), "a frozen bias got a gradient");
    }
}
