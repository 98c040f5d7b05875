"""A trained (quantized) model to the tensors and metadata of a ``.qgnn`` artefact.

What the artefact holds (``meta`` is JSON in the header, tensors are the payload; ``format.py``)::

    meta = {"kind": "qgnn-packed-model", "model": "smp" | "gcn",
            "config": TrainConfig.to_dict() (resolved; the runtime rebuilds the structure from it),
            "split": digest of the masks it trained on (optional; train/loop.py trained_split),
            "num_features", "num_classes",
            "sites": [[name, bits, zero, mult, skew], ...]   every site, forward order (bits 32: off),
            "linears": {path: {"in", "out", "bias", "packed"}},
            "bits": {"weights": [...], "activations": [...]}}
    tensors:  "site_scales"    float32, one scale per entry of "sites" (exact; 4 bytes instead of ~20 in JSON)
              "<path>.weight"  int32 packed codes on the weight site's grid (``kernels.quantize_pack``),
                               or float32 fake-quantized values when the linear has an off site
              "<path>.bias"    float32
              "layers.<i>.bias" float32 (GCN layers add their bias after aggregation)

``path`` is the QLinear's module path (``mlp.lin1``, ``lin_in``, ``layers.0.lin``, ...). Weight grids are
per tensor; the runtime expands them to the per-channel form ``kernels.gemm`` takes.
"""

from __future__ import annotations

import torch
from torch import nn

from qgnn_cli.errors import ModelFileError
from qgnn_cli.export.format import write_artifact
from qgnn_cli.kernels import quantize_pack
from qgnn_cli.kernels.quantize import check_grid
from qgnn_cli.quant import OFF, QLinear

KIND = "qgnn-packed-model"


def model_shape(model: nn.Module) -> tuple[int, int]:
    """``(num_features, num_classes)`` read off the first and last linear layers."""
    linears = [m for m in model.modules() if isinstance(m, QLinear)]
    if not linears:
        raise ModelFileError("the model has no linear layers to export")
    return int(linears[0].weight.shape[1]), int(linears[-1].weight.shape[0])


def site_table(model: nn.Module) -> list[dict]:
    """Every site's eval grid in forward order; an enabled site that never saw data is an error."""
    out = []
    for name, q in model.sites():
        if q.enabled and not bool(q.initialized):
            raise ModelFileError(
                f"quantizer site {name} has no calibrated range (the model never ran in training mode):"
                " train it or run `qgnn quantize` first"
            )
        bits, scale, zero, mult, skew = q.grid()
        out.append({"name": name, "bits": bits, "scale": scale, "zero": zero, "mult": mult, "skew": skew})
    return out


@torch.no_grad()
def _linear_tensors(path: str, lin: QLinear) -> tuple[dict[str, torch.Tensor], dict]:
    weight = lin.weight.detach().to(torch.float32).contiguous()
    packed = lin.input_q.enabled and lin.weight_q.enabled
    tensors: dict[str, torch.Tensor] = {}
    if packed:
        bits, scale, zero, mult, skew = lin.weight_q.grid()
        tensors[f"{path}.weight"] = quantize_pack(weight, bits, scale, zero, mult, skew)
    else:  # the training forward multiplies fake-quantized floats: store exactly those
        tensors[f"{path}.weight"] = lin.weight_q(weight).contiguous()
    if lin.bias is not None:
        tensors[f"{path}.bias"] = lin.bias.detach().to(torch.float32).contiguous()
    info = {"in": int(weight.shape[1]), "out": int(weight.shape[0]), "bias": lin.bias is not None, "packed": packed}
    return tensors, info


def pack_model(model: nn.Module, config_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """``(tensors, meta)`` for :func:`qgnn_cli.export.format.write_artifact`; the model is put in eval mode.

    ``config_dict`` is the resolved ``TrainConfig.to_dict()`` the model was built from.
    """
    model.eval()
    name = config_dict.get("model")
    if name not in ("smp", "gcn"):
        raise ModelFileError(f"cannot export model kind {name!r}: expected smp or gcn")
    num_features, num_classes = model_shape(model)
    sites = site_table(model)
    tensors: dict[str, torch.Tensor] = {}
    linears: dict[str, dict] = {}
    for path, module in model.named_modules():
        if isinstance(module, QLinear):
            t, info = _linear_tensors(path, module)
            tensors.update(t)
            linears[path] = info
    if name == "gcn":
        for i, layer in enumerate(model.layers):
            tensors[f"layers.{i}.bias"] = layer.bias.detach().to(torch.float32).contiguous()
    tensors["site_scales"] = torch.tensor([s["scale"] for s in sites], dtype=torch.float32)
    weight_bits = sorted({s["bits"] for s in sites if s["name"].endswith(".weight")})
    act_bits = sorted({s["bits"] for s in sites if not s["name"].endswith(".weight")})
    meta = {
        "kind": KIND,
        "model": name,
        "config": dict(config_dict),
        "num_features": num_features,
        "num_classes": num_classes,
        "sites": [[s["name"], s["bits"], s["zero"], s["mult"], s["skew"]] for s in sites],
        "linears": linears,
        "bits": {"weights": weight_bits, "activations": act_bits},
    }
    return tensors, meta


def fp32_bytes(model: nn.Module) -> int:
    """Bytes of the model's weights and biases in float32 (quantizer state left out)."""
    return sum(p.numel() * 4 for n, p in model.named_parameters() if not n.endswith("alpha"))


def read_sites(entries: list, scales: torch.Tensor | None) -> list[dict]:
    """The header's site list and the ``site_scales`` tensor back to dicts; ``ModelFileError`` if invalid."""
    if scales is None or scales.dtype != torch.float32 or scales.dim() != 1 or scales.numel() != len(entries):
        raise ModelFileError("tensor site_scales missing or not one float32 per site")
    out = []
    for entry, scale in zip(entries, scales.tolist()):
        try:
            name, bits, zero, mult, skew = entry
            site = {"name": str(name), "bits": int(bits), "scale": float(scale), "zero": int(zero),
                    "mult": int(mult), "skew": int(skew)}
            if site["bits"] != OFF:
                check_grid(site["bits"], site["scale"], site["zero"], site["mult"], site["skew"])
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"site {entry!r} has an invalid grid ({exc})") from None
        out.append(site)
    return out


def export_model(model: nn.Module, config, path, split: str | None = None) -> dict:
    """Write ``model`` (built from ``config``, a TrainConfig) to a ``.qgnn`` file; returns size figures.
    ``split``: the digest of the masks it trained on (the model file's), for ``qgnn eval`` to check."""
    tensors, meta = pack_model(model, config.resolved().to_dict())
    if split is not None:
        meta["split"] = split
    size = write_artifact(path, tensors, meta)
    fp32 = fp32_bytes(model)
    return {"path": str(path), "file_bytes": size, "fp32_weight_bytes": fp32, "packed_tensor_bytes":
            sum(t.numel() * t.element_size() for t in tensors.values()), "bits": meta["bits"],
            "model": meta["model"], "num_features": meta["num_features"], "num_classes": meta["num_classes"]}
