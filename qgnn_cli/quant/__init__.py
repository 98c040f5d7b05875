"""Quantization-aware training pieces: the QLR fake quantizer, its STE, BT/BT*, alpha search, QLinear,
and the clean eval ranges."""

from qgnn_cli.quant.bt import BT_MODES, skewness
from qgnn_cli.quant.calibrate import EVAL_RANGES, clean_ranges
from qgnn_cli.quant.linear import QLinear
from qgnn_cli.quant.qlr import OFF, QLRQuantizer, check_site_bits
from qgnn_cli.quant.ste import centred_codes

__all__ = ["BT_MODES", "EVAL_RANGES", "OFF", "QLRQuantizer", "QLinear", "centred_codes", "check_site_bits",
           "clean_ranges", "skewness"]
