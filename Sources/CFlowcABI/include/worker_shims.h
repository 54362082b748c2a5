/* Shims for the runtime's worker pool (FlowRuntime's WorkerPool), not part of the artifact ABI
 * (flowc.h). */
#ifndef FLOWC_WORKER_SHIMS_H
#define FLOWC_WORKER_SHIMS_H

#include <stdint.h>
#include <time.h>

/* The CPU's spin-wait hint (Swift has no intrinsic for it): in a loop polling a cache line that
 * another core will write, it keeps the loop from flooding the pipeline with speculative loads
 * that are all discarded when the line changes. */
static inline void flowc_spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* A tick counter for comparing durations measured on the calling thread (the units are not
 * seconds): the time-stamp counter on x86 (invariant on the CPUs that have AVX2), the virtual
 * counter on AArch64, else CLOCK_MONOTONIC's nanoseconds. A read is ~10 ns against ~35 ns for
 * clock_gettime through the vDSO here; a batch-1 call reads it 2 to 4 times per split. */
static inline uint64_t flowc_ticks(void) {
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_ia32_rdtsc();
#elif defined(__aarch64__)
    uint64_t ticks;
    __asm__ __volatile__("mrs %0, cntvct_el0" : "=r"(ticks));
    return ticks;
#else
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
#endif
}

/* The CPU the calling thread runs on (sched_getcpu), or -1 where unknown. */
int flowc_current_cpu(void);

/* Moves the calling thread off `cpu` when its affinity allows another one: its affinity mask
 * without that CPU, then the mask as it was (the thread stays where the move put it until the
 * scheduler moves it again). */
void flowc_leave_cpu(int cpu);

#endif
