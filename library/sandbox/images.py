"""The sandbox's image metadata: seeded ObsCore rows that its SIA v2 service searches.

No pixels are served; each row describes one detector image of a visit (footprint, band,
exposure time, time span) the way an ObsCore table does, which is all an SIA v2 query reads.
Visits are spread over the catalogue's field (`catalogue.FIELD`) and a hundred days; one visit
sits at the position and 30-second window that mobu's ``dp02`` SIA parameter set draws its
times from, so mobu's own parameters find images here too.

The rows go to ``images.csv`` (COPY-ready, no header) next to the catalogue's files; the RD
(`dachs_rd/q.rd`, table ``images``) loads it with the same bulk COPY as the catalogue.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from library.errors import UserError
from library.sandbox.catalogue import FIELD, written_rows

SEED = 20240602
N_VISITS = 300
DETECTOR_GRID = 3  # 3 x 3 detectors per visit
DETECTOR_SIZE_DEG = 0.2
EXPOSURE_S = 30.0
TIME_RANGE_MJD = (60500.0, 60600.0)
# mobu's dp02 SIA parameters (src/mobu/data/siaquerysetrunner/dp02/params.yaml) query this
# time window; the first visit is placed in it, inside both fields.
MOBU_DP02_TIME_MJD = 60550.31803461111
PINNED_POINTING = (62.0, -34.0)
# Band edges in metres (LSST filter widths, rounded).
BAND_EDGES_M = {
    "u": (320e-9, 400e-9),
    "g": (400e-9, 552e-9),
    "r": (552e-9, 691e-9),
    "i": (691e-9, 818e-9),
    "z": (818e-9, 922e-9),
    "y": (922e-9, 1060e-9),
}
COLLECTION = "bosun/sandbox"
VERSION = 1
FINGERPRINT_FILE = "images.json"
CSV_FILE = "images.csv"

# The column order of DaCHS's //obscore#obscore-columns, which the RD's table uses.
COLUMNS = [
    "dataproduct_type",
    "dataproduct_subtype",
    "calib_level",
    "obs_collection",
    "obs_id",
    "obs_title",
    "obs_publisher_did",
    "obs_creator_did",
    "access_url",
    "access_format",
    "access_estsize",
    "target_name",
    "target_class",
    "s_ra",
    "s_dec",
    "s_fov",
    "s_region",
    "s_resolution",
    "t_min",
    "t_max",
    "t_exptime",
    "t_resolution",
    "em_min",
    "em_max",
    "em_res_power",
    "o_ucd",
    "pol_states",
    "facility_name",
    "instrument_name",
    "s_xel1",
    "s_xel2",
    "t_xel",
    "em_xel",
    "pol_xel",
    "s_pixel_scale",
    "em_ucd",
    "preview",
    "source_table",
]


def rows(seed: int = SEED, n_visits: int = N_VISITS) -> list[dict[str, Any]]:
    """One dict per detector image (same seed, same rows)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    ra = rng.uniform(FIELD["min_ra"] + 1, FIELD["max_ra"] - 1, n_visits)
    sin_lo, sin_hi = np.sin(np.radians([FIELD["min_dec"] + 1, FIELD["max_dec"] - 1]))
    dec = np.degrees(np.arcsin(rng.uniform(sin_lo, sin_hi, n_visits)))
    t_start = rng.uniform(*TIME_RANGE_MJD, n_visits)
    bands = rng.choice(list(BAND_EDGES_M), n_visits)
    ra[0], dec[0] = PINNED_POINTING
    t_start[0] = MOBU_DP02_TIME_MJD
    half = DETECTOR_SIZE_DEG / 2
    offsets = (np.arange(DETECTOR_GRID) - (DETECTOR_GRID - 1) / 2) * DETECTOR_SIZE_DEG
    out = []
    for visit in range(n_visits):
        band = str(bands[visit])
        em_min, em_max = BAND_EDGES_M[band]
        t_min = float(t_start[visit])
        detector = 0
        for dy in offsets:
            for dx in offsets:
                c_dec = float(dec[visit] + dy)
                scale = 1.0 / math.cos(math.radians(c_dec))
                c_ra = float(ra[visit] + dx * scale)
                corners = [
                    (c_ra - half * scale, c_dec - half),
                    (c_ra + half * scale, c_dec - half),
                    (c_ra + half * scale, c_dec + half),
                    (c_ra - half * scale, c_dec + half),
                ]
                obs_id = f"{visit:04d}-{detector}"
                out.append(
                    {
                        "dataproduct_type": "image",
                        "dataproduct_subtype": "lsst.calexp",
                        "calib_level": 2,
                        "obs_collection": COLLECTION,
                        "obs_id": obs_id,
                        "obs_title": f"visit {visit} detector {detector} ({band})",
                        "obs_publisher_did": f"ivo://bosun.sandbox/images?{obs_id}",
                        "obs_creator_did": None,
                        "access_url": f"http://127.0.0.1/sandbox/images/{obs_id}.fits",
                        "access_format": "image/fits",
                        "access_estsize": 33000,
                        "target_name": None,
                        "target_class": None,
                        "s_ra": c_ra,
                        "s_dec": c_dec,
                        "s_fov": DETECTOR_SIZE_DEG * math.sqrt(2),
                        # pgSphere's text form of a polygon, corners in degrees.
                        "s_region": "{"
                        + ",".join(f"({a:.6f}d,{d:.6f}d)" for a, d in corners)
                        + "}",
                        "s_resolution": 0.7 / 3600,
                        "t_min": t_min,
                        "t_max": t_min + EXPOSURE_S / 86400,
                        "t_exptime": EXPOSURE_S,
                        "t_resolution": EXPOSURE_S,
                        "em_min": em_min,
                        "em_max": em_max,
                        "em_res_power": (em_min + em_max) / 2 / (em_max - em_min),
                        "o_ucd": "phot.count",
                        "pol_states": None,
                        "facility_name": "bosun",
                        "instrument_name": "SandboxCam",
                        "s_xel1": 4000,
                        "s_xel2": 4000,
                        "t_xel": 1,
                        "em_xel": 1,
                        "pol_xel": 1,
                        "s_pixel_scale": 0.18,
                        "em_ucd": "em.wl",
                        "preview": None,
                        "source_table": None,
                    }
                )
                detector += 1
    return out


