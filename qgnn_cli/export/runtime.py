"""Packed inference: the whole eval forward of an exported model on the ``qgnn_cli.kernels`` ops.

GEMMs run on ``kernels.gemm`` (packed activations x packed weights), aggregations on
``kernels.spmm_requant`` (packed rows in, the aggregated result quantized onto its output site's grid
in the epilogue) with ``row_scale = D^-1/2``. Between packed ops, values stay packed where the chain of
sites is a function of the code alone: a GEMM's output codes (``quantize_pack`` on its output site)
become the next GEMM's input codes across a ReLU, or a GCN aggregation's input codes across ``D^-1/2``,
through byte tables (``lut.py``); a GCN aggregation's output codes become the next GEMM's input codes
across bias, ReLU and the update site the same way. Other sites run in float with the rounding rule of
``kernels/rounding.py`` (``siteops.py``). SMP's propagation is ``smp_runtime.py``. Every step mirrors the training forward in eval mode, so
the predictions are the QAT model's, to the bit (tests/export/test_parity.py).

    model = PackedModel.load("model.qgnn")
    logp = model.forward(graph, model.features(graph))        # graph: data.Graph, CSR or PackedGraph
"""

from __future__ import annotations

import types
from pathlib import Path

import torch
import torch.nn.functional as F

from qgnn_cli.errors import DataError, ModelFileError
from qgnn_cli.export.format import read_artifact
from qgnn_cli.export.graph import PackedGraph
from qgnn_cli.export.lut import CodeMap, RowCodeMap
from qgnn_cli.export.pack_model import KIND, read_sites
from qgnn_cli.export.siteops import Grid, StageClock, dequant, no_clock, requant
from qgnn_cli.kernels import gemm, gemm_requant, spmm, spmm_requant, words_per_row
from qgnn_cli.export.smp_runtime import forward_smp
from qgnn_cli.nn.smp import SMPParams

ENERGY_MODES = ("exact", "identity")


