//! The hand-written CPU loops (Mish, its gradient and tangent, bias gradients, Adam, the
//! one-step policy) compiled once per vector unit and chosen at run time.
//!
//! The release build targets baseline x86-64 (SSE2) so the binary runs anywhere; without
//! this, those loops run 4 floats wide while the CPU can do 16. A loop is a [`Kernel`]: its
//! `run` is `#[inline(always)]`, so it is inlined into each of the `#[target_feature]`
//! trampolines below and LLVM vectorises it for their features. No rounding changes between
//! the variants: Rust never contracts `a * b + c` into an FMA by itself, and a kernel that
//! wants `mul_add` asks for it through the `fma` flag.

use std::sync::OnceLock;

/// The widest vector unit of this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Simd {
    Avx512,
    Avx2,
    Baseline,
}

impl Simd {
    /// Detected once per process.
    pub fn get() -> Simd {
        static SIMD: OnceLock<Simd> = OnceLock::new();
        *SIMD.get_or_init(Simd::detect)
    }

    fn detect() -> Simd {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Simd::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Simd::Avx2;
            }
        }
        Simd::Baseline
    }
}

/// A loop to compile per vector unit. `fma`: the CPU has fused multiply-add (without it
/// `mul_add` is a libm call, so kernels use it only when told).
pub trait Kernel {
    type Output;
    fn run(self, fma: bool) -> Self::Output;
}

/// Run `k` compiled for this CPU's widest vector unit.
pub fn run<K: Kernel>(k: K) -> K::Output {
    run_on(Simd::get(), k)
}

/// Run `k` compiled for `simd`, which must be this CPU's or narrower (tests compare them).
pub fn run_on<K: Kernel>(simd: Simd, k: K) -> K::Output {
    let have = Simd::get();
    match simd {
        // SAFETY: only when detection found the features the trampoline is compiled for.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 if have == Simd::Avx512 => unsafe { avx512(k) },
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 if have != Simd::Baseline => unsafe { avx2(k) },
        _ => k.run(false),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn avx512<K: Kernel>(k: K) -> K::Output {
    k.run(true)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn avx2<K: Kernel>(k: K) -> K::Output {
    k.run(true)
}
