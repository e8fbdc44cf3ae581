//! Instructions per multiply-accumulate of the Q8_0 matrix-vector kernels, counted with SysTick.
//!
//! Under `qemu -icount shift=0` one instruction takes one nanosecond of virtual time, so a SysTick
//! tick is `1e9 / clock_hz` instructions (40 on the 25 MHz mps2-an386 and -an500, 50 on the
//! 20 MHz mps2-an505, 31.25 on the 32 MHz mps3-an547) and the counts are the same on every run. On a real board a tick is a core cycle:
//! there, ticks / (rows x columns) is cycles per multiply-accumulate, and the figure printed as
//! instructions means nothing.
//!
//! The kernels: `portable` (`ops::dot_q8_0` row by row), `dsp` (`ops::cortex_m`) on cores with
//! the DSP extension, `armv6m` (`ops::armv6m`) on Cortex-M0/M0+ code (and `armv6m-int8`, its
//! blocks' int8 dot products without the f32 scales) and, on boards with Helium, `helium`
//! (`ops::helium`). On RISC-V, `portable`'s block dot products are already the RV32IMC kernel's
//! (`ops::dot_i8` picks it there), so two more lines time the int8 block dot products alone, as an
//! integer forward pass asks for them: `portable-int8` (`ops::dot_i8_portable`) and `rv32imc-int8`
//! (`ops::riscv32::dot_i8`), and `rv32imc-int8x4`, four rows at a time sharing each activation
//! load (`ops::riscv32::block_dots4`). Each takes the Q8_0 activation blocks and writes f32 outputs; quantizing the activation,
//! common to all of them, is not counted. `cargo xtask bench-kernels` runs this on every QEMU board
//! and tabulates the lines that start with `kernel`.
//!
//! Then the scalar phases of one decode step of the default model (`C` 128, `F` 512, 4 heads of
//! 32, attending over 37 positions, the mean of `cargo xtask bench-mcu`'s decode steps), each timed
//! on its own with seeded inputs, as lines that start with `phase`: count per call, calls per
//! token, and instructions per token. Attention's dot products and weighted sums, which live
//! inside the run state, are what remains of a whole step after these.
#![no_std]
#![no_main]

use mote_core::model::F32s;
use mote_core::ops;
#[cfg(target_feature = "dsp")]
use mote_core::ops::cortex_m;
use mote_core::quant::{self, BlockQ8_0, Q8Rows, Q8_0_BLOCK_BYTES, QK8_0};
use mote_firmware::random::{Gen, Values};
use mote_firmware::{self as fw, ExitCode, BOARD};

/// (rows, columns) timed: the default model's square matrices, a tall and a wide one at 128 and
/// 512, and GPT-2 124M's attention projection.
const SHAPES: [(usize, usize); 4] = [(128, 128), (512, 128), (128, 512), (768, 768)];

/// Bytes of the largest matrix (768 x 768), which lives on the stack.
const MAX_WEIGHT_BYTES: usize = 768 * 768 / QK8_0 * Q8_0_BLOCK_BYTES;
const MAX_BLOCKS: usize = 768 / QK8_0;
const MAX_ROWS: usize = 768;

/// RAM the buffers take, with room for the rest of the stack.
const RAM_NEEDED: usize =
    MAX_WEIGHT_BYTES + MAX_ROWS * 4 + MAX_BLOCKS * Q8_0_BLOCK_BYTES + 16 * 1024;

#[mote_firmware::entry]
fn main() -> ! {
    fw::init();
    if fw::stack::size() < RAM_NEEDED {
        defmt::error!(
            "bench_kernels needs {=usize} KiB of stack; this board has {=usize}",
            RAM_NEEDED / 1024,
            fw::stack::size() / 1024
        );
        fw::exit(ExitCode::Failure)
    }
    defmt::info!(
        "{=str} ({=str}): one SysTick tick = 1e9 / {=u32} instructions under -icount shift=0",
        BOARD.name,
        BOARD.cpu,
        BOARD.clock_hz
    );
    bench();
    phases();
    fw::exit(ExitCode::Success)
}

