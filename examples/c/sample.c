/* Calling a compiled model from C: load it with dlopen, read its metadata, draw base noise with
 * flowc_noise and call flowc_sample and flowc_log_prob on a batch with a workspace of
 * flowc_workspace_size bytes. The samples are those of `flowc sample MODEL.so -n 4 --seed 7` and
 * of CompiledModel.sample(count: 4, seed: 7) in Swift: the same seed, the same noise.
 *
 *   flowc compile examples/two_moons/realnvp.flow -o two_moons.so
 *   cc -I Sources/CFlowcABI/include examples/c/sample.c -o sample -ldl && ./sample ./two_moons.so
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "flowc.h"

typedef int32_t (*entry2)(const float *, float *, float *, int64_t, void *, const float *const *);
typedef int32_t (*entry1)(const float *, float *, int64_t, void *, const float *const *);

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s MODEL.so\n", argv[0]); return 2; }
    void *so = dlopen(argv[1], RTLD_NOW);
    if (!so) { fprintf(stderr, "error: %s\n", dlerror()); return 1; }
    uint32_t (*version)(void) = (uint32_t (*)(void))dlsym(so, "flowc_abi_version");
    const char *(*metadata)(void) = (const char *(*)(void))dlsym(so, "flowc_metadata");
    uint64_t (*workspace_size)(int32_t, int64_t) = (uint64_t (*)(int32_t, int64_t))dlsym(so, "flowc_workspace_size");
    entry2 sample = (entry2)dlsym(so, "flowc_sample");
    entry1 log_prob = (entry1)dlsym(so, "flowc_log_prob");
    void (*noise)(uint64_t, int64_t, int64_t, float, float *) = (void (*)(uint64_t, int64_t, int64_t, float, float *))dlsym(so, "flowc_noise");
    if (!version || version() != FLOWC_ABI_VERSION || !noise) { fprintf(stderr, "error: not a Flowc ABI %d model\n", FLOWC_ABI_VERSION); return 1; }
    printf("%s\n", metadata());

    enum { batch = 4, dim = 2, blocks = (batch * dim + 3) / 4 };   /* a 2-D model; noise comes in blocks of 4 */
    float z[4 * blocks];
    noise(7, 0, blocks, 1.0f, z);   /* seed 7, from entry 0 (row 0), temperature 1 */
    float x[batch * dim], logdet[batch], logp[batch];
    size_t bytes = workspace_size(FLOWC_ENTRY_SAMPLE, batch);
    if (workspace_size(FLOWC_ENTRY_LOG_PROB, batch) > bytes) bytes = workspace_size(FLOWC_ENTRY_LOG_PROB, batch);
    void *workspace = aligned_alloc(64, (bytes + 63) / 64 * 64);
    int32_t code = sample(z, x, logdet, batch, workspace, NULL);
    if (code == FLOWC_OK) code = log_prob(x, logp, batch, workspace, NULL);
    if (code != FLOWC_OK) { fprintf(stderr, "error: entry point returned %d\n", code); return 1; }
    for (int i = 0; i < batch; i++) printf("x = (%.6f, %.6f)  log p(x) = %.6f\n", x[2 * i], x[2 * i + 1], logp[i]);
    free(workspace);
    dlclose(so);
    return 0;
}
