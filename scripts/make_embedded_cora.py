"""Build ``qgnn_cli/data/embedded/cora.npz`` from the Planetoid raw Cora files.

Provenance: the eight files ``ind.cora.{x,tx,allx,y,ty,ally,graph,test.index}`` from
https://github.com/kimiyoung/planetoid (``data/``, commit af6abf468a772cc055bec88c52e4d6f51b7c37e3),
as kept in ``shared/datasets/planetoid/Cora/raw``. Their sha256 (shared/datasets/README.md) are
checked below before anything is written and are stored in the output (``source_files``,
``source_sha256``). The graph goes through qgnn's own Planetoid loader, so the embedded copy loads
to the same tensors.

    python scripts/make_embedded_cora.py [--raw DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from qgnn_cli.data.embedded import EMBEDDED_CORA, write_compact
from qgnn_cli.data.planetoid import load_planetoid

REPO = Path(__file__).resolve().parents[1]
SOURCE_SHA256 = {
    "ind.cora.x": "23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab",
    "ind.cora.tx": "b9afbaa4a400df991f6f02ef677e1e44da55ffc04801fd02f9e673987829226a",
    "ind.cora.allx": "9419ba2f26f5c35243db64aba110e0f35a04851609e0dc5433450676ca6b8543",
    "ind.cora.y": "94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1",
    "ind.cora.ty": "41f5ac76596a1699cc33f53084a2419e92961c42bb75f36fc38e616d348532ad",
    "ind.cora.ally": "2b998f5cc7fedc86e7f97ca2498f47a1ffc1462c29e2d578b23bf3f62b6e7d71",
    "ind.cora.graph": "58f13302f39dde8852dad6fe6d15b89b077b6d7f837626bce671ef80344b383d",
    "ind.cora.test.index": "297ce89af2b51a6a194181c7dbe1796c6a1cf9cd9349a88383b1b1e227867875",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=REPO.parent / "shared/datasets/planetoid/Cora/raw")
    parser.add_argument("--out", type=Path, default=EMBEDDED_CORA)
    args = parser.parse_args()
    for name, expected in SOURCE_SHA256.items():
        actual = hashlib.sha256((args.raw / name).read_bytes()).hexdigest()
        if actual != expected:
            raise SystemExit(f"{args.raw / name}: sha256 {actual} is not the upstream {expected}")
    write_compact(load_planetoid(args.raw, "cora"), args.out, SOURCE_SHA256)
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