/// Times each kernel on each shape; the buffers live in this frame, entered only when they fit.
#[inline(never)]
fn bench() {
    // Word-aligned, as the tensors of a GGUF file in flash are.
    let mut w = fw::blob::Aligned { bytes: [0u8; MAX_WEIGHT_BYTES] };
    let w = &mut w.bytes;
    let mut xq = [BlockQ8_0::ZERO; MAX_BLOCKS];
    let mut out = [0.0f32; MAX_ROWS];
    for (d, n) in SHAPES {
        let nb = n / QK8_0;
        let rb = nb * Q8_0_BLOCK_BYTES;
        let w = &mut w[..d * rb];
        let xq = &mut xq[..nb];
        let out = &mut out[..d];
        let mut gen = Gen::new(1);
        gen.weights(w, Values::Uniform);
        gen.activation(xq, Values::Uniform);

        let start = fw::systick::now();
        for (o, row) in out.iter_mut().zip(Q8Rows::from_bytes(w, nb).rows()) {
            *o = ops::dot_q8_0(row, xq);
        }
        report("portable", d, n, fw::systick::now() - start);
        // Outputs that nothing reads would be optimized away with the loop that computes them
        // (no other kernel runs on them on RISC-V).
        core::hint::black_box(&*out);

        #[cfg(target_feature = "dsp")]
        {
            let start = fw::systick::now();
            cortex_m::matvec_q8_0(out, Q8Rows::from_bytes(w, nb), xq);
            report("dsp", d, n, fw::systick::now() - start);
        }

        #[cfg(all(target_feature = "mclass", not(target_feature = "thumb2")))]
        {
            let start = fw::systick::now();
            ops::armv6m::matvec_q8_0(out, Q8Rows::from_bytes(w, nb), xq);
            report("armv6m", d, n, fw::systick::now() - start);

            // The int8 dot products alone, each block's exact i32 sum, without the f32 scales
            // (soft-float on this core): what an integer forward pass asks of the kernel.
            let start = fw::systick::now();
            let mut sums = [0i32; 4];
            let rows = Q8Rows::from_bytes(w, nb);
            let mut rows = rows.rows();
            while let (Some(r0), Some(r1), Some(r2), Some(r3)) =
                (rows.next(), rows.next(), rows.next(), rows.next())
            {
                for ((((b0, b1), b2), b3), xb) in r0.iter().zip(r1).zip(r2).zip(r3).zip(&*xq) {
                    let dots = ops::armv6m::block_dots4([&b0.qs, &b1.qs, &b2.qs, &b3.qs], &xb.qs);
                    for (s, dot) in sums.iter_mut().zip(dots) {
                        *s = s.wrapping_add(dot);
                    }
                }
            }
            report("armv6m-int8", d, n, fw::systick::now() - start);
            defmt::debug!("{=[?]}", sums);
        }

        #[cfg(target_arch = "riscv32")]
        {
            time_int8("portable-int8", d, n, w, xq, ops::dot_i8_portable);
            time_int8("rv32imc-int8", d, n, w, xq, ops::riscv32::dot_i8);
            let start = fw::systick::now();
            let mut sums = [0i32; 4];
            let mut rows = Q8Rows::from_bytes(w, nb).rows();
            while let (Some(r0), Some(r1), Some(r2), Some(r3)) =
                (rows.next(), rows.next(), rows.next(), rows.next())
            {
                for ((((b0, b1), b2), b3), xb) in r0.iter().zip(r1).zip(r2).zip(r3).zip(&*xq) {
                    let dots = ops::riscv32::block_dots4([&b0.qs, &b1.qs, &b2.qs, &b3.qs], &xb.qs);
                    for (s, dot) in sums.iter_mut().zip(dots) {
                        *s = s.wrapping_add(dot);
                    }
                }
            }
            report("rv32imc-int8x4", d, n, fw::systick::now() - start);
            core::hint::black_box(sums);
        }

        #[cfg(feature = "helium")]
        {
            let start = fw::systick::now();
            mote_core::ops::helium::matvec_q8_0(out, Q8Rows::from_bytes(w, nb), xq);
            report("helium", d, n, fw::systick::now() - start);
        }
    }
}

