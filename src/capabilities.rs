//! What the host lends the collector besides HTTP (which is passed to each
//! call): the certificate signer and a monotonic clock. The collector reads
//! no clock and holds no key of its own; the component hands in the host's,
//! tests hand in their own.

/// Signs a client assertion (the JWT's claims, as JSON) with the
/// certificate the host holds, and returns the compact JWT.
pub type Signer = Box<dyn Fn(&str) -> Result<String, String>>;

/// The capabilities of one collector.
pub struct Capabilities {
    /// Signs client assertions when the credential is a certificate.
    pub signer: Signer,
    /// Milliseconds on a monotonic clock: paces the call budget and times
    /// queries. Wall-clock time (`now`) is passed to each call instead.
    pub monotonic_ms: fn() -> u64,
}

impl Capabilities {
    /// The capabilities of a host that holds no certificate, with this
    /// process's monotonic clock (native builds and tests).
    pub fn without_certificate() -> Capabilities {
        Capabilities {
            signer: no_signer(),
            monotonic_ms: process_monotonic_ms,
        }
    }
}

/// The signer of a host that holds no certificate.
pub fn no_signer() -> Signer {
    Box::new(|_| Err("no client certificate is configured in the host".into()))
}

/// Milliseconds since this process first asked, on `std`'s monotonic clock
/// (`wasi:clocks/monotonic-clock` in the component).
pub fn process_monotonic_ms() -> u64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}
