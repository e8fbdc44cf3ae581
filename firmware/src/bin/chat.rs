//! Prompts typed on the board's serial console, answered on the device: the model in flash,
//! every buffer a static sized at build time, the conversation run by `mote-chat` over the
//! board's [`Console`] (see that crate for the commands and the summary line).
//!
//! On boot one banner line gives the board, the model, the most beams `/beams` accepts and the
//! flash and RAM the image uses; then
//! the prompt marker. defmt logs (load, per-reply tick counts) go to the board's log transport,
//! never to the console.
//!
//! Build-time inputs: the model and the KV type (`MOTE_MODEL`, `MOTE_KV`, as for `generate`), and
//! the most beams `/beams` accepts (`MOTE_NUM_BEAMS`, default 1: `cargo xtask firmware --bin chat
//! --num-beams N`), which sizes the run state; a board that cannot hold the model, the run state,
//! the ids of a full context and the line buffer fails the build with the numbers.
#![no_std]
#![no_main]

use core::fmt::Write as _;
use core::ptr::addr_of;

use mote_chat::{Chat, LineReader, Observer, Reply};
use mote_core::gguf::Gguf;
use mote_core::model::{Layer, Model};
use mote_core::tokenizer::{BpeScratch, Tokenizer};
use mote_firmware::blob::Aligned;
use mote_firmware::console::Console;
use mote_firmware::{self as fw, ExitCode, BOARD};

/// The build's model and buffer sizes (the build script writes them; see the module docs).
mod build {
    include!(concat!(env!("OUT_DIR"), "/chat.rs"));
}

/// The model, in flash, aligned as the GGUF reader needs. `cargo xtask size` finds it by name.
#[no_mangle]
#[cfg_attr(mote_model_region, link_section = ".model")]
static MOTE_MODEL: Aligned<[u8; build::MODEL_BYTES]> =
    Aligned { bytes: *include_bytes!(env!("MOTE_MODEL")) };

/// Storage of the run state: activations, logits, token history and KV cache (of every beam, and
/// the beams' bookkeeping, for `/beams` above 1).
#[repr(C, align(8))]
struct StateStorage([u8; build::STATE_BYTES]);

#[mote_firmware::entry]
fn main() -> ! {
    // `&'static mut` references to statics (in .bss): RAM that the linker counts, never the
    // stack. `cargo xtask size` finds them by name.
    let state =
        fw::take_static!(MOTE_RUN_STATE: StateStorage = StateStorage([0; build::STATE_BYTES]));
    let scratch = fw::take_static!(MOTE_BPE_SCRATCH: BpeScratch = BpeScratch::new());
    let ids = fw::take_static!(MOTE_CHAT_IDS: [u32; build::IDS] = [0; build::IDS]);
    let line = fw::take_static!(MOTE_CHAT_LINE: [u8; build::LINE_BYTES] = [0; build::LINE_BYTES]);
    // The model's per-layer views, one per block of this build's model: a static, as in
    // `generate`, so that they are never on the stack.
    let layers = fw::take_static!(MOTE_LAYERS: [Layer<'static>; build::HPARAMS.n_layer] =
        [Layer::EMPTY; build::HPARAMS.n_layer]);

    fw::init();
    let mut console = Console::new();
    match run(&mut console, layers, state, scratch, ids, line) {
        Ok(()) => fw::finish(ExitCode::Success),
        Err(()) => fw::finish(ExitCode::Failure),
    }
}

/// Loads the model, prints the banner and answers lines until the console ends (it never does on
/// a board); an error has been logged when this returns `Err`.
fn run(
    console: &mut Console,
    layers: &'static mut [Layer<'static>],
    storage: &'static mut StateStorage,
    scratch: &'static mut BpeScratch,
    ids: &'static mut [u32],
    line: &'static mut [u8],
) -> Result<(), ()> {
    let gguf = Gguf::parse(&MOTE_MODEL.bytes).map_err(|e| defmt::error!("model: {}", e))?;
    let model = Model::load(&gguf, layers).map_err(|e| defmt::error!("model: {}", e))?;
    let tokenizer = Tokenizer::from_gguf(&gguf).map_err(|e| defmt::error!("tokenizer: {}", e))?;
    if model.hparams != build::HPARAMS {
        defmt::error!("the model's hyper-parameters differ from those it was built with");
        return Err(());
    }
    let mut chat = Chat::new(&model, &tokenizer, build::KV, &mut storage.0, scratch, ids)
        .and_then(|chat| chat.with_math(build::MATH))
        .map_err(|e| defmt::error!("chat: {}", e))?;
    if chat.max_beams() != build::BEAMS {
        defmt::error!(
            "the run state holds {=usize} beams, not {=usize}",
            chat.max_beams(),
            build::BEAMS
        );
        return Err(());
    }

    let (flash, ram) = (flash_used(), fw::stack::bottom() - BOARD.ram.origin as usize);
    defmt::info!(
        "chat: model {=str}, {=usize}-byte lines, KV {=str}, beams up to {=usize}; flash {=usize} bytes, statics {=usize} bytes",
        build::MODEL_NAME,
        build::LINE_BYTES,
        build::KV.name(),
        build::BEAMS,
        flash,
        ram
    );
    let mut banner = Banner { console: &mut *console };
    let _ = writeln!(
        banner,
        "mote {} chat on {} ({}): model {}, beams up to {}, flash {} of {} bytes, RAM {} of {} bytes + {} of stack",
        mote_core::VERSION,
        BOARD.name,
        BOARD.cpu,
        build::MODEL_NAME,
        build::BEAMS,
        flash,
        BOARD.flash.size,
        ram,
        BOARD.ram.size,
        fw::stack::size()
    );
    let mut lines = LineReader::new(line);
    let mut timing = Timing::default();
    // A console error (a UART's framing or overrun error, on drivers that report them) ends
    // only that line: the loop starts again at a new prompt marker.
    while let Err(e) = chat.run(&mut lines, console, &mut timing) {
        defmt::warn!("console: {}", defmt::Debug2Format(&e));
    }
    Ok(())
}

