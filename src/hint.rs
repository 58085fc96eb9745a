//! Shared by the hot loops (the engine's batch pass, the watch's stages, `scan`'s threads):
//! CPU hints, and timing a stage's work.

/// Hints the CPU to fetch the cache line holding address `p` into all cache levels. Any
/// address will do: a prefetch never faults, and reads nothing the program can observe.
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: SSE is part of the x86_64 baseline, and a prefetch never faults or reads
        // memory as far as the program can tell, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Runs `f`, adding the time it took to `acc`.
pub(crate) fn timed<T>(acc: &mut std::time::Duration, f: impl FnOnce() -> T) -> T {
    let t = std::time::Instant::now();
    let r = f();
    *acc += t.elapsed();
    r
}
