// The ABI header is the product of this target; this file holds the worker pool's shims
// (worker_shims.h), which need glibc's CPU affinity calls.
#define _GNU_SOURCE
#include <sched.h>
#include "worker_shims.h"

int flowc_current_cpu(void) {
#if defined(__linux__)
    return sched_getcpu();
#else
    return -1;
#endif
}

void flowc_leave_cpu(int cpu) {
#if defined(__linux__)
    cpu_set_t mask, others;
    if (cpu < 0 || cpu >= CPU_SETSIZE || sched_getaffinity(0, sizeof mask, &mask) != 0) return;
    others = mask;
    CPU_CLR(cpu, &others);
    if (CPU_COUNT(&others) == 0) return;
    if (sched_setaffinity(0, sizeof others, &others) == 0) sched_setaffinity(0, sizeof mask, &mask);
#else
    (void)cpu;
#endif
}
