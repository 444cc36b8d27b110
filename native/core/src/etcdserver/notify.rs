//! Waking the driver: an eventfd the Python loop watches, written only on the idle→busy edge.
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};

pub struct Notifier {
    fd: RawFd,
    armed: AtomicBool,
}

impl Notifier {
    pub fn new() -> std::io::Result<Notifier> {
        // SAFETY: plain syscall; the fd is owned by this struct and closed on drop.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Notifier { fd, armed: AtomicBool::new(false) })
    }

    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Called after queueing work. Only the first call after a drain writes the eventfd.
    pub fn notify(&self) {
        if !self.armed.swap(true, Ordering::AcqRel) {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to our eventfd.
            unsafe { libc::write(self.fd, &one as *const u64 as *const libc::c_void, 8) };
        }
    }

    /// Called by the driver *before* it takes the queues, so work queued after the take wakes it again.
    /// The eventfd is emptied before the edge is re-armed: the other order let a notify land between the
    /// two, its write be swallowed by the read, and the edge stay armed with nothing to wake the driver
    /// (requests then waited for the next tick).
    pub fn drain(&self) {
        let mut buf: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64; EAGAIN when already drained is fine.
        unsafe { libc::read(self.fd, &mut buf as *mut u64 as *mut libc::c_void, 8) };
        self.armed.store(false, Ordering::Release);
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        // SAFETY: the fd is ours and closed once.
        unsafe { libc::close(self.fd) };
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    use super::*;

    /// Whether the eventfd is readable within `ms`.
    fn readable(fd: RawFd, ms: i32) -> bool {
        let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: polls one live pollfd.
        unsafe { libc::poll(&mut p, 1, ms) > 0 }
    }

    /// A producer queues work and notifies at any moment, also while the driver drains and takes it, as
    /// the server's request tasks and its Ready loop do. No notify may be lost: whenever work is queued, the
    /// eventfd says so (a lost one left requests waiting for the next tick, 100 ms).
    #[test]
    fn no_wake_up_is_lost_when_a_notify_races_a_drain() {
        let n = Arc::new(Notifier::new().expect("eventfd"));
        let queued = Arc::new(AtomicUsize::new(0));
        const ROUNDS: usize = 200_000;
        let producer = {
            let (n, queued) = (n.clone(), queued.clone());
            std::thread::spawn(move || {
                for i in 0..ROUNDS {
                    for _ in 0..(i % 13) * 10 {
                        std::hint::spin_loop();
                    }
                    queued.fetch_add(1, Ordering::AcqRel);
                    n.notify();
                }
            })
        };
        let mut taken = 0;
        while taken < ROUNDS {
            let woke = readable(n.fd(), 1000);
            assert!(woke, "work queued ({taken} of {ROUNDS} taken) but the eventfd never became readable");
            n.drain();
            taken += queued.swap(0, Ordering::AcqRel);
        }
        producer.join().unwrap();
    }
}
