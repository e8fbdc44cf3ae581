//! Instructions per multiply-accumulate of the Q8_0 matrix-vector kernels, counted with SysTick.
//!
//! Under `qemu -icount shift=0` one instruction takes one nanosecond of virtual time, so a SysTick
//! tick is `1e9 / clock_hz` instructions (40 on the 25 MHz mps2-an386 and -an500, 50 on the
//! 20 MHz mps2-an505, 31.25 on the 32 MHz mps3-an547) and the counts are the same on every run. On a real board a tick is a core cycle:
//! there, ticks / (rows x columns) is cycles per multiply-accumulate, and the figure printed as
//! instructions means nothing.
//!
//! The kernels: `portable` (`ops::dot_q8_0` row by row, what `ops::matvec` runs on a core without
//! the DSP extension), `dsp` (`ops::cortex_m`) and, on boards with Helium, `helium`
//! (`ops::helium`). Each takes the Q8_0 activation blocks and writes f32 outputs; quantizing the activation,
//! common to all of them, is not counted. `cargo xtask bench-kernels` runs this on every QEMU board
//! and tabulates the lines that start with `kernel`.
#![no_std]
#![no_main]

use mote_core::ops::{self, cortex_m};
use mote_core::quant::{BlockQ8_0, Q8_0_BLOCK_BYTES, QK8_0};
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

#[cortex_m_rt::entry]
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
    fw::exit(ExitCode::Success)
}

/// Times each kernel on each shape; the buffers live in this frame, entered only when they fit.
#[inline(never)]
fn bench() {
    let mut w = [0u8; MAX_WEIGHT_BYTES];
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
        for (o, row) in out.iter_mut().zip(w.chunks_exact(rb)) {
            *o = ops::dot_q8_0(row, xq);
        }
        report("portable", d, n, fw::systick::now() - start);

        let start = fw::systick::now();
        cortex_m::matvec_q8_0(out, w, rb, xq);
        report("dsp", d, n, fw::systick::now() - start);

        #[cfg(feature = "helium")]
        {
            let start = fw::systick::now();
            mote_core::ops::helium::matvec_q8_0(out, w, rb, xq);
            report("helium", d, n, fw::systick::now() - start);
        }
    }
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
