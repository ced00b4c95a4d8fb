//! fp32 vs fbgemm int8-dynamic vs fp16-dynamic forward of an MLP 784-2048-2048-10 at
//! batch 1, 64 and 512, side by side in one process: medians and ratios.
//!
//!   cargo run -p slimbench-torch-ext --example mlp_speed [-- THREADS]

use std::time::Instant;

use slimbench_torch_ext::quantized::{PackedLinear, quantize_weight};
use tch::{Device, Kind, Tensor};

fn median_us(mut f: impl FnMut(), iters: usize) -> f64 {
    for _ in 0..iters / 10 + 3 {
        f();
    }
    let mut t: Vec<f64> = (0..iters)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() {
    let threads: i32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2);
    tch::set_num_threads(threads);
    tch::manual_seed(0);
    let opts = (Kind::Float, Device::Cpu);
    let dims = [784, 2048, 2048, 10];
    let layers: Vec<(Tensor, Tensor)> = dims
        .windows(2)
        .map(|d| {
            (Tensor::randn([d[1], d[0]], opts) * (1.0 / (d[0] as f64).sqrt()), Tensor::zeros([d[1]], opts))
        })
        .collect();
    let int8: Vec<PackedLinear> = layers
        .iter()
        .map(|(w, b)| PackedLinear::int8(&quantize_weight(w).unwrap(), Some(b)).unwrap())
        .collect();
    let fp16: Vec<PackedLinear> =
        layers.iter().map(|(w, b)| PackedLinear::fp16(w, Some(b)).unwrap()).collect();
    let n = layers.len();
    let fp32_fwd = |x: &Tensor| {
        let mut h = x.shallow_clone();
        for (i, (w, b)) in layers.iter().enumerate() {
            h = h.linear(w, Some(b));
            if i + 1 < n {
                h = h.relu();
            }
        }
        h
    };
    let packed_fwd = |p: &[PackedLinear], x: &Tensor| {
        let mut h = x.shallow_clone();
        for (i, l) in p.iter().enumerate() {
            h = l.forward(&h).unwrap();
            if i + 1 < n {
                h = h.relu();
            }
        }
        h
    };
    println!("MLP 784-2048-2048-10, {threads} thread(s), median µs per forward");
    println!(
        "{:>6} {:>10} {:>10} {:>10} {:>8} {:>8}",
        "batch", "fp32", "int8-dyn", "fp16-dyn", "int8 x", "fp16 x"
    );
    let _guard = tch::no_grad_guard();
    for batch in [1i64, 64, 512] {
        let x = Tensor::randn([batch, 784], opts);
        let iters = if batch == 512 { 60 } else { 300 };
        let a = median_us(|| drop(fp32_fwd(&x)), iters);
        let b = median_us(|| drop(packed_fwd(&int8, &x)), iters);
        let c = median_us(|| drop(packed_fwd(&fp16, &x)), iters);
        println!("{batch:>6} {a:>10.1} {b:>10.1} {c:>10.1} {:>7.2}x {:>7.2}x", a / b, a / c);
    }
}