class PackedModel:
    def __init__(self, tensors: dict[str, torch.Tensor], meta: dict, source: str = "artefact"):
        self.source = source
        try:
            if meta.get("kind") != KIND:
                raise ModelFileError(f"not a packed model (kind {meta.get('kind')!r})")
            self.kind = meta["model"]
            self.config = dict(meta["config"])
            self.num_features, self.num_classes = int(meta["num_features"]), int(meta["num_classes"])
            sites = read_sites(meta["sites"], tensors.get("site_scales"))
            self.grids = {e["name"]: Grid.from_entry(e) for e in sites}
            self.linears = {path: dict(info) for path, info in meta["linears"].items()}
            self.layers = int(self.config["layers"])
            self._check_structure(tensors)
        except ModelFileError as exc:
            raise ModelFileError(f"{source}: {exc}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelFileError(f"{source}: inconsistent packed model ({type(exc).__name__}: {exc})") from None
        self.tensors = tensors
        self.meta = meta
        self._weights = {path: self._weight_args(path) for path in self.linears}
        self.code_maps = self._code_maps() if self.kind == "gcn" else {}
        self.row_maps = True  # per-graph tables for the GEMM -> aggregation hand-over (N x 256 bytes per layer)
        self.relu_map = (self._relu_map("lin_in", "layers.0.lin" if self.layers else "lin_out") if self.kind == "gcn"
                         else self._relu_map("mlp.lin1", "mlp.lin2"))
        c = self.config
        self.smp_params = SMPParams(
            mu=float(c["mu"]), eta=float(c["eta"]), eta_s=float(c["eta_s"]), eta_lambda=float(c["eta_lambda"]),
            alpha_th=float(c["alpha_th"]), lambda_init=float(c["lambda_init"]), s_init=float(c["s_init"]),
            mode=c["prop"], grad=c["smp_grad"],
        ) if self.kind == "smp" else None

    @classmethod
    def load(cls, path: str | Path) -> "PackedModel":
        tensors, meta = read_artifact(path)
        return cls(tensors, meta, str(path))

    # -- structure checks (run once, at load) ---------------------------------------------------------
    def _linear_paths(self) -> list[str]:
        if self.kind == "smp":
            return ["mlp.lin1", "mlp.lin2"]
        if self.kind == "gcn":
            return ["lin_in"] + [f"layers.{i}.lin" for i in range(self.layers)] + ["lin_out"]
        raise ModelFileError(f"unknown model kind {self.kind!r}")

    def _agg_prefixes(self) -> list[str]:
        if self.kind == "gcn":
            return [f"layers.{i}.agg" for i in range(self.layers)]
        which = ("x", "dx") if self.config["prop"] == "smp" else ("x",)
        return [f"prop.steps.{k}.agg_{w}" for k in range(self.layers) for w in which]

    def _check_structure(self, tensors: dict[str, torch.Tensor]) -> None:
        needed = [f"{p}.{s}" for p in self._linear_paths() for s in ("input", "weight", "output")]
        needed += [f"{p}.{s}" for p in self._agg_prefixes() for s in ("input", "output")]
        if self.kind == "smp":
            needed += [f"prop.steps.{k}.update" for k in range(self.layers)]
        else:
            needed += [f"layers.{i}.update" for i in range(self.layers)]
            for i in range(self.layers):
                bias = tensors.get(f"layers.{i}.bias")
                if bias is None or bias.dtype != torch.float32 or bias.dim() != 1:
                    raise ModelFileError(f"tensor layers.{i}.bias missing or malformed")
        missing = [n for n in needed if n not in self.grids]
        if missing:
            raise ModelFileError(f"site(s) missing from the header: {', '.join(missing[:3])}")
        for path in self._linear_paths():
            info = self.linears[path]
            n_in, n_out = int(info["in"]), int(info["out"])
            weight = tensors.get(f"{path}.weight")
            w_grid = self.grids[f"{path}.weight"]
            packed = bool(info["packed"])
            if packed != (self.grids[f"{path}.input"].enabled and w_grid.enabled):
                raise ModelFileError(f"{path}: packed flag disagrees with its sites")
            shape = (n_out, words_per_row(n_in, w_grid.bits)) if packed else (n_out, n_in)
            dtype = torch.int32 if packed else torch.float32
            if weight is None or weight.dtype != dtype or tuple(weight.shape) != shape:
                raise ModelFileError(f"tensor {path}.weight missing or not {dtype} {shape}")
            bias = tensors.get(f"{path}.bias")
            if bool(info["bias"]) and (bias is None or bias.dtype != torch.float32 or tuple(bias.shape) != (n_out,)):
                raise ModelFileError(f"tensor {path}.bias missing or malformed")
        first, last = self.linears[self._linear_paths()[0]], self.linears[self._linear_paths()[-1]]
        if int(first["in"]) != self.num_features or int(last["out"]) != self.num_classes:
            raise ModelFileError("num_features/num_classes disagree with the weights")

    def _weight_args(self, path: str) -> dict:
        info, grid = self.linears[path], self.grids[f"{path}.weight"]
        out = int(info["out"])
        return {
            "weight": self.tensors[f"{path}.weight"].contiguous(),
            "bias": self.tensors.get(f"{path}.bias") if info["bias"] else None,
            "w_scale": torch.full((out,), grid.scale, dtype=torch.float32),
            "w_zero": torch.full((out,), grid.zero, dtype=torch.int32),
            "k": int(info["in"]),
        }

    # -- inputs -----------------------------------------------------------------------------------------
    def features(self, graph) -> torch.Tensor:
        """The graph's node features prepared as in training (row-normalised when the config says so)."""
        from qgnn_cli.train.loop import node_features  # the one definition of the preprocessing

        return node_features(graph, types.SimpleNamespace(normalize_features=bool(self.config.get("normalize_features", True))))

    def _check_inputs(self, g: PackedGraph, x: torch.Tensor) -> None:
        if x.dim() != 2 or x.dtype != torch.float32:
            raise DataError(f"node features must be 2-D float32, got {x.dim()}-D {x.dtype}")
        if x.shape[1] != self.num_features:
            raise DataError(
                f"{self.source} was built for {self.num_features} input features, the graph has {x.shape[1]}")
        if x.shape[0] != g.num_nodes:
            raise DataError(f"features have {x.shape[0]} rows for a graph of {g.num_nodes} nodes")
        for prefix in self._agg_prefixes():
            grid = self.grids[f"{prefix}.input"]
            if grid.enabled and g.max_degree * max(grid.levels, grid.zero) >= 2**31:
                raise DataError(f"a node of degree {g.max_degree} would overflow the 32-bit accumulator")

    # -- ops --------------------------------------------------------------------------------------------
    def _linear(self, path: str, x: torch.Tensor | None, clock, codes: torch.Tensor | None = None,
                to_next: CodeMap | None = None) -> torch.Tensor:
        """``Q_out(Q_in(x) @ Q_w(W).T + b)``: QLinear's eval forward (``codes``: ``x`` already on the input grid).

        ``to_next``: return the next op's input codes instead (the output site packed in the GEMM's
        epilogue by ``kernels.gemm_requant``, then a code table).
        """
        a_grid, w_grid, o_grid = (self.grids[f"{path}.{s}"] for s in ("input", "weight", "output"))
        w = self._weights[path]
        if self.linears[path]["packed"]:
            if codes is not None:
                a = codes
            else:
                with clock("requant"):
                    a = a_grid.pack(x)
            args = (a, a_grid.bits, w["k"], a_grid.scale, a_grid.zero, w["weight"], w_grid.bits, w["w_scale"], w["w_zero"])
            if to_next is not None and o_grid.enabled:  # the output site packed in the GEMM's epilogue
                with clock("gemm"):
                    out_codes = gemm_requant(*args, o_grid.bits, o_grid.scale, o_grid.zero, a_mult=a_grid.mult,
                                             w_mult=w_grid.mult, out_mult=o_grid.mult, out_skew=o_grid.skew,
                                             bias=w["bias"])
                with clock("requant"):
                    return to_next.apply(out_codes)
            with clock("gemm"):
                out = gemm(*args, a_mult=a_grid.mult, w_mult=w_grid.mult, bias=w["bias"])
        else:
            with clock("requant"):
                xq = requant(x, a_grid)
            with clock("gemm"):
                out = xq @ w["weight"].T
                if w["bias"] is not None:
                    out = out + w["bias"]
        if to_next is not None:
            with clock("requant"):
                return to_next.apply(o_grid.pack(out))
        with clock("requant"):
            return requant(out, o_grid)

    def _aggregate(self, prefix: str, x: torch.Tensor | None, g: PackedGraph, clock, inplace: bool = False,
                   packed_out: bool = False, codes: torch.Tensor | None = None, cols: int = 0) -> torch.Tensor:
        """``Q_out(D^-1/2 (A+I) Q_in(D^-1/2 x))``: QAggregate's eval forward (``packed_out``: the codes).

        ``codes``: ``Q_in(D^-1/2 x)`` already packed, ``cols`` wide (then ``x`` is None).
        """
        in_grid, out_grid = self.grids[f"{prefix}.input"], self.grids[f"{prefix}.output"]
        if codes is not None:
            return self._aggregate_codes(codes, in_grid, out_grid, g, clock, packed_out, cols)
        cols = x.shape[1]
        with clock("requant"):
            pre = x.mul_(g.dinv_col) if inplace else x * g.dinv_col
        if not in_grid.enabled:
            with clock("aggregation"):
                out = g.sparse_mm(pre).mul_(g.dinv_col)
            with clock("requant"):
                return requant(out, out_grid)
        with clock("requant"):
            codes = in_grid.pack(pre)
        return self._aggregate_codes(codes, in_grid, out_grid, g, clock, packed_out, cols)

    def _aggregate_codes(self, codes, in_grid: Grid, out_grid: Grid, g: PackedGraph, clock, packed_out: bool,
                         cols: int) -> torch.Tensor:
        args = (g.indptr, g.indices, codes, in_grid.bits, cols, in_grid.scale, in_grid.zero)
        if not out_grid.enabled:
            with clock("aggregation"):
                return spmm(*args, mult=in_grid.mult, row_scale=g.dinv, check=False)
        with clock("aggregation"):
            packed = spmm_requant(*args, out_grid.bits, out_grid.scale, out_grid.zero, mult=in_grid.mult,
                                  out_mult=out_grid.mult, out_skew=out_grid.skew, row_scale=g.dinv, check=False)
        if packed_out:
            return packed
        with clock("requant"):
            return dequant(packed, out_grid, cols)

    # -- forward ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def forward(self, graph, x: torch.Tensor | None = None, *, clock: StageClock | None = None,
                energy: str = "exact") -> torch.Tensor:
        """Log-probabilities (N, classes). ``x`` defaults to :meth:`features` of ``graph``.

        ``energy="identity"`` computes SMP's tr(dX^T L dX) as ||dX||^2 - <dX, A(dX)> from the quantized
        aggregation already at hand instead of the extra float sparse product ``nn.energy`` takes: O(N)
        instead of O(nnz) work, for benchmarks; predictions may then differ from training's on a few nodes.
        """
        if energy not in ENERGY_MODES:
            raise ValueError(f"energy must be one of {ENERGY_MODES}, got {energy!r}")
        g = PackedGraph.of(graph)
        if x is None:
            x = self.features(graph)
        self._check_inputs(g, x)
        clock = clock or no_clock
        if self.kind == "smp":
            out = self._forward_smp(g, x, clock, energy)
        else:
            out = self._forward_gcn(g, x, clock)
        with clock("other"):
            return F.log_softmax(out, dim=-1)

    def predict(self, graph, x: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        return self.forward(graph, x, **kwargs).argmax(dim=1)

    def _code_maps(self) -> dict[int, CodeMap]:
        """Layer i's aggregated codes -> the next linear's input codes, where every site on the way is on."""
        maps = {}
        for i in range(self.layers):
            nxt = f"layers.{i + 1}.lin" if i + 1 < self.layers else "lin_out"
            src, upd = self.grids[f"layers.{i}.agg.output"], self.grids[f"layers.{i}.update"]
            dst = self.grids[f"{nxt}.input"]
            if (self.grids[f"layers.{i}.agg.input"].enabled and src.enabled and upd.enabled and dst.enabled
                    and src.bits == dst.bits and self.linears[nxt]["packed"]):
                maps[i] = CodeMap(src, self.tensors[f"layers.{i}.bias"], upd, dst)
        return maps

    def _relu_map(self, src_path: str, dst_path: str) -> CodeMap | None:
        """``src``'s output codes -> ``dst``'s input codes across a ReLU, when both are packed on one width."""
        src, dst = self.grids[f"{src_path}.output"], self.grids[f"{dst_path}.input"]
        if not (self.linears[src_path]["packed"] and self.linears[dst_path]["packed"] and src.enabled
                and dst.enabled and src.bits == dst.bits):
            return None
        return CodeMap(src, torch.zeros(int(self.linears[src_path]["out"])), Grid(32, 1.0, 0), dst)

    def _row_map(self, i: int, g: PackedGraph) -> RowCodeMap | None:
        """Layer i's GEMM output codes -> its aggregation's input codes (cached on the graph), or None."""
        if not self.row_maps:
            return None
        src, dst = self.grids[f"layers.{i}.lin.output"], self.grids[f"layers.{i}.agg.input"]
        if not (self.linears[f"layers.{i}.lin"]["packed"] and src.enabled and dst.enabled and src.bits == dst.bits
                and i in self.code_maps):
            return None
        key = ("row_map", src, dst, int(self.linears[f"layers.{i}.lin"]["out"]))
        if key not in g._cache:
            g._cache[key] = RowCodeMap(src, dst, g.dinv, key[3])
        return g._cache[key]

    def _forward_gcn(self, g: PackedGraph, x: torch.Tensor, clock) -> torch.Tensor:
        if self.relu_map is not None:
            h, codes = None, self._linear("lin_in", x, clock, to_next=self.relu_map)
        else:
            h, codes = self._linear("lin_in", x, clock), None
            with clock("other"):
                h = F.relu(h, inplace=True)
        for i in range(self.layers):
            row_map = self._row_map(i, g)
            if row_map is not None:  # the GEMM's output codes become the aggregation's input codes by table
                agg_in = self._linear(f"layers.{i}.lin", h, clock, codes, to_next=row_map)
                t = None
            else:
                agg_in, t = None, self._linear(f"layers.{i}.lin", h, clock, codes)
            if i in self.code_maps:  # aggregate into packed codes and map them to the next linear's input
                packed = self._aggregate(f"layers.{i}.agg", t, g, clock, inplace=True, packed_out=True,
                                         codes=agg_in, cols=int(self.linears[f"layers.{i}.lin"]["out"]))
                with clock("requant"):
                    h, codes = None, self.code_maps[i].apply(packed)
                continue
            a = self._aggregate(f"layers.{i}.agg", t, g, clock, inplace=True)
            with clock("other"):
                a = F.relu(a.add_(self.tensors[f"layers.{i}.bias"]), inplace=True)
            with clock("requant"):
                h, codes = requant(a, self.grids[f"layers.{i}.update"]), None
        return self._linear("lin_out", h, clock, codes)

    def _forward_smp(self, g: PackedGraph, x: torch.Tensor, clock, energy: str) -> torch.Tensor:
        return forward_smp(self, g, x, clock, energy)