/// Times the int8 dot products of every block of `w`'s rows with `xq`'s, by `dot` (inlined: a
/// generic, not a function pointer), and reports them as `name`.
#[cfg(target_arch = "riscv32")]
#[inline(always)]
fn time_int8(
    name: &str,
    d: usize,
    n: usize,
    w: &[u8],
    xq: &[BlockQ8_0],
    dot: impl Fn(&[i8; QK8_0], &[i8; QK8_0]) -> i32,
) {
    let start = fw::systick::now();
    let mut sum = 0i32;
    for row in Q8Rows::from_bytes(w, n / QK8_0).rows() {
        for (wb, xb) in row.iter().zip(xq) {
            sum = sum.wrapping_add(dot(&wb.qs, &xb.qs));
        }
    }
    report(name, d, n, fw::systick::now() - start);
    core::hint::black_box(sum);
}

/// Prints one kernel's count: `kernel <name> <d> x <n>: <ticks> ticks, <ipm> instructions per MAC`.
fn report(kernel: &str, d: usize, n: usize, ticks: u64) {
    let macs = (d * n) as f32;
    let per_mac = ticks as f32 * (1e9 / BOARD.clock_hz as f32) / macs;
    defmt::info!(
        "kernel {=str} {=usize} x {=usize}: {=u64} ticks, {=f32} instructions per MAC",
        kernel,
        d,
        n,
        ticks,
        per_mac
    );
}

/// The default model's width `C`, MLP width `F`, layers, heads and positions attended.
const C: usize = 128;
const F: usize = 512;
const LAYERS: usize = 2;
const HEADS: usize = 4;
const ATTENDED: usize = 37;

