"""Query sets: a directory of jinja ``*.sql`` ADQL templates plus a ``params.yaml``.

The format is mobu's TAPQuerySetRunner format, so a mobu query-set directory works as is, by
path or by name once its directory is on the search path (``$BOSUN_QUERY_SET_PATH``, e.g. a
mobu checkout); bosun's own sets are named ``bosun-*`` so that a mobu name (``dp0.2``) never
silently runs other queries.
``params.yaml`` holds the sky bounds (``min_ra``, ``max_ra``, ``min_dec``, ``max_dec``), cone
sizes (``min_radius``, ``radius_range``, ``radius_near_range``) and ``object_ids``; templates
use ``{{ ra }}``, ``{{ dec }}``, ``{{ radius }}``, ``{{ radius_near }}``, ``{{ polygon }}``,
``{{ min_flux }}``/``{{ max_flux }}``, ``{{ min_mag }}``/``{{ max_mag }}``, ``{{ object }}``,
``{{ objects }}``, ``{{ username }}`` and ``{{ query_id }}``. bosun adds optional keys
(``flux_range``, ``flux_window``, ``mag_range``, ``mag_window``, ``objects_count``, ``bands``
giving ``{{ band }}``) whose defaults reproduce mobu's choices.

Unlike mobu, every random choice comes from a caller-supplied ``random.Random``, so one seed
gives one sequence of queries, and the polygon and the cones stay inside the bounds.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from library import yamlio
from library.errors import UserError

SHIPPED_DIR = Path(__file__).resolve().parent / "query_sets"
PARAMS_FILE = "params.yaml"

# mobu's defaults (DP0.1's field), used when params.yaml leaves a key out.
DEFAULTS = {
    "min_ra": 55.0,
    "max_ra": 70.0,
    "min_dec": -42.0,
    "max_dec": -30.0,
    "min_radius": 0.01,
    "radius_range": 0.04,
    "radius_near_range": 0.09,
    "flux_range": [0.0, 0.001],
    "flux_window": 0.00001,
    "mag_range": [15.0, 30.0],
    "mag_window": 0.1,
    "objects_count": 12,
}
NUMBER_KEYS = (
    "min_ra",
    "max_ra",
    "min_dec",
    "max_dec",
    "min_radius",
    "radius_range",
    "radius_near_range",
    "flux_window",
    "mag_window",
)


QUERY_SET_PATH_ENV = "BOSUN_QUERY_SET_PATH"
# mobu keeps its TAP query sets under src/mobu/data/tapquerysetrunner/<name>/: a search
# directory may be that directory or any parent of it that holds it.
_MOBU_SUBDIRS = (
    "",
    "tapquerysetrunner",
    "data/tapquerysetrunner",
    "src/mobu/data/tapquerysetrunner",
)


# Limits on what a query set (a repository's content) may make bosun do.
MAX_OBJECTS_COUNT = 10_000  # ids drawn into {{ objects }} (mobu draws 12)
MAX_QUERY_CHARS = 1_000_000  # one rendered query
MAX_TEMPLATE_BYTES = 1_000_000  # one *.sql file
_MAX_REPEAT = 1_000_000  # longest string or list a template may build with `*` or `**`


def template_environment(strict: bool = True):
    """The Jinja environment for query-set templates: sandboxed, because query sets come from
    repositories. Attribute access to internals (``__class__``, ``__globals__``...), unsafe
    methods and large ``range``/``*``/``**`` results raise ``SecurityError``."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

    class QuerySetSandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset(["*", "**"])

        def call_binop(self, context, operator, left, right):
            if operator == "**" and isinstance(right, int | float) and abs(right) > 64:
                raise SecurityError(f"exponent {right!r} is too large")
            if operator == "*":
                for seq, times in ((left, right), (right, left)):
                    sized = isinstance(seq, str | list | tuple) and isinstance(times, int)
                    if sized and len(seq) * times > _MAX_REPEAT:
                        raise SecurityError(f"repeating a sequence {times} times is refused")
            return super().call_binop(context, operator, left, right)

    return QuerySetSandbox(
        undefined=jinja2.StrictUndefined if strict else jinja2.Undefined,
        autoescape=False,
        keep_trailing_newline=True,
    )


