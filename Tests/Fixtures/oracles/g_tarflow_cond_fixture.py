"""Makes Tests/Fixtures/g_tarflow_cond.safetensors with apple/ml-tarflow's own model class
(transformer_flow.Model, commit 313120e): a class-conditional TarFlow (10 classes) on 8x8x1,
patch 2, 64 channels, 2 blocks x 2 layers, with random weights (proj_out ~ N(0, 0.02^2), as the public fixture, and
class_embed ~ N(0, 0.3^2) so that the flow and the conditioning are far from trivial).

Stored: the weights as w.<state_dict key>; x (16,1,8,8), y (16,) labels; z, logdet (the
library's per-dimension mean) for (x, y) and z_uncond, logdet_uncond for y = None (the mean
class embedding); noise (16,16,4); and samples model.reverse(noise, y, ...) for
  sample:            no guidance
  sample_guided:     guidance 1.5, guide_what 'ab'
  sample_annealed:   guidance 2.0, annealed_guidance, attn_temp 0.8 on the unconditional branch
  sample_guided_a:   guidance 1.0, guide_what 'a'

Run (torch and safetensors installed, ml-tarflow checked out):
  PYTHONPATH=/path/to/ml-tarflow python3 Tests/Fixtures/oracles/g_tarflow_cond_fixture.py
"""
import json

import numpy as np
import torch
from safetensors.torch import save_file

import transformer_flow

torch.manual_seed(2026)
model = transformer_flow.Model(in_channels=1, img_size=8, patch_size=2, channels=64, num_blocks=2,
                               layers_per_block=2, num_classes=10)
with torch.no_grad():
    for block in model.blocks:
        block.proj_out.weight.normal_(0, 0.02)
        block.class_embed.normal_(0, 0.3)
model.eval()

x = torch.rand(16, 1, 8, 8) * 2 - 1
y = torch.arange(16) % 10
noise = torch.randn(16, 16, 4)
out = {}
with torch.no_grad():
    z, _, logdet = model(x, y)
    z_u, _, logdet_u = model(x, None)
    out["x"], out["y"], out["z"], out["logdet"] = x, y.float(), z, logdet
    out["z_uncond"], out["logdet_uncond"] = z_u, logdet_u
    out["noise"] = noise
    out["sample"] = model.reverse(noise.clone(), y)
    out["sample_guided"] = model.reverse(noise.clone(), y, guidance=1.5, guide_what="ab")
    out["sample_annealed"] = model.reverse(noise.clone(), y, guidance=2.0, guide_what="ab", attn_temp=0.8, annealed_guidance=True)
    out["sample_guided_a"] = model.reverse(noise.clone(), y, guidance=1.0, guide_what="a")
    back = model.reverse(z.clone(), y)
    print("round trip max |x - reverse(z)|:", (back - x).abs().max().item())
tensors = {k: v.contiguous().float() for k, v in out.items()}
tensors.update({"w." + k: v.contiguous().float() for k, v in model.state_dict().items()})
meta = {"model": "g_tarflow_cond", "made_by": "Tests/Fixtures/oracles/g_tarflow_cond_fixture.py",
        "config": json.dumps(dict(in_channels=1, img_size=8, patch_size=2, channels=64, num_blocks=2, layers_per_block=2, num_classes=10)),
        "versions": json.dumps({"torch": torch.__version__, "apple/ml-tarflow": "313120e"})}
save_file(tensors, "Tests/Fixtures/g_tarflow_cond.safetensors", metadata=meta)
