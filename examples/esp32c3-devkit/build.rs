//! Links with esp-hal's linkall.x, which esp-hal's build script puts on the search path: the
//! ESP32-C3's memory map, esp-riscv-rt's sections and the ROM's functions.

fn main() {
    println!("cargo:rustc-link-arg-bins=-Tlinkall.x");
}