def list_shipped() -> list[str]:
    """Names of the query sets shipped with bosun (all `bosun-*`: mobu's names stay mobu's)."""
    return sorted(p.name for p in SHIPPED_DIR.iterdir() if (p / PARAMS_FILE).is_file())


def search_path(extra: list[str | Path] | None = None) -> list[Path]:
    """Where a name that bosun does not ship is looked up: EXTRA, then $BOSUN_QUERY_SET_PATH
    (directories separated by ':')."""
    dirs = [Path(d).expanduser() for d in extra or []]
    env = os.environ.get(QUERY_SET_PATH_ENV, "")
    dirs += [Path(d).expanduser() for d in env.split(os.pathsep) if d.strip()]
    return dirs


def resolve(name_or_dir: str | Path, search: list[str | Path] | None = None) -> Path:
    """A query-set directory from a path, a shipped name, or a name found in the search path.

    A name is never guessed: bosun's own sets are all called ``bosun-*``, so ``dp0.2`` means
    mobu's ``dp0.2`` and is found only in a configured directory (a mobu checkout's data
    directory, say). UserError listing every place looked at otherwise.
    """
    text = str(name_or_dir)
    candidate = Path(text).expanduser()
    if "/" in text or text.startswith((".", "~")):
        if candidate.is_dir():
            return candidate.resolve()
        raise UserError(f"--query-set {text!r}: no such directory")
    if (SHIPPED_DIR / text / PARAMS_FILE).is_file():
        return SHIPPED_DIR / text
    looked = [f"shipped ({', '.join(list_shipped())})"]
    for base in search_path(search):
        for sub in _MOBU_SUBDIRS:
            where = base / sub / text if sub else base / text
            if (where / PARAMS_FILE).is_file():
                return where.resolve()
        looked.append(str(base))
    if candidate.is_dir():
        return candidate.resolve()
    if len(looked) == 1:
        looked.append(f"no search directories (set ${QUERY_SET_PATH_ENV}, e.g. to a mobu checkout)")
    raise UserError(f"--query-set {text!r}: not found; looked in: {'; '.join(looked)}")


def _read_template(root: Path, path: Path) -> str:
    """A template's text; a symlink leading out of the query set, or a huge file, is refused."""
    real = path.resolve()
    if not real.is_relative_to(root.resolve()):
        raise UserError(f"{path}: a link to {real}, outside the query set; copy the file in")
    size = real.stat().st_size
    if size > MAX_TEMPLATE_BYTES:
        raise UserError(f"{path}: {size:,} bytes (limit {MAX_TEMPLATE_BYTES:,}); not a template")
    return yamlio.read_text(real, "query template")


def _check_params(params: dict, path: Path) -> dict:
    merged = {**DEFAULTS, **params}
    count = merged["objects_count"]
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_OBJECTS_COUNT:
        raise UserError(
            f"{path}: key 'objects_count' must be an integer from 1 to {MAX_OBJECTS_COUNT:,} "
            f"(ids drawn per query), got {count!r}"
        )
    for key in NUMBER_KEYS:
        if not isinstance(merged[key], int | float) or isinstance(merged[key], bool):
            raise UserError(f"{path}: key {key!r} must be a number, got {merged[key]!r}")
    for key in ("flux_range", "mag_range"):
        value = merged[key]
        if (
            not isinstance(value, list | tuple)
            or len(value) != 2
            or not all(isinstance(v, int | float) for v in value)
            or value[0] > value[1]
        ):
            raise UserError(f"{path}: key {key!r} must be [low, high], got {value!r}")
    if merged["min_ra"] >= merged["max_ra"] or merged["min_dec"] >= merged["max_dec"]:
        raise UserError(f"{path}: min_ra/max_ra and min_dec/max_dec must be increasing bounds")
    if not -90 <= merged["min_dec"] < merged["max_dec"] <= 90:
        raise UserError(f"{path}: min_dec/max_dec must lie within [-90, 90]")
    if merged["min_radius"] <= 0 or merged["radius_range"] < 0:
        raise UserError(f"{path}: min_radius must be > 0 and radius_range >= 0")
    ids = merged.get("object_ids")
    if ids is not None and (not isinstance(ids, list) or not ids):
        raise UserError(f"{path}: key 'object_ids' must be a non-empty list of ids")
    bands = merged.get("bands")
    if bands is not None and (not isinstance(bands, list) or not bands):
        raise UserError(f"{path}: key 'bands' must be a non-empty list of band names")
    return merged


