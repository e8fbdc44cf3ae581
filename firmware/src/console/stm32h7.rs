//! STM32H7 USART3 (PD8 TX, PD9 RX, alternate function 7): the ST-LINK virtual COM port of the
//! NUCLEO-H743ZI (UM2407, "USART3 ... connected to ST-LINK" through solder bridges SB5/SB6 by
//! default).
//!
//! The clocks are the reset ones: the 64 MHz HSI drives the core and APB1 (every prescaler at 1),
//! and USART3's kernel clock is PCLK1 (RCC_D2CCIP2R at reset), so the divider is 64 MHz / 115200.
//! The FIFO stays off: one byte at a time, as the other console drivers.

use embedded_io::{ErrorType, Read, ReadReady, Write};
use stm32h7::stm32h743::{GPIOD, RCC, USART3};

use super::Error;

/// USART3's kernel clock: PCLK1 at reset, the 64 MHz HSI, never changed by the firmware.
const PCLK1_HZ: u32 = 64_000_000;
/// The console's baud rate.
const BAUD: u32 = 115_200;
/// USARTDIV with oversampling by 16, rounded.
const BRR: u16 = ((PCLK1_HZ + BAUD / 2) / BAUD) as u16;
const _: () = assert!(BRR == 556);
/// Alternate function 7 (USART1/2/3) and the MODER value of an alternate-function pin.
const AF7: u8 = 7;
const MODE_ALTERNATE: u8 = 0b10;
/// PUPDR value: pull-up.
const PULL_UP: u8 = 0b01;

/// The console UART. Owns USART3 and pins PD8/PD9.
pub struct Uart {
    usart: USART3,
}

impl Uart {
    /// Turns on GPIOD and USART3, gives PD8/PD9 to the USART and starts it at 115200 8N1.
    pub fn new() -> Uart {
        // SAFETY: the console is made once, at boot, and is the only user of USART3, of PD8/PD9
        // and of the two RCC enable bits it sets (read-modify-write, before any interrupt uses RCC).
        let (rcc, gpiod, usart) = unsafe { (RCC::steal(), GPIOD::steal(), USART3::steal()) };
        rcc.ahb4enr().modify(|_, w| w.gpioden().enabled());
        rcc.apb1lenr().modify(|_, w| w.usart3en().enabled());
        // The bus must see the clock before the first access to the peripheral.
        let _ = rcc.apb1lenr().read();
        // SAFETY (the three writes): 7 is a valid alternate function, 0b10 and 0b01 valid modes.
        gpiod.afrh().modify(|_, w| unsafe { w.afr8().bits(AF7).afr9().bits(AF7) });
        gpiod.moder().modify(|_, w| unsafe {
            w.moder8().bits(MODE_ALTERNATE).moder9().bits(MODE_ALTERNATE)
        });
        // RX idles high: a pull-up keeps an unconnected pin from reading as a break.
        gpiod.pupdr().modify(|_, w| unsafe { w.pupdr9().bits(PULL_UP) });
        // SAFETY: any 16-bit value of at least 16 is a valid divider.
        usart.brr().write(|w| unsafe { w.brr().bits(BRR) });
        // 8 data bits, no parity (CR1's reset values), 1 stop bit (CR2's).
        usart.cr1().write(|w| w.ue().set_bit().te().set_bit().re().set_bit());
        Uart { usart }
    }

    /// The receive error ISR reports, if any, cleared.
    fn take_error(&self) -> Option<Error> {
        let isr = self.usart.isr().read();
        let error = if isr.ore().is_overrun() {
            Error::Overrun
        } else if isr.fe().is_error() {
            Error::Framing
        } else if isr.nf().is_noise() {
            Error::Noise
        } else if isr.pe().is_error() {
            Error::Parity
        } else {
            return None;
        };
        self.usart.icr().write(|w| w.orecf().clear().fecf().clear().ncf().clear().pecf().clear());
        Some(error)
    }
}

impl Default for Uart {
    fn default() -> Self {
        Self::new()
    }
}

impl ErrorType for Uart {
    type Error = Error;
}

impl Read for Uart {
    /// Waits for a byte, then takes every byte already received, up to `buf.len()`. A byte with
    /// a receive error is dropped and the error returned.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let mut n = 0;
        for slot in buf.iter_mut() {
            if n > 0 && !self.usart.isr().read().rxne().is_data_ready() {
                break;
            }
            loop {
                // An overrun sets ORE without RXNE once the byte before it has been read.
                if let Some(e) = self.take_error() {
                    let _ = self.usart.rdr().read();
                    return Err(e);
                }
                if self.usart.isr().read().rxne().is_data_ready() {
                    break;
                }
            }
            *slot = self.usart.rdr().read().rdr().bits() as u8;
            n += 1;
        }
        Ok(n)
    }
}

impl ReadReady for Uart {
    fn read_ready(&mut self) -> Result<bool, Error> {
        Ok(self.usart.isr().read().rxne().is_data_ready())
    }
}

impl Write for Uart {
    /// Writes every byte, each once the transmit register is empty.
    fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        for &byte in buf {
            while self.usart.isr().read().txe().is_full() {}
            // SAFETY: any byte is a valid data value.
            self.usart.tdr().write(|w| unsafe { w.tdr().bits(u16::from(byte)) });
        }
        Ok(buf.len())
    }

    /// Waits until the last byte has left the shift register.
    fn flush(&mut self) -> Result<(), Error> {
        while !self.usart.isr().read().tc().is_tx_complete() {}
        Ok(())
    }
}
