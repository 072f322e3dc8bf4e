"""The sandbox's synthetic catalogue: seeded, so every machine serves the same rows.

Two tables over a 20 deg x 16 deg field: ``objects`` (one row per object: position, fluxes
and magnitudes in u g r i z y, an extendedness flag) and ``sources`` (a few detections per
object, linked by ``objectId``), enough for cone, polygon, object-id, flux-range and join
queries to return data. The arrays are also what the integration tests compute their
expected row counts from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SEED = 20240601
N_OBJECTS = 100_000
MEAN_SOURCES_PER_OBJECT = 3
BANDS = ("u", "g", "r", "i", "z", "y")
FIELD = {"min_ra": 50.0, "max_ra": 70.0, "min_dec": -40.0, "max_dec": -24.0}
OBJECT_ID_BASE = 1_000_000_000
SOURCE_ID_BASE = 5_000_000_000
AB_ZERO_POINT_NJY = 31.4  # m_AB = 31.4 - 2.5 log10(flux / nJy)
# Colours relative to r, so the bands differ the way real ones do.
COLOUR = {"u": 1.6, "g": 0.6, "r": 0.0, "i": -0.3, "z": -0.45, "y": -0.55}

OBJECT_COLUMNS = ["objectId", "ra", "dec", "extendedness"] + [
    f"{b}_{kind}" for b in BANDS for kind in ("flux", "fluxErr", "mag")
]
SOURCE_COLUMNS = ["sourceId", "objectId", "band", "mjd", "ra", "dec", "psfFlux", "psfFluxErr"]
FINGERPRINT_FILE = "catalogue.json"


def objects(seed: int = SEED, n: int = N_OBJECTS) -> dict:
    """The ``objects`` table as a dict of numpy columns (same seed, same rows)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    # Uniform on the sphere within the field: uniform in ra and in sin(dec).
    ra = rng.uniform(FIELD["min_ra"], FIELD["max_ra"], n)
    sin_lo, sin_hi = np.sin(np.radians([FIELD["min_dec"], FIELD["max_dec"]]))
    dec = np.degrees(np.arcsin(rng.uniform(sin_lo, sin_hi, n)))
    # Number counts rise towards faint magnitudes, as in a real survey.
    mag_r = 26.5 - rng.power(3.0, n) * 10.0
    extendedness = (rng.random(n) < np.clip((mag_r - 17.0) / 8.0, 0.05, 0.9)).astype("int16")
    cols = {
        "objectId": OBJECT_ID_BASE + np.arange(n, dtype="int64"),
        "ra": ra,
        "dec": dec,
        "extendedness": extendedness,
    }
    for band in BANDS:
        mag = mag_r + COLOUR[band] + rng.normal(0.0, 0.15, n)
        flux = 10 ** ((AB_ZERO_POINT_NJY - mag) / 2.5)
        cols[f"{band}_flux"] = flux
        cols[f"{band}_fluxErr"] = np.sqrt(flux) * 0.5 + 5.0
        cols[f"{band}_mag"] = mag
    return cols


def sources(obj: dict, seed: int = SEED) -> dict:
    """The ``sources`` table: 1 + Poisson(2) detections per object, near its position."""
    import numpy as np

    rng = np.random.default_rng(seed + 1)
    n_obj = len(obj["objectId"])
    per_object = 1 + rng.poisson(MEAN_SOURCES_PER_OBJECT - 1, n_obj)
    owner = np.repeat(np.arange(n_obj), per_object)
    n = len(owner)
    band_index = rng.integers(0, len(BANDS), n)
    flux = np.stack([obj[f"{b}_flux"] for b in BANDS])[band_index, owner]
    scatter = 0.1 / 3600  # 0.1 arcsec
    return {
        "sourceId": SOURCE_ID_BASE + np.arange(n, dtype="int64"),
        "objectId": obj["objectId"][owner],
        "band": np.array(BANDS)[band_index],
        "mjd": rng.uniform(60000.0, 61000.0, n),
        "ra": obj["ra"][owner] + rng.normal(0, scatter, n) / np.cos(np.radians(obj["dec"][owner])),
        "dec": obj["dec"][owner] + rng.normal(0, scatter, n),
        "psfFlux": flux * (1 + rng.normal(0, 0.05, n)),
        "psfFluxErr": np.sqrt(np.abs(flux)) * 0.5 + 5.0,
    }


def fingerprint(seed: int = SEED, n: int = N_OBJECTS) -> dict:
    return {"seed": seed, "n_objects": n, "version": 1}


def write(out_dir: Path, seed: int = SEED, n: int = N_OBJECTS) -> dict:
    """Write ``objects.csv`` and ``sources.csv`` (no header, COPY-ready) into OUT_DIR.

    Skips the work when OUT_DIR already holds the files for this seed and size. Returns the
    row counts.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    wanted = fingerprint(seed, n)
    done = written_rows(out_dir / FINGERPRINT_FILE, wanted, ["objects.csv", "sources.csv"])
    if done is not None:
        return done
    obj = objects(seed, n)
    src = sources(obj, seed)
    options = pacsv.WriteOptions(include_header=False)
    for name, cols, order in (("objects", obj, OBJECT_COLUMNS), ("sources", src, SOURCE_COLUMNS)):
        table = pa.table({c: cols[c] for c in order})
        pacsv.write_csv(table, out_dir / f"{name}.csv", options)
    rows = {"objects": len(obj["objectId"]), "sources": len(src["sourceId"])}
    (out_dir / FINGERPRINT_FILE).write_text(
        json.dumps({"fingerprint": wanted, "rows": rows}) + "\n"
    )
    return rows


def written_rows(marker: Path, wanted: dict, files: list[str]) -> Any:
    """The row counts MARKER recorded when FILES (beside it) were written for WANTED, else None
    (and MARKER's directory exists): generated data is written once per seed and size."""
    marker.parent.mkdir(parents=True, exist_ok=True)
    try:
        existing = json.loads(marker.read_text())
    except (FileNotFoundError, ValueError):
        return None
    if existing.get("fingerprint") != wanted:
        return None
    if not all((marker.parent / f).is_file() for f in files):
        return None
    return existing.get("rows")