@dataclass
class QuerySet:
    """A loaded query set. ``generate(rng)`` renders one random query; it is cheap and pure."""

    path: Path
    params: dict
    templates: dict[str, str]  # template name (file stem) -> template source
    skipped: dict[str, str] = field(default_factory=dict)  # name -> why it will not run
    _compiled: dict = field(default_factory=dict, repr=False)
    _sketches: dict = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.path.name

    @classmethod
    def load(cls, name_or_dir: str | Path, search: list[str | Path] | None = None) -> QuerySet:
        """Load a query set by directory or name (see `resolve`; SEARCH: extra directories)."""
        import jinja2

        path = resolve(name_or_dir, search)
        params_path = path / PARAMS_FILE
        try:
            if not params_path.is_file():
                raise FileNotFoundError
            real = params_path.resolve()
            if not real.is_relative_to(path.resolve()):
                raise UserError(f"{params_path}: a link to {real}, outside the query set")
            params = yamlio.load_file(params_path) or {}
        except FileNotFoundError:
            raise UserError(f"{path}: no {PARAMS_FILE}; a query set needs one") from None
        except UserError as err:  # the bounded loader's one line, in this module's wording
            raise UserError(str(err).replace(": invalid YAML:", ": not valid YAML:", 1)) from None
        if not isinstance(params, dict):
            raise UserError(f"{params_path}: must be a mapping of parameter names to values")
        params = _check_params(params, params_path)
        templates = {p.stem: _read_template(path, p) for p in sorted(path.glob("*.sql"))}
        if not templates:
            raise UserError(f"{path}: no *.sql templates in the query set")
        env = template_environment(strict=True)
        compiled = {}
        for name, source in templates.items():
            try:
                compiled[name] = env.from_string(source)
            except jinja2.TemplateSyntaxError as exc:
                raise UserError(
                    f"{path / (name + '.sql')} line {exc.lineno}: {exc.message}"
                ) from None
        lenient = template_environment(strict=False)
        sketches = {name: lenient.from_string(source) for name, source in templates.items()}
        return cls(
            path=path, params=params, templates=templates, _compiled=compiled, _sketches=sketches
        )

    @property
    def active(self) -> list[str]:
        """Template names that will run (all but the skipped ones), sorted."""
        return [n for n in sorted(self.templates) if n not in self.skipped]

    def skip(self, name: str, reason: str) -> None:
        self.skipped[name] = reason

    def parameters(self, rng: random.Random, username: str = "bosun") -> dict:
        """One draw of every template variable."""
        p = self.params
        radius = p["min_radius"] + rng.random() * p["radius_range"]
        radius_near = p["min_radius"] + rng.random() * p["radius_near_range"]
        # Cones are kept inside the bounds so that every query hits the catalogue's field.
        ra, dec = _point_inside(rng, p, max(radius, radius_near))
        min_flux = p["flux_range"][0] + rng.random() * (p["flux_range"][1] - p["flux_range"][0])
        min_mag = p["mag_range"][0] + rng.random() * (p["mag_range"][1] - p["mag_range"][0])
        values = {
            "ra": ra,
            "dec": dec,
            "radius": radius,
            "radius_near": radius_near,
            "polygon": format_polygon(random_polygon(rng, p)),
            "min_flux": min_flux,
            "max_flux": min_flux + p["flux_window"],
            "min_mag": min_mag,
            "max_mag": min_mag + p["mag_window"],
            "username": username,
            "query_id": f"bosun-{rng.getrandbits(64):016x}",
        }
        ids = p.get("object_ids")
        if ids:
            values["object"] = str(rng.choice(ids))
            values["objects"] = ", ".join(str(o) for o in rng.choices(ids, k=p["objects_count"]))
        if p.get("bands"):
            values["band"] = rng.choice(p["bands"])
        return values

    def render(self, name: str, values: dict) -> str:
        import jinja2
        from jinja2.sandbox import SecurityError

        try:
            text = self._compiled[name].render(values)
        except (SecurityError, OverflowError) as exc:
            raise UserError(
                f"{self.path / (name + '.sql')}: refused by the template sandbox: {exc}"
            ) from None
        except jinja2.UndefinedError as exc:
            have = ", ".join(sorted(values))
            raise UserError(
                f"{self.path / (name + '.sql')}: {exc.message}; available variables: {have}"
                " (add the missing key, e.g. object_ids, to params.yaml)"
            ) from None
        except Exception as exc:  # a template is data from a repository: its error is input's
            raise UserError(
                f"{self.path / (name + '.sql')}: the template failed: {type(exc).__name__}: {exc}"
            ) from None
        if len(text) > MAX_QUERY_CHARS:
            raise UserError(
                f"{self.path / (name + '.sql')}: renders to {len(text):,} characters "
                f"(limit {MAX_QUERY_CHARS:,}); shorten the template or objects_count"
            )
        return text

    def sketch(self, name: str, values: dict) -> str:
        """The template rendered with undefined variables left empty: enough to see its tables."""
        from jinja2.sandbox import SecurityError

        try:
            return self._sketches[name].render(values)
        except (SecurityError, OverflowError) as exc:
            raise UserError(
                f"{self.path / (name + '.sql')}: refused by the template sandbox: {exc}"
            ) from None

    def generate(self, rng: random.Random, username: str = "bosun") -> tuple[str, str]:
        """(template name, ADQL) for one random query among the active templates."""
        active = self.active
        if not active:
            raise UserError(f"{self.path}: every template was skipped: {self.skipped}")
        name = rng.choice(active)
        return name, self.render(name, self.parameters(rng, username))

    def check_renders(self) -> None:
        """Render every active template once, so a missing variable fails before any query runs."""
        rng = random.Random(0)
        for name in self.active:
            self.render(name, self.parameters(rng))


