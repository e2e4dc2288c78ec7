"""Writing and reading ranked tables: CSV safe to open in a spreadsheet, parquet, meta.json.

The ``token`` column is the display form (control, bidi and invalid bytes escaped) with cells
that a spreadsheet would read as a formula prefixed by ``'``; ``bytes_hex`` keeps the exact bytes.
``read_table`` gives back every id and byte string exactly; ``read_rows`` reads such a CSV without
polars (which is imported only by the functions that need it). Every file is written atomically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cache import atomic_path, atomic_write_bytes
from .errors import InputError
from .text import spreadsheet_safe

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl

__all__ = [
    "safe_for_spreadsheet",
    "write_csv",
    "write_ranking",
    "read_table",
    "read_rows",
    "read_json",
    "token_bytes",
    "write_json",
    "write_knn",
    "read_knn",
    "KNN_FILE",
]

KNN_FILE = "knn.npz"  # the k-nearest-neighbour graph of a ranking (``Ranking.knn``), next to ranked.parquet

TEXT_COLUMNS = ("token",)


def safe_for_spreadsheet(frame: pl.DataFrame, columns: tuple[str, ...] = TEXT_COLUMNS) -> pl.DataFrame:
    import polars as pl

    cols = [c for c in columns if c in frame.columns]
    if not cols:
        return frame
    return frame.with_columns([pl.col(c).map_elements(spreadsheet_safe, return_dtype=pl.String) for c in cols])


def write_csv(frame: pl.DataFrame, path: str | os.PathLike) -> Path:
    """Atomic, spreadsheet-safe CSV (UTF-8, every field that needs it quoted)."""
    target = Path(path)
    with atomic_path(target) as tmp:
        safe_for_spreadsheet(frame).write_csv(tmp)
    return target


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n").encode("utf-8")


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    atomic_write_bytes(path, _json_bytes(obj))
    return Path(path)


def write_ranking(
    ranking: Any, out_dir: str | os.PathLike, *, step_key: Mapping[str, Any] | None = None, started: float | None = None
) -> dict[str, Path]:
    """``ranked.csv``, ``ranked.parquet`` and ``meta.json`` in ``out_dir`` (and ``knn.npz`` when the
    ranking has a neighbour graph, ``Ranking.knn``), committed together as
    the ``rank`` step (``steps.StepWriter``): all three are written to temporaries first and renamed
    last, so an interrupted write leaves the previous three files. With ``step_key`` (see
    ``steps.rank_key``) the step's marker is written after them, so ``scan`` can reuse them;
    without, any older marker is removed."""
    from .outputs import make_dir

    out = make_dir(out_dir)
    paths = {"csv": out / "ranked.csv", "parquet": out / "ranked.parquet", "meta": out / "meta.json"}
    graph = getattr(ranking, "knn", None)
    if graph is not None:
        paths["knn"] = out / KNN_FILE
    from .steps import StepCache

    with StepCache(out).writer("rank", step_key, started) as step:
        safe_for_spreadsheet(ranking.frame).write_csv(step.path("ranked.csv"))
        ranking.frame.write_parquet(step.path("ranked.parquet"))
        step.path("meta.json").write_bytes(_json_bytes(ranking.meta))
        if graph is not None:
            write_knn(graph, step.path(KNN_FILE))
    return paths


def write_knn(graph: Any, path: str | os.PathLike) -> Path:
    """The graph (``anomtok.knn.KnnGraph``) as an uncompressed ``.npz``: ``ids`` int32, ``sims``
    float32, ``exact_rows`` bool, ``info`` (JSON text). Written to ``path`` as given (a temporary of
    the rank step, or any file)."""
    import io
    import zipfile

    import numpy as np

    target = Path(path)
    # the same graph gives the same bytes: fixed zip dates, no timings (they are in meta.json)
    info = {k: v for k, v in graph.info.items() if k not in ("seconds", "approx_seconds")}
    arrays = {
        "ids": graph.ids.astype(np.int32),
        "sims": graph.sims.astype(np.float32),
        "exact_rows": graph.exact_rows.astype(bool),
        "info": np.array(json.dumps(info, default=str, sort_keys=True)),
    }
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as zf:  # what np.load reads as .npz
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, arr, allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue())
    return target


def read_knn(path: str | os.PathLike) -> Any:
    """The graph ``write_knn`` wrote (``anomtok.knn.KnnGraph``), or None when the file is missing or
    unreadable (it is only ever a shortcut: a map without it searches the neighbours itself)."""
    import numpy as np

    from .knn import KnnGraph

    p = Path(path)
    if not p.is_file():
        return None
    try:
        with np.load(p, allow_pickle=False) as z:
            ids, sims, exact = z["ids"].astype(np.int64), z["sims"].astype(np.float32), z["exact_rows"].astype(bool)
            info = json.loads(str(z["info"]))
        if ids.ndim != 2 or sims.shape != ids.shape or exact.shape != (ids.shape[0],) or not isinstance(info, dict):
            return None
    except Exception:  # noqa: BLE001 - numpy/zipfile raise many types on a damaged file
        return None
    return KnnGraph(ids=ids, sims=sims, exact_rows=exact, info=info)


def read_table(path: str | os.PathLike) -> pl.DataFrame:
    """Read a ranked CSV or parquet back (``token_id`` as int, ``bytes_hex`` as text)."""
    import polars as pl

    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    try:
        if p.suffix == ".parquet":
            frame = pl.read_parquet(p)
        else:
            frame = pl.read_csv(
                p, schema_overrides={"bytes_hex": pl.String, "token": pl.String}, infer_schema_length=10000
            )
    except Exception as exc:  # noqa: BLE001 - polars raises several types
        raise InputError(f"{p}: not a readable table ({exc.__class__.__name__})") from None
    _check_columns(p, frame.columns)
    return frame


def _check_columns(p: Path, columns: list[str], require: tuple[str, ...] = ()) -> None:
    missing = [c for c in ("token_id", "bytes_hex") if c not in columns] or [c for c in require if c not in columns]
    if missing:
        raise InputError(f"{p}: not an anomtok table (no {', '.join(missing)} column)")


def read_rows(path: str | os.PathLike, require: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """A CSV table of anomtok (glitch.csv, ranked.csv) read with the csv module, without polars (so
    ``anomtok compare`` starts fast, issue 13.2): one dict per row, ``token_id`` as int, every other
    cell as text, an empty cell as None (``read_table``'s null). ``require``: columns
    needed besides ``token_id`` and ``bytes_hex``. Bad input: the errors of ``read_table``, one line
    naming the file."""
    import csv

    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    rows: list[dict[str, Any]] = []
    try:
        with open(p, encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise InputError(f"{p}: not a readable table (empty file)")
            _check_columns(p, header, require)
            for cells in reader:
                if len(cells) != len(header):
                    if not cells:  # a blank line
                        continue
                    raise InputError(
                        f"{p}: not a readable table (line {reader.line_num} has {len(cells)} fields, "
                        f"the header {len(header)})"
                    )
                row: dict[str, Any] = {k: v if v != "" else None for k, v in zip(header, cells)}
                try:
                    row["token_id"] = int(row["token_id"])
                except (TypeError, ValueError):
                    raise InputError(
                        f"{p}: not an anomtok table (line {reader.line_num}: token_id {row['token_id']!r} "
                        "is not a whole number)"
                    ) from None
                rows.append(row)
    except (UnicodeDecodeError, csv.Error, OSError) as exc:
        raise InputError(f"{p}: not a readable table ({exc.__class__.__name__})") from None
    return rows


def read_json(path: str | os.PathLike, *, missing_ok: bool = False) -> Any:
    """A previous run's JSON file (meta.json, verify.json, ...). Missing: None when ``missing_ok``,
    else InputError; unreadable or corrupt: always InputError naming the file (bad input, exit 2)."""
    p = Path(path)
    if not p.exists():
        if missing_ok:
            return None
        raise InputError(f"{p}: no such file")
    try:
        return json.loads(p.read_text("utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{p}: not UTF-8 text (a corrupt file of an earlier run? delete it or rerun)") from None
    except ValueError as exc:
        raise InputError(f"{p}: not valid JSON ({exc}; a corrupt file of an earlier run? delete it or rerun)") from None
    except OSError as exc:
        raise InputError(f"{p}: cannot be read ({exc.strerror})") from None


def token_bytes(frame: pl.DataFrame) -> list[bytes]:
    """Exact token bytes from the ``bytes_hex`` column (empty cells read as b"")."""
    return [bytes.fromhex(h or "") for h in frame["bytes_hex"].to_list()]
