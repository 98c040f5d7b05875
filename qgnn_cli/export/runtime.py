"""Packed inference: the whole eval forward of an exported model on the ``qgnn_cli.kernels`` ops.

GEMMs run on ``kernels.gemm`` (packed activations x packed weights), aggregations on
``kernels.spmm_requant`` (packed rows in, the aggregated result quantized onto its output site's grid
in the epilogue) with ``row_scale = D^-1/2``. Between two packed ops the values never leave the
kernels: the producing op runs the sites in between in its epilogue and writes the consumer's input
codes (a ``siteops.Handover``, an epilogue chain of ``kernels/chain.py``): a GEMM's output site and
ReLU before the next GEMM; a GCN layer's GEMM output site and ``D^-1/2`` before its aggregation; the
aggregation's output site, bias, ReLU and update site before the next GEMM. Other sites run in float
with the rounding rule of ``kernels/rounding.py`` (``siteops.py``). SMP's propagation is
``smp_runtime.py``. Every step mirrors the training forward in eval mode, so the predictions are the
QAT model's, to the bit (tests/export/test_parity.py).

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
from qgnn_cli.export.pack_model import KIND, read_sites
from qgnn_cli.export.siteops import Grid, Handover, StageClock, dequant, no_clock, requant, site_stage
from qgnn_cli.kernels import gemm, gemm_requant, spmm, spmm_requant, words_per_row
from qgnn_cli.kernels.chain import apply_chain_reference
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
        self.to_next_linear = self._to_next_linear() if self.kind == "gcn" else {}
        self.relu_handover = (self._relu_handover("lin_in", "layers.0.lin" if self.layers else "lin_out")
                         if self.kind == "gcn" else self._relu_handover("mlp.lin1", "mlp.lin2"))
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
                to_next: Handover | None = None) -> torch.Tensor:
        """``Q_out(Q_in(x) @ Q_w(W).T + b)``: QLinear's eval forward (``codes``: ``x`` already on the input grid).

        ``to_next``: return the next op's input codes instead, written by ``kernels.gemm_requant``'s
        epilogue (a float layer runs the chain's reference).
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
            if to_next is not None:
                dst = to_next.dst
                with clock("gemm"):
                    return gemm_requant(*args, dst.bits, dst.scale, dst.zero, a_mult=a_grid.mult, w_mult=w_grid.mult,
                                        out_mult=dst.mult, out_skew=dst.skew, bias=w["bias"], chain=to_next.chain)
            with clock("gemm"):
                out = gemm(*args, a_mult=a_grid.mult, w_mult=w_grid.mult, bias=w["bias"])
        else:
            with clock("requant"):
                xq = requant(x, a_grid)
            with clock("gemm"):
                out = xq @ w["weight"].T
                if w["bias"] is not None:
                    out = out + w["bias"]
        if to_next is not None:  # a float layer: the chain's stages in torch, then the codes
            with clock("requant"):
                return to_next.dst.pack(apply_chain_reference(out, *to_next.chain_args()))
        with clock("requant"):
            return requant(out, o_grid, inplace=True)  # `out` is this op's own fresh result

    def _aggregate(self, prefix: str, x: torch.Tensor | None, g: PackedGraph, clock, inplace: bool = False,
                   packed_out: bool = False, codes: torch.Tensor | None = None, cols: int = 0,
                   to_next: Handover | None = None) -> torch.Tensor:
        """``Q_out(D^-1/2 (A+I) Q_in(D^-1/2 x))``: QAggregate's eval forward (``packed_out``: the codes).

        ``codes``: ``Q_in(D^-1/2 x)`` already packed, ``cols`` wide (then ``x`` is None). ``to_next``
        (input site on): the next op's input codes instead, written by ``spmm_requant``'s epilogue.
        """
        in_grid, out_grid = self.grids[f"{prefix}.input"], self.grids[f"{prefix}.output"]
        if codes is not None:
            return self._aggregate_codes(codes, in_grid, out_grid, g, clock, packed_out, cols, to_next)
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
        return self._aggregate_codes(codes, in_grid, out_grid, g, clock, packed_out, cols, to_next)

    def _aggregate_codes(self, codes, in_grid: Grid, out_grid: Grid, g: PackedGraph, clock, packed_out: bool,
                         cols: int, to_next: Handover | None = None) -> torch.Tensor:
        args = (g.indptr, g.indices, codes, in_grid.bits, cols, in_grid.scale, in_grid.zero)
        if to_next is not None:
            dst = to_next.dst
            with clock("aggregation"):
                return spmm_requant(*args, dst.bits, dst.scale, dst.zero, mult=in_grid.mult, out_mult=dst.mult,
                                    out_skew=dst.skew, row_scale=g.dinv, chain=to_next.chain, check=False)
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
            # In place, into the last op's own result: F.log_softmax's kernel (same bits) without a
            # fresh N x classes output, whose page faults cost as much as the arithmetic at 2M nodes.
            if out.dtype != torch.float32 or not out.is_contiguous():
                return F.log_softmax(out, dim=-1)
            return torch._log_softmax(out, -1, False, out=out)

    def predict(self, graph, x: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        return self.forward(graph, x, **kwargs).argmax(dim=1)

    def _to_next_linear(self) -> dict[int, Handover]:
        """Layer i's aggregation -> the next linear's input codes (output site, bias, ReLU, update site),
        where the aggregation runs packed and the next linear is packed."""
        out = {}
        for i in range(self.layers):
            nxt = f"layers.{i + 1}.lin" if i + 1 < self.layers else "lin_out"
            dst = self.grids[f"{nxt}.input"]
            if self.grids[f"layers.{i}.agg.input"].enabled and dst.enabled and self.linears[nxt]["packed"]:
                stages = (site_stage(self.grids[f"layers.{i}.agg.output"]) + (("add_col",), ("relu",))
                          + site_stage(self.grids[f"layers.{i}.update"]))
                out[i] = Handover(stages, dst, col=self.tensors[f"layers.{i}.bias"])
        return out

    def _relu_handover(self, src_path: str, dst_path: str) -> Handover | None:
        """``src``'s GEMM output -> ``dst``'s input codes across ReLU and ``src``'s output site (QLinear
        with ``relu=True``), when both layers are packed."""
        dst = self.grids[f"{dst_path}.input"]
        if not (self.linears[src_path]["packed"] and self.linears[dst_path]["packed"] and dst.enabled):
            return None
        return Handover((("relu",),) + site_stage(self.grids[f"{src_path}.output"]), dst)

    def output_codes(self, path: str) -> Handover | None:
        """A linear layer's output site itself, as codes (None when the site is off)."""
        grid = self.grids[f"{path}.output"]
        return Handover((), grid) if grid.enabled else None

    def _to_aggregation(self, i: int, g: PackedGraph) -> Handover | None:
        """Layer i's GEMM output -> its aggregation's input codes (output site, ``D^-1/2``)."""
        dst = self.grids[f"layers.{i}.agg.input"]
        if not (self.linears[f"layers.{i}.lin"]["packed"] and dst.enabled):
            return None
        return Handover(site_stage(self.grids[f"layers.{i}.lin.output"]) + (("mul_row",),), dst, row=g.dinv)

    def _forward_gcn(self, g: PackedGraph, x: torch.Tensor, clock) -> torch.Tensor:
        if self.relu_handover is not None:
            h, codes = None, self._linear("lin_in", x, clock, to_next=self.relu_handover)
        else:
            h, codes = self._linear("lin_in", x, clock), None
            with clock("other"):
                h = F.relu(h, inplace=True)
        for i in range(self.layers):
            lin, agg, cols = f"layers.{i}.lin", f"layers.{i}.agg", int(self.linears[f"layers.{i}.lin"]["out"])
            to_agg = self._to_aggregation(i, g)
            if to_agg is not None:
                agg_in, t = self._linear(lin, h, clock, codes, to_next=to_agg), None
            else:
                agg_in, t = None, self._linear(lin, h, clock, codes)
            if i in self.to_next_linear:
                h, codes = None, self._aggregate(agg, t, g, clock, inplace=True, codes=agg_in, cols=cols,
                                                 to_next=self.to_next_linear[i])
                continue
            a = self._aggregate(agg, t, g, clock, inplace=True, codes=agg_in, cols=cols)
            with clock("other"):
                a = F.relu(a.add_(self.tensors[f"layers.{i}.bias"]), inplace=True)
            with clock("requant"):
                h, codes = requant(a, self.grids[f"layers.{i}.update"]), None
        return self._linear("lin_out", h, clock, codes)

    def _forward_smp(self, g: PackedGraph, x: torch.Tensor, clock, energy: str) -> torch.Tensor:
        return forward_smp(self, g, x, clock, energy)