/// Times the scalar work of a decode step, phase by phase, and the matrix products it feeds.
#[inline(never)]
fn phases() {
    let mut gen = Gen::new(2);
    let mut x = [0.0f32; F];
    let mut y = [0.0f32; F];
    let mut xq = [BlockQ8_0::ZERO; F / QK8_0];
    let mut params = [0u8; 8 * C];
    gen.floats(&mut x);
    gen.floats(&mut y);
    for (i, b) in params.chunks_exact_mut(4).enumerate() {
        b.copy_from_slice(&(1.0 + (i % 7) as f32 * 0.125).to_le_bytes());
    }
    let (ln_w, ln_b) = params.split_at(4 * C);
    let (ln_w, ln_b) = (F32s { data: ln_w }, F32s { data: ln_b });
    // Per token: ln_1, ln_2 per layer and ln_f; quantizing each matrix input (3 of width C and one
    // of F per layer, C for the head) and the new key and value of each layer; GELU with its
    // bias over F per layer; one softmax per head and layer; the residual adds (embedding, twice
    // per layer).
    let mut total = 0u64;
    let t = time(|| ops::layer_norm(&mut y[..C], &x[..C], ln_w, ln_b, 1e-5));
    total += phase("layer_norm", C, t, 2 * LAYERS + 1);
    let t = time(|| quant::quantize_row_q8_0(&mut xq[..C / QK8_0], &x[..C]));
    total += phase("quantize", C, t, 5 * LAYERS + 1);
    let t = time(|| quant::quantize_row_q8_0(&mut xq, &x));
    total += phase("quantize", F, t, LAYERS);
    let mut h = x;
    let bias = fw::blob::Aligned { bytes: [0u8; 4 * F] };
    let t = time(|| ops::bias_gelu(&mut h, F32s { data: &bias.bytes }));
    total += phase("bias_gelu", F, t, LAYERS);
    let mut att = [0.0f32; ATTENDED];
    att.copy_from_slice(&x[..ATTENDED]);
    let t = time(|| ops::softmax(&mut att));
    total += phase("softmax", ATTENDED, t, HEADS * LAYERS);
    let t = time(|| ops::add(&mut y[..C], &x[..C]));
    total += phase("add", C, t, 2 * LAYERS + 1);
    defmt::info!("phase total (scalar, without attention): {=u64} instructions per token", total);
    // The matrix products, this core's fastest kernel: c_attn, attn c_proj, c_fc, mlp c_proj per layer; the head
    // (V = 2048 rows) as four passes of 512.
    let mut w = fw::blob::Aligned { bytes: [0u8; F * C / QK8_0 * Q8_0_BLOCK_BYTES] };
    let w = &mut w.bytes;
    gen.weights(w, Values::Uniform);
    gen.activation(&mut xq, Values::Uniform);
    let mut out = [0.0f32; F];
    let mut products = 0u64;
    for (d, n, calls) in
        [(3 * C, C, LAYERS), (C, C, LAYERS), (F, C, LAYERS), (C, F, LAYERS), (F, C, 4)]
    {
        let (nb, rb) = (n / QK8_0, n / QK8_0 * Q8_0_BLOCK_BYTES);
        let rows = Q8Rows::from_bytes(&w[..d * rb], nb);
        let t = time(|| fast_matvec(&mut out[..d], rows, &xq[..nb]));
        products += phase(if n == C { "matvec_x128" } else { "matvec_x512" }, d, t, calls);
    }
    defmt::info!("phase total (matrix products): {=u64} instructions per token", products);
    // Attention over a Q8_0 cache, per head: the query's block against each position's key
    // block (a matrix of 37 rows, a stride of C / 32 blocks, one block read), and the
    // softmax-weighted sum of the value blocks.
    let kv = Q8Rows::from_bytes(&w[..ATTENDED * C / QK8_0 * Q8_0_BLOCK_BYTES], C / QK8_0);
    let mut attention = 0u64;
    let t = time(|| quant::quantize_row_q8_0(&mut xq[..1], &x[..QK8_0]));
    attention += phase("attention_query", QK8_0, t, HEADS * LAYERS);
    let t = time(|| fast_matvec(&mut att, kv, &xq[..1]));
    attention += phase("attention_scores", ATTENDED, t, HEADS * LAYERS);
    let t = time(|| ops::weighted_rows_q8_0(&mut out[..QK8_0], &att, kv));
    attention += phase("attention_values", ATTENDED, t, HEADS * LAYERS);
    defmt::info!(
        "phase total (attention, with softmax above): {=u64} instructions per token",
        attention
    );
}

/// `out(d) = W(d, n) . xq(n)` by the fastest Q8_0 kernel of this core: the one `ops::matvec`
/// picks for a generating build.
fn fast_matvec(out: &mut [f32], w: Q8Rows<'_>, xq: &[BlockQ8_0]) {
    #[cfg(target_feature = "dsp")]
    cortex_m::matvec_q8_0(out, w, xq);
    #[cfg(all(target_feature = "mclass", not(target_feature = "thumb2")))]
    ops::armv6m::matvec_q8_0(out, w, xq);
    #[cfg(not(any(
        target_feature = "dsp",
        all(target_feature = "mclass", not(target_feature = "thumb2"))
    )))]
    for (o, row) in out.iter_mut().zip(w.rows()) {
        *o = ops::dot_q8_0(row, xq);
    }
}

/// SysTick ticks taken by `f`.
fn time(mut f: impl FnMut()) -> u64 {
    let start = fw::systick::now();
    f();
    fw::systick::now() - start
}

/// Prints one phase's count and returns its instructions per token:
/// `phase <name> <n>: <ticks> ticks, <instructions> instructions, x<calls> = <per token>`.
fn phase(name: &str, n: usize, ticks: u64, calls: usize) -> u64 {
    let instructions = ticks * 1_000_000_000 / u64::from(BOARD.clock_hz);
    let per_token = instructions * calls as u64;
    defmt::info!(
        "phase {=str} {=usize}: {=u64} ticks, {=u64} instructions, x{=usize} = {=u64} per token",
        name,
        n,
        ticks,
        instructions,
        calls,
        per_token
    );
    per_token
}
