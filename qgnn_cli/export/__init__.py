"""The ``.qgnn`` artefact and packed inference: format, packing a model, the runtime, post-training quantization.

    format.py      the container (header, payload, checksum; never unpickled)
    pack_model.py  a trained model -> tensors + meta (packed weight codes, every site's grid, the config)
    graph.py       a graph prepared once for the kernels (A + I, int32 columns, D^-1/2)
    siteops.py     per-site float ops with the rounding rule, and the stage clock
    runtime.py     PackedModel: the eval forward on qgnn_cli.kernels ops (the GCN stack, the GEMMs)
    smp_runtime.py the SMP propagation of the paper's model on the packed kernels
    ptq.py         post-training quantization (calibration, optional short QAT fine-tune)
"""

from qgnn_cli.export.format import FORMAT_VERSION, read_artifact, write_artifact
from qgnn_cli.export.graph import PackedGraph
from qgnn_cli.export.pack_model import export_model, fp32_bytes, pack_model
from qgnn_cli.export.runtime import PackedModel

__all__ = ["FORMAT_VERSION", "PackedGraph", "PackedModel", "export_model", "fp32_bytes", "pack_model",
           "read_artifact", "write_artifact"]
