//! STM32F4 and STM32F2 USART1 (PA9 TX, PA10 RX, alternate function 7): the USART that QEMU's
//! STM32F405 (`netduinoplus2`) and STM32F205 (`netduino2`) wire to their first serial port, and
//! the usual console pins of STM32F2/F4 boards. The two families share USART1, GPIOA and the RCC
//! bits used here, register for register; each board's PAC is named `pac` below.
//!
//! The clocks are the reset ones: the 16 MHz HSI drives the core and APB2, so the baud rate divider
//! is 16 MHz / 115200. QEMU models neither RCC nor the GPIO ports (their writes are ignored) and
//! sends bytes at once whatever the divider says; its USART drops received bytes unless UE and RE
//! are set, and holds the next one back until DR is read, so nothing is lost there.

use embedded_io::{ErrorType, Read, ReadReady, Write};
#[cfg(feature = "board-netduino2")]
use stm32f2::stm32f215 as pac;
#[cfg(feature = "board-netduinoplus2")]
use stm32f4::stm32f405 as pac;

use pac::{GPIOA, RCC, USART1};

use super::Error;

/// USART1's kernel clock, PCLK2: the HSI at reset, never changed by the firmware.
const PCLK2_HZ: u32 = 16_000_000;
/// The console's baud rate.
const BAUD: u32 = 115_200;
/// USARTDIV in 12.4 fixed point (oversampling by 16), rounded: 139 = 8 + 11/16.
const BRR: u16 = ((PCLK2_HZ + BAUD / 2) / BAUD) as u16;
const _: () = assert!(BRR == 139);

/// The console UART. Owns USART1 and pins PA9/PA10.
pub struct Uart {
    usart: USART1,
}

impl Uart {
    /// Turns on GPIOA and USART1, gives PA9/PA10 to the USART and starts it at 115200 8N1.
    pub fn new() -> Uart {
        // SAFETY: the console is made once, at boot, and is the only user of USART1, of PA9/PA10
        // and of the two RCC enable bits it sets (read-modify-write, before any interrupt uses RCC).
        let (rcc, gpioa, usart) = unsafe { (RCC::steal(), GPIOA::steal(), USART1::steal()) };
        rcc.ahb1enr().modify(|_, w| w.gpioaen().enabled());
        rcc.apb2enr().modify(|_, w| w.usart1en().enabled());
        // The bus must see the clock before the first access to the peripheral (RM0090 6.3.10).
        let _ = rcc.apb2enr().read();
        gpioa.afrh().modify(|_, w| w.afrh9().af7().afrh10().af7());
        gpioa.moder().modify(|_, w| w.moder9().alternate().moder10().alternate());
        // RX idles high: a pull-up keeps an unconnected pin from reading as a break.
        gpioa.pupdr().modify(|_, w| w.pupdr10().pull_up());
        // SAFETY: any 16-bit value is a valid divider.
        usart.brr().write(|w| unsafe { w.bits(BRR) });
        // 8 data bits, no parity (CR1's reset values), 1 stop bit (CR2's).
        usart.cr1().write(|w| w.ue().enabled().te().enabled().re().enabled());
        Uart { usart }
    }

    /// The receive error SR reports, if any.
    fn error(&self) -> Option<Error> {
        let sr = self.usart.sr().read();
        if sr.ore().is_overrun() {
            Some(Error::Overrun)
        } else if sr.fe().is_error() {
            Some(Error::Framing)
        } else if sr.nf().is_noise() {
            Some(Error::Noise)
        } else if sr.pe().is_error() {
            Some(Error::Parity)
        } else {
            None
        }
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
    /// a receive error is dropped and the error returned (with the bytes before it: the line they
    /// belong to has lost one).
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let mut n = 0;
        for slot in buf.iter_mut() {
            if n > 0 && !self.usart.sr().read().rxne().is_data_ready() {
                break;
            }
            while !self.usart.sr().read().rxne().is_data_ready() {}
            // Reading SR then DR clears the error flags along with the byte they concern.
            let error = self.error();
            let byte = self.usart.dr().read().dr().bits() as u8;
            if let Some(e) = error {
                return Err(e);
            }
            *slot = byte;
            n += 1;
        }
        Ok(n)
    }
}

impl ReadReady for Uart {
    fn read_ready(&mut self) -> Result<bool, Error> {
        Ok(self.usart.sr().read().rxne().is_data_ready())
    }
}

impl Write for Uart {
    /// Writes every byte, each once the transmit register is empty.
    fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        for &byte in buf {
            while !self.usart.sr().read().txe().is_tx_empty() {}
            // SAFETY: any byte is a valid data value.
            self.usart.dr().write(|w| unsafe { w.dr().bits(u16::from(byte)) });
        }
        Ok(buf.len())
    }

    /// Waits until the last byte has left the shift register.
    fn flush(&mut self) -> Result<(), Error> {
        while !self.usart.sr().read().tc().is_tx_complete() {}
        Ok(())
    }
}
