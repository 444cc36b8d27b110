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
    pub fn drain(&self) {
        self.armed.store(false, Ordering::Release);
        let mut buf: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64; EAGAIN when already drained is fine.
        unsafe { libc::read(self.fd, &mut buf as *mut u64 as *mut libc::c_void, 8) };
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        // SAFETY: the fd is ours and closed once.
        unsafe { libc::close(self.fd) };
    }
}