def _point_inside(rng: random.Random, p: dict, margin: float) -> tuple[float, float]:
    dec_lo, dec_hi = p["min_dec"] + margin, p["max_dec"] - margin
    if dec_lo > dec_hi:
        dec_lo = dec_hi = (p["min_dec"] + p["max_dec"]) / 2
    dec = dec_lo + rng.random() * (dec_hi - dec_lo)
    ra_margin = margin / max(math.cos(math.radians(dec)), 1e-3)
    ra_lo, ra_hi = p["min_ra"] + ra_margin, p["max_ra"] - ra_margin
    if ra_lo > ra_hi:
        ra_lo = ra_hi = (p["min_ra"] + p["max_ra"]) / 2
    return ra_lo + rng.random() * (ra_hi - ra_lo), dec


def random_polygon(rng: random.Random, p: dict) -> list[tuple[float, float]]:
    """A convex polygon of 3-7 vertices on a circle, wholly inside the bounds.

    Vertices go round in mobu's order (north, then east), which on the sky is
    counter-clockwise, the orientation ADQL services expect.
    """
    r = p["min_radius"] + rng.random() * p["radius_range"]
    ra, dec = _point_inside(rng, p, r)
    n = rng.randrange(3, 8)
    phi = rng.random() * 2 * math.pi
    cos_dec = max(math.cos(math.radians(dec)), 1e-3)
    vertices = []
    for i in range(n):
        theta = phi + i * 2 * math.pi / n
        vra = min(max(ra + r * math.sin(theta) / cos_dec, p["min_ra"]), p["max_ra"])
        vdec = min(max(dec + r * math.cos(theta), p["min_dec"]), p["max_dec"])
        vertices.append((vra, vdec))
    return vertices


def format_polygon(vertices: list[tuple[float, float]]) -> str:
    return ", ".join(f"{ra:.6f}, {dec:.6f}" for ra, dec in vertices)
