//! mote-core in a firmware of its own, for a board mote's build does not know: an ESP32-C3 DevKit
//! (RV32IMC at 160 MHz, no FPU, 400 KB of SRAM, 4 MB of flash).
//!
//! It reads a prompt per line from UART0 (GPIO21 TX, GPIO20 RX: the DevKit's USB-serial bridge,
//! 115200 8N1), encodes it on the device, generates greedily from a fresh context on the integer
//! path and writes the text as it comes. Every byte of RAM is a static sized at compile time with
//! mote-core's `const fn`s; the model is read in place from flash, which esp-hal's linker script
//! maps for data through the cache (DROM) with the rest of `.rodata`. See docs/boards.md.
#![no_std]
#![no_main]

mod uart;

use core::fmt::Write as _;
use core::ptr::addr_of_mut;

use embedded_io::{Read, Write};
use esp_hal::clock::CpuClock;
use mote_core::gguf::Gguf;
use mote_core::model::{HParams, Layer, Model};
use mote_core::session::Session;
use mote_core::state::{KvType, RunState};
use mote_core::tokenizer::{BpeScratch, Special, StreamDecoder, Tokenizer};
use mote_core::Math;

// The application descriptor ESP-IDF's second-stage bootloader reads before it boots the image.
esp_bootloader_esp_idf::esp_app_desc!();

/// The model's dimensions, as `mote inspect` prints them: they size the run state. A model that
/// needs more is refused at boot with the sizes.
const HP: HParams = HParams {
    n_vocab: 2048,
    n_ctx: 128,
    n_embd: 128,
    n_head: 4,
    n_layer: 2,
    n_ff: 512,
    eps: 1e-5,
    eos_token: None,
};
/// The KV cache's element type: Q8_0, which the integer path needs.
const KV: KvType = KvType::Q8_0;
/// Bytes of one prompt line; tokens generated per reply.
const LINE: usize = 256;
const MAX_TOKENS: usize = 64;
/// Bytes of the run state.
const STATE_BYTES: usize = RunState::bytes_needed_math(&HP, KV, Math::Integer);

/// GGUF aligns tensor data to 32 bytes from the file's start, and the reader views it in place.
#[repr(C, align(32))]
struct Aligned<T: ?Sized>(T);

static MODEL: &Aligned<[u8]> =
    &Aligned(*include_bytes!("../../../models/tinystories-base/tinystories-base-q8_0.gguf"));

// The RAM mote-core works in: statics in .bss, so the link fails if they outgrow the SRAM.
static mut STATE: Aligned<[u8; STATE_BYTES]> = Aligned([0; STATE_BYTES]);
static mut SCRATCH: BpeScratch = BpeScratch::new();
static mut IDS: [u32; HP.n_ctx] = [0; HP.n_ctx];
static mut LAYERS: [Layer<'static>; HP.n_layer] = [Layer::EMPTY; HP.n_layer];

#[esp_hal::main]
fn main() -> ! {
    let peripherals = esp_hal::init(esp_hal::Config::default().with_cpu_clock(CpuClock::max()));
    let console = uart::Uart::new(peripherals.UART0, peripherals.GPIO21, peripherals.GPIO20);
    // Without a console there is no one to tell.
    let Some(mut console) = console else { idle() };
    // SAFETY: `main` runs once and never returns, and nothing else names these statics: each
    // reference is the only one there ever is.
    let (state, scratch, ids, layers) = unsafe {
        (
            &mut (*addr_of_mut!(STATE)).0,
            &mut *addr_of_mut!(SCRATCH),
            &mut *addr_of_mut!(IDS),
            &mut *addr_of_mut!(LAYERS),
        )
    };
    if let Err(e) = chat(&mut console, layers, state, scratch, ids) {
        let _ = writeln!(Text(&mut console), "error: {e}");
    }
    idle()
}

/// Where the firmware rests when it cannot go on.
fn idle() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// Loads the model, then answers each line read from `console`; returns only if loading fails.
fn chat<C: Read + Write>(
    console: &mut C,
    layers: &'static mut [Layer<'static>],
    state: &'static mut [u8],
    scratch: &mut BpeScratch,
    ids: &mut [u32],
) -> Result<(), &'static str> {
    let gguf = Gguf::parse(&MODEL.0).map_err(|_| "the model is not a GGUF file")?;
    let model =
        Model::load(&gguf, layers).map_err(|_| "the model is not a GPT-2 this build can run")?;
    let tokenizer = Tokenizer::from_gguf(&gguf).map_err(|_| "the model has no tokenizer")?;
    let state = RunState::new_math(&model.hparams, KV, Math::Integer, state)
        .map_err(|_| "the model outgrows HP")?;
    let mut session = Session::new(&model, state);
    let mut line = [0u8; LINE];
    loop {
        let _ = console.write_all(b"> ");
        let reply = match read_line(console, &mut line) {
            None => Err("the line is too long, or a byte was lost"),
            Some(bytes) => core::str::from_utf8(bytes).map_err(|_| "the line is not UTF-8"),
        }
        .and_then(|prompt| {
            let n = tokenizer.encode(prompt, Special::AsText, scratch, ids);
            n.map_err(|_| "the prompt is longer than the context")
        })
        .and_then(|n| {
            let mut stream = StreamDecoder::new();
            let mut out = Text(console);
            let mut show = |text: &str| {
                let _ = out.write_str(text);
            };
            let done = session.generate(ids.get(..n).unwrap_or_default(), MAX_TOKENS, |id| {
                let _ = tokenizer.decode_stream(id, &mut stream, &mut show);
            });
            done.map_err(|_| "the prompt is empty or too long for the context")
        });
        let _ = match reply {
            Ok(done) => writeln!(Text(console), "\n({} tokens, {})", done.n_generated, done.stop),
            Err(e) => writeln!(Text(console), "error: {e}"),
        };
    }
}

/// Reads up to a newline (a CR before it is dropped). `None`: the line was longer than `buf`,
/// or the UART lost a byte; the rest of the line is read and dropped either way.
fn read_line<'b>(console: &mut impl Read, buf: &'b mut [u8]) -> Option<&'b [u8]> {
    let (mut len, mut ok) = (0, true);
    loop {
        let mut byte = [0u8];
        match console.read(&mut byte) {
            Ok(1) if byte[0] == b'\n' => break,
            Ok(1) if byte[0] == b'\r' => {}
            Ok(1) => match buf.get_mut(len) {
                Some(slot) => (*slot, len) = (byte[0], len + 1),
                None => ok = false,
            },
            _ => ok = false,
        }
    }
    ok.then(|| &buf[..len])
}

/// `core::fmt::Write` over the console, for `write!` with `Display` values.
struct Text<'c, C>(&'c mut C);

impl<C: Write> core::fmt::Write for Text<'_, C> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.write_all(s.as_bytes()).map_err(|_| core::fmt::Error)
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    idle()
}
