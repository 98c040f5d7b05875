"""qgnn: low-bit quantization for deep GNNs with smoothness-aware message propagation."""

__version__ = "0.1.0"

from qgnn_cli.errors import ConfigError, DataError, ModelFileError, QgnnError  # noqa: E402

__all__ = ["__version__", "QgnnError", "DataError", "ConfigError", "ModelFileError"]
