/*
 * entry_allocations — counts heap allocations made inside a compiled model's entry points.
 *
 *   cc -O1 -o entry_allocations Benchmarks/entry_allocations.c -ldl
 *   ./entry_allocations MODEL.so BATCH CALLS
 *
 * This program defines malloc, calloc, realloc, posix_memalign, aligned_alloc and memalign
 * itself (forwarding to glibc's __libc_* functions), so every allocation in the process —
 * the model's code, OpenBLAS, libm — goes through a counter. For each entry point the model
 * has, it makes one call (the first: lazy initialisation in libraries shows up here), then
 * CALLS more calls, and prints one line per entry:
 *
 *   ENTRY first=N steady=M code=C
 *
 * N: allocations during the first call; M: allocations during the CALLS later calls, in total;
 * C: the last return code (0 = FLOWC_OK). The inputs are small deterministic values; for
 * class-conditional models the label column is 0; field rows get times 0.5.
 * Exit status 0 when it ran; 2 on bad usage or a model it cannot load.
 */
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static unsigned long allocations;

static void counted(void) { __atomic_fetch_add(&allocations, 1, __ATOMIC_RELAXED); }
void *malloc(size_t n) { counted(); return __libc_malloc(n); }
void *calloc(size_t n, size_t size) { counted(); return __libc_calloc(n, size); }
void *realloc(void *p, size_t n) { counted(); return __libc_realloc(p, n); }
void *memalign(size_t alignment, size_t n) { counted(); return __libc_memalign(alignment, n); }
void *aligned_alloc(size_t alignment, size_t n) { counted(); return __libc_memalign(alignment, n); }
int posix_memalign(void **out, size_t alignment, size_t n) {
    counted();
    void *p = __libc_memalign(alignment, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

/* The product of the integers in the JSON array after "key": [ ... ]; 0 when absent. */
static long shape_product(const char *json, const char *key) {
    const char *at = strstr(json, key);
    if (!at || !(at = strchr(at, '['))) return 0;
    long product = 1;
    for (const char *p = at + 1; *p && *p != ']';) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) { p++; continue; }
        product *= v;
        p = end;
    }
    return product;
}

/* Whether the metadata's "entries" list names `entry`. */
static int listed(const char *json, const char *entry) {
    const char *start = strstr(json, "\"entries\""), *end = start ? strchr(start, ']') : NULL;
    char quoted[32];
    snprintf(quoted, sizeof quoted, "\"%s\"", entry);
    const char *at = start ? strstr(start, quoted) : NULL;
    return at && at < end;
}

/* The integer after "key": (0 when absent or null). */
static long integer(const char *json, const char *key) {
    const char *at = strstr(json, key);
    if (!at || !(at = strchr(at, ':'))) return 0;
    return strtol(at + 1, NULL, 10);
}

typedef uint64_t (*workspace_fn)(int32_t, int64_t);
typedef int32_t (*three_fn)(const float *, float *, float *, int64_t, void *, const float *const *);
typedef int32_t (*two_fn)(const float *, float *, int64_t, void *, const float *const *);

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s MODEL.so BATCH CALLS\n", argv[0]); return 2; }
    void *model = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!model) { fprintf(stderr, "cannot load %s: %s\n", argv[1], dlerror()); return 2; }
    long batch = atol(argv[2]), calls = atol(argv[3]);
    const char *(*metadata)(void) = (const char *(*)(void))dlsym(model, "flowc_metadata");
    workspace_fn workspace_size = (workspace_fn)dlsym(model, "flowc_workspace_size");
    if (!metadata || !workspace_size || batch < 1 || calls < 1) { fprintf(stderr, "%s: not a Flowc model, or bad BATCH/CALLS\n", argv[1]); return 2; }
    const char *json = metadata();
    int conditional = integer(json, "\"classes\"") > 0;
    long input = shape_product(json, "\"input_shape\""), latent = shape_product(json, "\"latent_shape\"");
    long field = integer(json, "\"field_width\"");
    long widest = (input > latent ? input : latent) + (field > 0 ? field : 0) + 2;
    float *in = malloc(sizeof(float) * widest * batch), *out = malloc(sizeof(float) * widest * batch);
    float *logdet = malloc(sizeof(float) * batch);

    static const char *names[] = {"flowc_forward", "flowc_log_prob", "flowc_inverse", "flowc_sample", "flowc_field", "flowc_score"};
    for (int entry = 0; entry < 6; entry++) {
        void *f = dlsym(model, names[entry]);
        if (!f || !listed(json, names[entry] + 6)) continue;
        long state = entry == 2 || entry == 3 ? latent : input, width = entry == 4 ? field : state + conditional;
        for (long r = 0; r < batch; r++)
            for (long c = 0; c < width; c++)
                in[r * width + c] = c < state ? 0.5f * sinf((float)(r * 31 + c)) : (entry == 4 && c < field - conditional ? 0.5f : 0.0f);
        void *workspace = NULL;
        if (posix_memalign(&workspace, 64, workspace_size(entry, batch) + 64) != 0) return 2;
        int32_t code = 0;
        unsigned long before = allocations, first = 0;
        for (long call = 0; call <= calls; call++) {
            if (call == 1) first = allocations - before, before = allocations;
            if (entry == 1 || entry >= 4) code = ((two_fn)f)(in, out, batch, workspace, NULL);
            else code = ((three_fn)f)(in, out, logdet, batch, workspace, NULL);
        }
        printf("%s first=%lu steady=%lu code=%d\n", names[entry] + 6, first, allocations - before, code);
        free(workspace);
    }
    return 0;
}
