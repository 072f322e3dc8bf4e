"""The sandbox catalogue: the same seed gives the same rows, inside the field, linked by id."""

from __future__ import annotations

import numpy as np

from library.sandbox import catalogue


def test_same_seed_same_rows_other_seed_other_rows():
    a, b, c = catalogue.objects(1, 2000), catalogue.objects(1, 2000), catalogue.objects(2, 2000)
    for column in catalogue.OBJECT_COLUMNS:
        assert np.array_equal(a[column], b[column])
    assert not np.array_equal(a["ra"], c["ra"])


def test_objects_fill_the_field_with_plausible_photometry():
    obj = catalogue.objects(3, 20_000)
    f = catalogue.FIELD
    assert f["min_ra"] <= obj["ra"].min() and obj["ra"].max() <= f["max_ra"]
    assert f["min_dec"] <= obj["dec"].min() and obj["dec"].max() <= f["max_dec"]
    assert obj["ra"].max() - obj["ra"].min() > 19.5 and obj["dec"].max() - obj["dec"].min() > 15.5
    assert len(np.unique(obj["objectId"])) == 20_000
    assert set(np.unique(obj["extendedness"])) == {0, 1}
    for band in catalogue.BANDS:
        mag_from_flux = catalogue.AB_ZERO_POINT_NJY - 2.5 * np.log10(obj[f"{band}_flux"])
        assert np.allclose(mag_from_flux, obj[f"{band}_mag"])


def test_sources_belong_to_objects_and_sit_next_to_them():
    obj = catalogue.objects(4, 5000)
    src = catalogue.sources(obj, 4)
    assert 2.5 < len(src["sourceId"]) / 5000 < 3.5
    assert set(src["objectId"].tolist()) <= set(obj["objectId"].tolist())
    owner = src["objectId"] - catalogue.OBJECT_ID_BASE
    assert np.abs(src["dec"] - obj["dec"][owner]).max() < 2 / 3600


def test_write_is_skipped_when_the_files_are_current(tmp_path):
    rows = catalogue.write(tmp_path, seed=5, n=500)
    assert rows["objects"] == 500
    first = (tmp_path / "objects.csv").stat().st_mtime_ns
    assert catalogue.write(tmp_path, seed=5, n=500) == rows
    assert (tmp_path / "objects.csv").stat().st_mtime_ns == first
    line = (tmp_path / "objects.csv").read_text().splitlines()[0].split(",")
    assert len(line) == len(catalogue.OBJECT_COLUMNS)
