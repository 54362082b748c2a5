/* Shims for the runtime's worker pool (FlowRuntime's WorkerPool), not part of the artifact ABI
 * (flowc.h). */
#ifndef FLOWC_WORKER_SHIMS_H
#define FLOWC_WORKER_SHIMS_H

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

/* The CPU the calling thread runs on (sched_getcpu), or -1 where unknown. */
int flowc_current_cpu(void);

/* Moves the calling thread off `cpu` when its affinity allows another one: its affinity mask
 * without that CPU, then the mask as it was (the thread stays where the move put it until the
 * scheduler moves it again). */
void flowc_leave_cpu(int cpu);

#endif
