/* The CPU's spin-wait hint, for the runtime's worker pool (Swift has no intrinsic for it): in a
 * loop polling a cache line that another core will write, it keeps the loop from flooding the
 * pipeline with speculative loads that are all discarded when the line changes. Not part of the
 * artifact ABI (flowc.h). */
#ifndef FLOWC_SPIN_PAUSE_H
#define FLOWC_SPIN_PAUSE_H
static inline void flowc_spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}
#endif
