//! Log lines written to stderr in batches. Under load the service logs thousands of
//! lines a second; one `write` system call each was a tenth of its system calls. Here a
//! line is appended to a buffer, and a thread of its own writes the buffer out every
//! `FLUSH_EVERY`, on a timer, so no line wakes a thread either. What is buffered when
//! the service stops is written by [`FlushGuard`]; only a process killed outright loses
//! its last few milliseconds of lines.

use std::{
    io::{self, Write},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// A writer that finds this much waiting writes it out itself, so memory stays bounded
/// when stderr is slower than the service (a reader that stalls its pipe).
const MAX_BUFFERED: usize = 256 * 1024;

#[derive(Clone)]
pub struct BatchedStderr {
    buffer: Arc<Mutex<Vec<u8>>>,
}

/// Writes out what is still buffered when dropped: keep it until the process ends.
pub struct FlushGuard {
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl BatchedStderr {
    /// The writer, and the thread that flushes it.
    pub fn start() -> io::Result<(Self, FlushGuard)> {
        let buffer = Arc::new(Mutex::new(Vec::with_capacity(64 * 1024)));
        let flushed = buffer.clone();
        std::thread::Builder::new().name("log-writer".into()).spawn(move || {
            loop {
                std::thread::sleep(FLUSH_EVERY);
                flush(&flushed);
            }
        })?;
        Ok((Self { buffer: buffer.clone() }, FlushGuard { buffer }))
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        flush(&self.buffer);
    }
}

/// Writes out what is buffered. stderr's lock is taken before the buffer, so batches
/// reach stderr in the order their lines were logged.
fn flush(buffer: &Mutex<Vec<u8>>) {
    let mut out = io::stderr().lock();
    let pending = {
        let mut buffer = buffer.lock().unwrap_or_else(PoisonError::into_inner);
        if buffer.is_empty() {
            return;
        }
        let capacity = buffer.capacity();
        std::mem::replace(&mut *buffer, Vec::with_capacity(capacity))
    };
    // Nowhere to report a failing stderr; the lines are dropped as a write to it would.
    let _ = out.write_all(&pending);
}

impl<'a> MakeWriter<'a> for BatchedStderr {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter { buffer: &self.buffer }
    }
}

/// Takes one formatted line (the fmt layer writes each event in one call).
pub struct LineWriter<'a> {
    buffer: &'a Mutex<Vec<u8>>,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let full = {
            let mut buffer = self.buffer.lock().unwrap_or_else(PoisonError::into_inner);
            buffer.extend_from_slice(bytes);
            buffer.len() >= MAX_BUFFERED
        };
        if full {
            flush(self.buffer);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
