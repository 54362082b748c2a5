/// The best peer per row of issue 8's table (µs for the whole batch): ../shared/baselines/
/// results-peers.md, measured 2026-11-29 09:37–09:54 on a 2-vCPU Sapphire Rapids VM (AVX-512) by
/// bench_peers.py (PyTorch eager, torch.compile, ONNX Runtime, JAX jit; 1 or 2 threads, the
/// faster). They come from another run, so the "vs best peer" column is indicative; eager, ONNX
/// Runtime and JAX jit are measured in this run ("vs the fastest peer in this run").
enum PeerTimings {
    struct Best { var micros: Double; var who: String }

    static let best: [String: Best] = [
        "c_realnvp64 log_prob 1": Best(micros: 111, who: "JAX jit"), "c_realnvp64 log_prob 256": Best(micros: 3049, who: "JAX jit"),
        "c_realnvp64 sample 1": Best(micros: 118, who: "JAX jit"), "c_realnvp64 sample 256": Best(micros: 2599, who: "ONNX Runtime"),
        "a_nsf log_prob 1": Best(micros: 163, who: "ONNX Runtime"), "a_nsf log_prob 256": Best(micros: 1822, who: "torch.compile"),
        "a_nsf sample 1": Best(micros: 1213, who: "torch.compile"), "a_nsf sample 256": Best(micros: 11600, who: "torch.compile"),
        "d_glow log_prob 1": Best(micros: 37, who: "ONNX Runtime"), "d_glow log_prob 256": Best(micros: 1669, who: "ONNX Runtime"),
        "d_glow sample 1": Best(micros: 31, who: "ONNX Runtime, W⁻¹ folded"), "d_glow sample 256": Best(micros: 1092, who: "ONNX Runtime, W⁻¹ folded"),
        "e_fm sample 1": Best(micros: 82, who: "JAX jit"), "e_fm sample 256": Best(micros: 3414, who: "ONNX Runtime"),
        "e_fm_rk4 sample 1": Best(micros: 333, who: "JAX jit"), "e_fm_rk4 sample 256": Best(micros: 14300, who: "ONNX Runtime"),
        "f_meanflow sample 1": Best(micros: 24, who: "ONNX Runtime"), "f_meanflow sample 256": Best(micros: 490, who: "ONNX Runtime"),
        "g_tarflow log_prob 1": Best(micros: 323, who: "ONNX Runtime"), "g_tarflow log_prob 256": Best(micros: 20200, who: "torch.compile"),
        "g_tarflow sample 1": Best(micros: 1892, who: "ONNX Runtime"), "g_tarflow sample 256": Best(micros: 38800, who: "PyTorch eager"),
    ]
}
