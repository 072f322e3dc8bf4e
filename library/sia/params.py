"""SIA parameter sets: mobu's ``params.yaml`` files, and the queries drawn from them.

A set is a directory holding ``params.yaml`` with the keys mobu reads (each with mobu's
default when absent): ``min_ra``/``max_ra``, ``min_dec``/``max_dec`` (the field), ``min_radius``
and ``radius_range`` (cone radius from min_radius to min_radius + radius_range, degrees), and
``start_time``/``end_time`` (the MJD interval every query asks for). Sets are found by name:
bosun's own (``bosun-sandbox``; ``dp02`` is mobu's file unchanged), then the directories on
``$BOSUN_SIA_QUERY_SET_PATH`` (e.g. a mobu checkout's ``src/mobu/data/siaquerysetrunner``), or
given as a directory path.

One deliberate difference: mobu 19.x draws ``ra = min_ra + uniform(min_ra, max_ra)`` (and the
same for dec), which places every cone outside the field (ra 104-124 deg for dp02). bosun
draws inside the field the file describes: ``ra = uniform(min_ra, max_ra)``.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

from library import yamlio
from library.errors import UserError

SHIPPED = Path(__file__).resolve().parent / "query_sets"
PATH_ENV = "BOSUN_SIA_QUERY_SET_PATH"
# mobu's defaults (services/business/siaquerysetrunner.py, _generate_sia_params).
DEFAULTS = {
    "min_ra": 55.0,
    "max_ra": 70.0,
    "min_dec": -42.0,
    "max_dec": -30.0,
    "min_radius": 0.01,
    "radius_range": 0.04,
    "start_time": 60550.31803461111,
    "end_time": 60550.31838182871,
}


@dataclass(frozen=True)
class SIAQuery:
    """One SIA v2 query: a cone (degrees) and an MJD interval, as mobu's SIAQuery."""

    ra: float
    dec: float
    radius: float
    time: tuple[float, float]

    @property
    def pos(self) -> tuple[float, float, float]:
        return self.ra, self.dec, self.radius

    def __str__(self) -> str:
        pos = f"({self.ra:.5f}, {self.dec:.5f}, {self.radius:.5f})"
        return f"pos={pos} time=[{self.time[0]}, {self.time[1]}]"


@dataclass(frozen=True)
class ParamSet:
    name: str
    path: Path
    params: dict[str, float]

    def draw(self, rng: random.Random) -> SIAQuery:
        p = self.params
        return SIAQuery(
            ra=rng.uniform(p["min_ra"], p["max_ra"]),
            dec=rng.uniform(p["min_dec"], p["max_dec"]),
            radius=rng.uniform(p["min_radius"], p["min_radius"] + p["radius_range"]),
            time=(p["start_time"], p["end_time"]),
        )


def search_path() -> list[Path]:
    env = os.environ.get(PATH_ENV, "")
    return [SHIPPED, *(Path(d).expanduser() for d in env.split(os.pathsep) if d.strip())]


def resolve(name: str) -> Path:
    """The ``params.yaml`` of set NAME (a shipped name, a name on the path, or a directory)."""
    candidate = Path(name).expanduser()
    if (candidate / "params.yaml").is_file() and (os.sep in name or candidate.is_absolute()):
        return candidate / "params.yaml"
    for directory in search_path():
        path = directory / name / "params.yaml"
        if path.is_file():
            return path
    looked = ", ".join(str(d) for d in search_path())
    raise UserError(
        f"SIA query_set {name!r}: no {name}/params.yaml in {looked}: add its directory to "
        f"${PATH_ENV} (e.g. a mobu checkout's src/mobu/data/siaquerysetrunner)"
    )


def load(name: str) -> ParamSet:
    """Set NAME with mobu's defaults filled in; UserError naming the file and key when bad."""
    path = resolve(name)
    real = path.resolve()
    if not real.is_relative_to(path.parent.resolve()):  # as TAP query sets: sets come from repos
        raise UserError(f"{path}: a link to {real}, outside the query set; copy the file in")
    data = yamlio.load_file(path) or {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of SIA parameters, got {type(data).__name__}")
    unknown = sorted(set(data) - set(DEFAULTS))
    if unknown:
        raise UserError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(DEFAULTS)})")
    params = dict(DEFAULTS)
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UserError(f"{path}: {key}: expected a number, got {value!r}")
        params[key] = float(value)
    for low, high in (("min_ra", "max_ra"), ("min_dec", "max_dec"), ("start_time", "end_time")):
        if params[low] > params[high]:
            raise UserError(f"{path}: {low} ({params[low]}) is above {high} ({params[high]})")
    if params["min_radius"] <= 0 or params["radius_range"] < 0:
        raise UserError(f"{path}: min_radius must be > 0 and radius_range >= 0")
    return ParamSet(name, path, params)
