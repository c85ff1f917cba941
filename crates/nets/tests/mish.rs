//! The fused Mish kernels against candle's composed ops and against finite differences.

use candle_core::{DType, Device, Tensor, Var};
use ofql_nets::kernels::mish::{
    MishFloat, bias_act_tangent, bias_mish, mish, mish_grad_scalar, mish_grad_unfused, mish_scalar,
    mish_unfused,
};

fn grid() -> Vec<f64> {
    // Dense over the interesting range, plus both clamp boundaries and their neighbours.
    let mut xs: Vec<f64> = (0..=4000).map(|i| -20.0 + 40.0 * i as f64 / 4000.0).collect();
    xs.extend([-80.5, -80.0, -79.5, -30.0, 19.99, 20.0, 20.01, 30.0, 0.0, 1e-7, -1e-7]);
    xs
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar()
        .unwrap()
}

#[test]
fn forward_matches_composed_ops_in_f64_and_f32() {
    let x = Tensor::new(grid(), &Device::Cpu).unwrap();
    assert!(max_abs_diff(&mish(&x).unwrap(), &mish_unfused(&x).unwrap()) < 1e-13);
    let x32 = x.to_dtype(DType::F32).unwrap();
    let fused = mish(&x32).unwrap().to_dtype(DType::F64).unwrap();
    // f32 rounding of a value up to 30 in size: a few ulps.
    assert!(max_abs_diff(&fused, &mish_unfused(&x).unwrap()) < 1e-5);
    let rel = ((fused - mish_unfused(&x).unwrap()).unwrap().abs().unwrap()
        / (mish_unfused(&x).unwrap().abs().unwrap() + 1e-6).unwrap())
    .unwrap()
    .max_all()
    .unwrap()
    .to_scalar::<f64>()
    .unwrap();
    assert!(rel < 1e-5, "relative error {rel}");
}

#[test]
fn f32_polynomial_exp_is_accurate() {
    let mut worst = 0.0f64;
    for i in 0..=200_000 {
        let x = -87.0 + 107.0 * i as f64 / 200_000.0;
        let got = (x as f32).exp_vec() as f64;
        let want = (x as f32 as f64).exp();
        worst = worst.max((got - want).abs() / want);
    }
    assert!(worst < 3e-7, "worst relative error {worst}");
}

#[test]
fn scalar_gradient_matches_finite_differences() {
    for x in grid() {
        let h = 1e-5;
        let fd = (mish_scalar(x + h) - mish_scalar(x - h)) / (2.0 * h);
        let g = mish_grad_scalar(x);
        // Away from the clamp points the function is smooth (C-infinity).
        if (x - 20.0).abs() > 1e-3 && (x + 80.0).abs() > 1e-3 {
            assert!((fd - g).abs() < 1e-8, "x={x}: fd {fd} vs analytic {g}");
        }
    }
}

#[test]
fn backward_matches_composed_ops_and_finite_differences() {
    let xs = grid();
    let w: Vec<f64> = (0..xs.len()).map(|i| ((i * 37) % 11) as f64 / 5.0 - 1.0).collect();
    let w = Tensor::new(w, &Device::Cpu).unwrap();
    let grad_of = |fused: bool| {
        let x = Var::new(xs.as_slice(), &Device::Cpu).unwrap();
        let y = if fused { mish(&x).unwrap() } else { mish_unfused(&x).unwrap() };
        let loss = (y * &w).unwrap().sum_all().unwrap();
        loss.backward().unwrap().get(x.as_tensor()).unwrap().clone()
    };
    let (fused, composed) = (grad_of(true), grad_of(false));
    assert!(max_abs_diff(&fused, &composed) < 1e-12);
    // And the closed form agrees with finite differences of the function (weights included).
    let fused: Vec<f64> = fused.to_vec1().unwrap();
    let w: Vec<f64> = w.to_vec1().unwrap();
    for ((x, g), w) in xs.iter().zip(&fused).zip(&w) {
        if (x - 20.0).abs() > 1e-3 && (x + 80.0).abs() > 1e-3 {
            let h = 1e-5;
            let fd = w * (mish_scalar(x + h) - mish_scalar(x - h)) / (2.0 * h);
            assert!((fd - g).abs() < 1e-8, "x={x}");
        }
    }
}

