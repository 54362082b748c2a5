"""Makes Tests/Fixtures/g_starflow.safetensors with apple/ml-starflow's own model class
(transformer_flow.Model, commit e565a46): a deep-shallow STARFlow on 8x8x1 images, patch 2 (16
tokens of 4 values), 64 channels, layers_per_block [1, 1, 3] (the last, top block is the deep
one), 2-D RoPE (no learned positional embedding), the SOS token, the softplus scale
softplus(a + 0.5413) and the soft clip 4·tanh(o/4); random weights (proj_out ~ N(0, 0.02^2)).

Stored: the weights as w.<state_dict key>; x (16,1,8,8) in [-1, 1]; z (16,1,8,8) (the model's
output image) and logdet_sum (16,) = Σ of the blocks' per-element log-dets; noise (16,1,8,8) and
sample = model.reverse(noise) (KV-cached, no guidance).

Run (torch, einops, tqdm, safetensors installed; ml-starflow checked out):
  PYTHONPATH=/path/to/ml-starflow python3 Tests/Fixtures/oracles/g_starflow_fixture.py
"""
import json

import torch
from safetensors.torch import save_file

import transformer_flow as tf

torch.manual_seed(2027)
model = tf.Model(in_channels=1, img_size=8, patch_size=2, channels=64, num_blocks=3, layers_per_block=[1, 1, 3],
                 head_dim=64, rope=True, sos=True, use_softplus=True, soft_clip=4.0)
with torch.no_grad():
    for block in model.blocks:
        block.proj_out.weight.normal_(0, 0.02)
model.eval()

x = torch.rand(16, 1, 8, 8) * 2 - 1
noise = torch.randn(16, 1, 8, 8)
with torch.no_grad():
    z, _, _, logdets = model(x)
    logdet = sum(ld.sum(dim=[1, 2]) for ld in logdets)
    sample = model.reverse(noise.clone())
    back = model.reverse(z.clone())
    print("round trip max |x - reverse(z)|:", (back - x).abs().max().item())
tensors = {"x": x, "z": z, "logdet_sum": logdet, "noise": noise, "sample": sample}
tensors.update({"w." + k: v for k, v in model.state_dict().items()})
tensors = {k: v.contiguous().float().clone() for k, v in tensors.items()}
meta = {"model": "g_starflow", "made_by": "Tests/Fixtures/oracles/g_starflow_fixture.py",
        "config": json.dumps(dict(in_channels=1, img_size=8, patch_size=2, channels=64, num_blocks=3, layers_per_block=[1, 1, 3],
                                  head_dim=64, rope=True, sos=True, use_softplus=True, soft_clip=4.0)),
        "versions": json.dumps({"torch": torch.__version__, "apple/ml-starflow": "e565a46"})}
save_file(tensors, "Tests/Fixtures/g_starflow.safetensors", metadata=meta)