/// Bytes of flash the image occupies: code and read-only data, then the initial values of `.data`.
fn flash_used() -> usize {
    extern "C" {
        // From cortex-m-rt's link.x: where `.data`'s initial values are in flash, and `.data`.
        static __sidata: u32;
        static __sdata: u32;
        static __edata: u32;
    }
    // Only the symbols' addresses are taken, never their contents.
    let (load, start, end) =
        (addr_of!(__sidata) as usize, addr_of!(__sdata) as usize, addr_of!(__edata) as usize);
    load + (end - start) - BOARD.flash.origin as usize
}

/// `core::fmt` onto the console, for the banner.
struct Banner<'c> {
    console: &'c mut Console,
}

impl core::fmt::Write for Banner<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        embedded_io::Write::write_all(self.console, s.as_bytes()).map_err(|_| core::fmt::Error)
    }
}

/// SysTick counts of each reply, logged with defmt: from the end of the line to the first token
/// (encoding and the prompt's positions), and per token after it; and the stack's peak so far
/// (counted after the reply's timing, since it scans the painted stack).
#[derive(Default)]
struct Timing {
    line_end: u64,
    last: u64,
    first_token: u64,
    generation: u64,
}

impl Observer for Timing {
    fn line_received(&mut self) {
        self.line_end = fw::systick::now();
    }

    fn token(&mut self, index: usize, id: u32) {
        let now = fw::systick::now();
        if index == 0 {
            self.first_token = now - self.line_end;
            self.generation = 0;
            defmt::info!(
                "first token {=u32} after {=u64} ticks from the line's end",
                id,
                self.first_token
            );
        } else {
            self.generation += now - self.last;
        }
        // Writing the text to the console is not the model's work: the next count starts after.
        self.last = fw::systick::now();
    }

    fn reply(&mut self, reply: &Reply<'_>) {
        if reply.beams > 1 {
            // Nothing is streamed during a beam search: its ticks are the whole reply's.
            let ticks = fw::systick::now() - self.line_end;
            let per_step = if reply.steps > 0 { ticks / reply.steps as u64 } else { 0 };
            defmt::info!(
                "reply: {=usize} prompt tokens, {=usize} beams, {=usize} steps, best {=usize} tokens, stop {=str}; ticks: {=u64} from the line's end, {=u64} per step; stack peak {=usize} bytes",
                reply.prompt.len(),
                reply.beams,
                reply.steps,
                reply.generated.len(),
                reply.stop,
                ticks,
                per_step,
                fw::stack::high_water_mark()
            );
            return;
        }
        let n = reply.generated.len();
        let per_token = if n > 1 { self.generation / (n as u64 - 1) } else { 0 };
        defmt::info!(
            "reply: {=usize} prompt tokens, {=usize} generated, stop {=str}; ticks: first token {=u64}, then {=u64} per token; stack peak {=usize} bytes",
            reply.prompt.len(),
            n,
            reply.stop,
            self.first_token,
            per_token,
            fw::stack::high_water_mark()
        );
    }
}