def fingerprint(seed: int = SEED, n_visits: int = N_VISITS) -> dict[str, Any]:
    return {"seed": seed, "n_visits": n_visits, "version": VERSION}


def write(out_dir: Path, seed: int = SEED, n_visits: int = N_VISITS) -> int:
    """Write ``images.csv`` into OUT_DIR (skipped when it is there for this seed); row count."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    wanted = fingerprint(seed, n_visits)
    done = written_rows(out_dir / FINGERPRINT_FILE, wanted, [CSV_FILE])
    if done is not None:
        return int(done)
    data = rows(seed, n_visits)
    table = pa.table({c: [row[c] for row in data] for c in COLUMNS})
    pacsv.write_csv(table, out_dir / CSV_FILE, pacsv.WriteOptions(include_header=False))
    (out_dir / CSV_FILE).chmod(0o644)
    (out_dir / FINGERPRINT_FILE).write_text(
        json.dumps({"fingerprint": wanted, "rows": len(data)}) + "\n"
    )
    return len(data)


# --- in the sandbox's DaCHS ---------------------------------------------------------------

TABLE = "sandbox.images"
SIA_PATH = "/sandbox/q/sia"  # the RD's service id="sia"


def sia_url(tap_url: str) -> str:
    """The SIA v2 base URL of the DaCHS whose TAP endpoint is TAP_URL (``.../tap``)."""
    base = tap_url.rstrip("/")
    base = base[: -len("/tap")] if base.endswith("/tap") else base
    return base + SIA_PATH


def imported_rows() -> int:
    """Rows in sandbox.images, 0 when the table does not exist."""
    from library.sandbox import dachs

    if dachs._psql(f"SELECT to_regclass('{TABLE}') IS NOT NULL") != "t":
        return 0
    count = dachs._psql(f"SELECT count(*) FROM {TABLE}")
    return int(count) if count.isdigit() else 0


def ensure_imported(expected: int, log_path: Path) -> bool:
    """Import the images table alone when it is missing or stale (a DaCHS set up before it
    existed); True when it imported. A fresh catalogue import loads it with the rest."""
    from library.sandbox import dachs

    if imported_rows() == expected:
        return False
    rc = dachs._run_logged(
        ["dachs", "imp", f"{dachs.RESOURCE}/q", "import_images"],
        log_path,
        user=dachs.DACHS_USER,
        cwd=str(dachs.GAVO_ROOT / "inputs"),
    )
    got = imported_rows()
    if rc != 0 or got != expected:
        raise UserError(
            f"dachs imp {dachs.RESOURCE}/q import_images failed (exit {rc}, {got} of {expected} "
            f"rows in {TABLE}); see {log_path}"
        )
    return True
