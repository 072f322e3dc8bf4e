"""The sandbox hub's spawn form, shaped like Nublado's, and what a lab gets from it.

The form takes what mobu posts (``rubin.nublado.client``'s ``to_spawn_form``): an image by
class (``image_class``: recommended, latest-weekly, latest-daily, latest-release), by
reference (``image_list``) or by tag (``image_tag``), a ``size`` (Nublado's names) and
``enable_debug``. Classes resolve to concrete references as Nublado resolves them; anything the
sandbox does not offer is refused (400, with the reason in the form's error line), so a lab
never runs an image or size other than the one asked for.

The choice is recorded twice: as the server's ``user_options`` (``GET /hub/api/users/NAME``:
``image``, ``image_class``, ``size``, and ``debug`` when asked) and in the lab's environment
(``JUPYTER_IMAGE_SPEC`` and ``IMAGE_DESCRIPTION`` as in Nublado labs, ``BOSUN_LAB_SIZE``,
``BOSUN_LAB_IMAGE_CLASS``). Labs all run the project's venv: the image is a label here.
"""

from __future__ import annotations

import html
from typing import Any

LAB_IMAGE_REPO = "sandbox/lab"
# tag -> description, as Nublado shows them.
LAB_IMAGE_TAGS = {
    "recommended": "Recommended (Weekly 2025_01)",
    "w_2025_01": "Weekly 2025_01",
    "d_2025_01_07": "Daily 2025_01_07",
    "r29_0_0": "Release r29.0.0",
    "w_2024_50": "Weekly 2024_50",
}
LAB_IMAGES = [f"{LAB_IMAGE_REPO}:{tag}" for tag in LAB_IMAGE_TAGS]
# Nublado's image classes -> the concrete image each resolves to here.
IMAGE_CLASSES = {
    "recommended": f"{LAB_IMAGE_REPO}:recommended",
    "latest-weekly": f"{LAB_IMAGE_REPO}:w_2025_01",
    "latest-daily": f"{LAB_IMAGE_REPO}:d_2025_01_07",
    "latest-release": f"{LAB_IMAGE_REPO}:r29_0_0",
}
# How an image was chosen when no image_class was posted (mobu posts only image_list or
# image_tag for by-reference and by-tag), and the older names this form also accepts.
BY_LIST = "list"
BY_TAG = "tag"
# Nublado's size names (rubin.nublado.client NubladoImageSize); the sandbox offers three.
LAB_SIZES = {"Small": "1 CPU, 4 GiB", "Medium": "2 CPU, 8 GiB", "Large": "4 CPU, 16 GiB"}
DEFAULT_SIZE = "Large"  # mobu's default size


class FormRefused(ValueError):
    """A choice the sandbox does not offer (the message is shown in the form's error line)."""


def options_form() -> str:
    """The form's HTML."""
    classes = "".join(
        f'<label><input type="radio" name="image_class" value="{name}"'
        f"{' checked' if name == 'recommended' else ''}> {name} ({html.escape(ref)})</label><br>"
        for name, ref in IMAGE_CLASSES.items()
    )
    listed = "".join(f'<option value="{ref}">{html.escape(ref)}</option>' for ref in LAB_IMAGES)
    sizes = "".join(
        f'<option value="{name}"{" selected" if name == DEFAULT_SIZE else ""}>'
        f"{name} ({what})</option>"
        for name, what in LAB_SIZES.items()
    )
    return f"""
<fieldset>
  <legend>Image</legend>
  {classes}
  <label><input type="radio" name="image_class" value="{BY_LIST}"> From the list</label>
  <select name="image_list">{listed}</select><br>
  <label><input type="radio" name="image_class" value="{BY_TAG}"> By tag</label>
  <input type="text" name="image_tag" value="" placeholder="w_2025_01">
</fieldset>
<fieldset>
  <legend>Size</legend>
  <select name="size">{sizes}</select>
  <label><input type="checkbox" name="enable_debug" value="true"> Debug</label>
</fieldset>
"""


def options_from_form(formdata: dict[str, Any]) -> dict[str, Any]:
    """The posted fields as user_options; FormRefused for a choice not offered."""

    def field(name: str) -> str:
        values = formdata.get(name) or [""]
        value = values[0]
        return (value.decode() if isinstance(value, bytes) else value).strip()

    image_class = field("image_class")
    if not image_class:
        image_class = BY_TAG if field("image_tag") else BY_LIST if field("image_list") else ""
        image_class = image_class or "recommended"
    if image_class in IMAGE_CLASSES:
        image = IMAGE_CLASSES[image_class]
    elif image_class == BY_LIST:
        image = field("image_list")
        if image not in LAB_IMAGES:
            raise FormRefused(f"unknown image_list {image!r}: choose one of {LAB_IMAGES}")
    elif image_class == BY_TAG:
        tag = field("image_tag")
        if tag not in LAB_IMAGE_TAGS:
            raise FormRefused(f"unknown image_tag {tag!r}: choose one of {list(LAB_IMAGE_TAGS)}")
        image = f"{LAB_IMAGE_REPO}:{tag}"
    else:
        known = [*IMAGE_CLASSES, BY_LIST, BY_TAG]
        raise FormRefused(f"unknown image_class {image_class!r}: choose one of {known}")
    posted_size = field("size") or DEFAULT_SIZE
    # Nublado's names are capitalised; the older lower-case spelling is the same size.
    size = {name.lower(): name for name in LAB_SIZES}.get(posted_size.lower())
    if size is None:
        raise FormRefused(f"unknown size {posted_size!r}: choose one of {list(LAB_SIZES)}")
    options: dict[str, str | bool] = {"image": image, "image_class": image_class, "size": size}
    if field("enable_debug").lower() in ("true", "on", "1"):
        options["debug"] = True
    return options


def lab_env(user_options: dict[str, Any]) -> dict[str, str]:
    """Environment variables that show a lab which image and size it was asked for."""
    env = {}
    image = user_options.get("image")
    if isinstance(image, str):
        env["JUPYTER_IMAGE_SPEC"] = image
        tag = image.rpartition(":")[2]
        if image.startswith(LAB_IMAGE_REPO + ":") and tag in LAB_IMAGE_TAGS:
            env["IMAGE_DESCRIPTION"] = LAB_IMAGE_TAGS[tag]
    if isinstance(user_options.get("size"), str):
        env["BOSUN_LAB_SIZE"] = user_options["size"]
    if isinstance(user_options.get("image_class"), str):
        env["BOSUN_LAB_IMAGE_CLASS"] = user_options["image_class"]
    if user_options.get("debug") is True:
        env["DEBUG"] = "TRUE"
    return env
