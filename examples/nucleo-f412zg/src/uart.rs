//! USART3 on PD8 (TX) and PD9 (RX), alternate function 7: the NUCLEO-F412ZG's ST-LINK virtual COM
//! port, at 115200 8N1 from the reset clock (16 MHz HSI on APB1), as `embedded_io::{Read, Write}`.
//! A HAL's serial type that implements these traits plugs in the same way.

use embedded_io::{ErrorKind, ErrorType, Read, Write};
use stm32f4::stm32f412::{GPIOD, RCC, USART3};

/// USARTDIV for 115200 baud at 16 MHz, oversampling by 16.
const BRR: u16 = 139;

/// The console.
pub struct Uart(USART3);

impl Uart {
    /// Turns on GPIOD and USART3 and starts them.
    pub fn new() -> Self {
        // SAFETY: made once at boot; the only user of USART3, PD8/PD9 and these RCC bits.
        let (rcc, gpiod, usart) = unsafe { (RCC::steal(), GPIOD::steal(), USART3::steal()) };
        rcc.ahb1enr().modify(|_, w| w.gpioden().enabled());
        rcc.apb1enr().modify(|_, w| w.usart3en().enabled());
        gpiod.afrh().modify(|_, w| w.afrh8().af7().afrh9().af7());
        gpiod.moder().modify(|_, w| w.moder8().alternate().moder9().alternate());
        // SAFETY: any 16-bit divider is valid.
        usart.brr().write(|w| unsafe { w.bits(BRR) });
        usart.cr1().write(|w| w.ue().enabled().te().enabled().re().enabled());
        Uart(usart)
    }
}

impl ErrorType for Uart {
    type Error = ErrorKind;
}

impl Read for Uart {
    /// One byte per call; a byte with an overrun, framing or noise error is an error.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        let Some(slot) = buf.first_mut() else { return Ok(0) };
        let sr = loop {
            let sr = self.0.sr().read();
            if sr.rxne().is_data_ready() {
                break sr;
            }
        };
        *slot = self.0.dr().read().dr().bits() as u8; // SR then DR: clears the error flags
        if sr.ore().is_overrun() || sr.fe().is_error() || sr.nf().is_noise() {
            return Err(ErrorKind::InvalidData);
        }
        Ok(1)
    }
}

impl Write for Uart {
    fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        for &byte in buf {
            while !self.0.sr().read().txe().is_tx_empty() {}
            // SAFETY: any byte is a valid data value.
            self.0.dr().write(|w| unsafe { w.dr().bits(u16::from(byte)) });
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), ErrorKind> {
        while !self.0.sr().read().tc().is_tx_complete() {}
        Ok(())
    }
}
