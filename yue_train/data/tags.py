"""Genre-tag help: YuE was trained on a known tag vocabulary (``top_200_tags.json``: the 200 most frequent tags
of each kind). Tags outside it, or a prompt missing a whole kind, still work but steer the model less, so
the build warns and never rejects for them."""

from __future__ import annotations

from pathlib import Path

from yue_train.format.bounded_json import read_json

MAX_TAGS_FILE_BYTES = 4 << 20  # top_200_tags.json is ~20 KB
TAG_KINDS = ("genre", "instrument", "mood", "gender", "timbre")
_EXAMPLES = {
    "genre": "pop, rock, jazz",
    "instrument": "piano, guitar, drums",
    "mood": "uplifting, sad, energetic",
    "gender": "female, male",
    "timbre": "bright vocal, airy vocal",
}

TopTags = dict[str, set[str]]


def load_top_tags(source: str | Path | dict[str, list[str]]) -> TopTags:
    """``{kind: {lower-cased tag}}`` from the json file (or its parsed content); the file lists tags in
    several casings ("Pop", "pop"), so matching is case-insensitive."""
    where = "tags file"
    if isinstance(source, dict):
        data = source
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"--tags-file {path}: not found (YuE's top_200_tags.json)")
        where = f"--tags-file {path}"
        data = read_json(path, "--tags-file", MAX_TAGS_FILE_BYTES)  # JsonFileError (a ValueError): one line
    if not isinstance(data, dict) or not all(
        isinstance(v, list) and all(isinstance(t, str) for t in v) for v in data.values()
    ):
        raise ValueError(f"{where} must map each tag kind to a list of tags (as top_200_tags.json does)")
    unknown = set(data) - set(TAG_KINDS)
    if unknown:
        raise ValueError(f"{where} has unknown kinds {sorted(unknown)}; expected {', '.join(TAG_KINDS)}")
    return {kind: {str(t).strip().lower() for t in data.get(kind, [])} for kind in TAG_KINDS}


def tag_kinds(tag: str, top: TopTags) -> list[str]:
    t = tag.strip().lower()
    return [kind for kind in TAG_KINDS if t in top[kind]]


def check_tags(tags: list[str], top: TopTags) -> list[str]:
    """Warnings for one song's tags: each tag outside the list, then each kind no tag belongs to."""
    warnings = []
    covered: set[str] = set()
    for tag in tags:
        kinds = tag_kinds(tag, top)
        if not kinds:
            warnings.append(f"tag {tag!r} is not in YuE's top-200 tags; the model may ignore it")
        covered.update(kinds)
    for kind in TAG_KINDS:
        if kind not in covered:
            warnings.append(f"no {kind} tag (e.g. {_EXAMPLES[kind]})")
    return warnings