#[test]
fn stable_for_large_inputs_where_composed_ops_give_nan() {
    let xs = [-1e30f32, -1000.0, -100.0, 95.0, 100.0, 1000.0, 1e30];
    let x = Var::new(&xs, &Device::Cpu).unwrap();
    let y: Vec<f32> = mish(&x).unwrap().to_vec1().unwrap();
    let g = mish(&x).unwrap().sum_all().unwrap().backward().unwrap();
    let g: Vec<f32> = g.get(x.as_tensor()).unwrap().to_vec1().unwrap();
    for ((x, y), g) in xs.iter().zip(&y).zip(&g) {
        assert!(y.is_finite() && g.is_finite(), "x={x}: y={y} g={g}");
        if *x > 0.0 {
            assert_eq!(*y, *x);
            assert_eq!(*g, 1.0);
        } else {
            assert!(y.abs() < 1e-30 && g.abs() < 1e-30, "x={x}: y={y} g={g}");
        }
    }
    // The composed formula really does fail here (this is why the kernel exists).
    let composed = mish_unfused(&x).unwrap().sum_all().unwrap().backward().unwrap();
    let composed: Vec<f32> = composed.get(x.as_tensor()).unwrap().to_vec1().unwrap();
    assert!(composed.iter().any(|g| g.is_nan()));
}

#[test]
fn bias_mish_forward_and_both_gradients_match_composed_ops() {
    let dev = Device::Cpu;
    let z: Vec<f64> = (0..5 * 7).map(|i| ((i * 13) % 17) as f64 / 2.0 - 4.0).collect();
    let b: Vec<f64> = (0..7).map(|i| i as f64 / 3.0 - 1.0).collect();
    let w = Tensor::new((0..35).map(|i| (i % 4) as f64 - 1.5).collect::<Vec<_>>(), &dev)
        .unwrap()
        .reshape((5, 7))
        .unwrap();
    let run = |fused: bool| {
        let zv = Var::from_vec(z.clone(), (5, 7), &dev).unwrap();
        let bv = Var::from_vec(b.clone(), 7, &dev).unwrap();
        let y = if fused {
            bias_mish(&zv, &bv).unwrap()
        } else {
            mish_unfused(&zv.broadcast_add(&bv).unwrap()).unwrap()
        };
        let grads = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
        (y, grads.get(&zv).unwrap().clone(), grads.get(&bv).unwrap().clone())
    };
    let (y1, gz1, gb1) = run(true);
    let (y2, gz2, gb2) = run(false);
    assert!(max_abs_diff(&y1, &y2) < 1e-13);
    assert!(max_abs_diff(&gz1, &gz2) < 1e-12);
    assert!(max_abs_diff(&gb1, &gb2) < 1e-12);
}

#[test]
fn tangent_step_matches_composed_derivative() {
    let dev = Device::Cpu;
    let (rows, h) = (6, 5);
    let z: Vec<f64> = (0..rows * h).map(|i| ((i * 7) % 19) as f64 / 3.0 - 3.0).collect();
    let zd: Vec<f64> = (0..rows * h).map(|i| ((i * 5) % 13) as f64 / 4.0 - 1.5).collect();
    let b: Vec<f64> = (0..h).map(|i| 0.3 * i as f64 - 0.5).collect();
    let z = Tensor::from_vec(z, (rows, h), &dev).unwrap();
    let zd = Tensor::from_vec(zd, (rows, h), &dev).unwrap();
    let b = Tensor::from_vec(b, h, &dev).unwrap();
    let stacked = Tensor::cat(&[&z, &zd], 0).unwrap();
    let pre = z.broadcast_add(&b).unwrap();
    for act in [true, false] {
        let out = bias_act_tangent(&stacked, &b, act).unwrap();
        let (y, y_dot) = (out.narrow(0, 0, rows).unwrap(), out.narrow(0, rows, rows).unwrap());
        let (want_y, want_dot) = if act {
            (mish_unfused(&pre).unwrap(), (mish_grad_unfused(&pre).unwrap() * &zd).unwrap())
        } else {
            (pre.clone(), zd.clone())
        };
        assert!(max_abs_diff(&y, &want_y) < 1e-13);
        assert!(max_abs_diff(&y_dot, &want_dot) < 1e-12);
    }
}
