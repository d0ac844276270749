"""Named profiles: configs/<name>.yaml laid over the defaults and written into params.yaml.

A profile is an overlay on one fixed base, the defaults in `saltseg.config`, never on
whatever params.yaml holds at the moment: a profile therefore resolves to the same
complete set of parameters whatever was applied before it. params.yaml is rewritten
key by key in round-trip mode, so its comments survive.

DVC could compose profiles with Hydra instead (`conf/` config groups, `dvc exp run -S
profile=...`); one overlay file per profile and one command are simpler, and
`salt params use` works the same inside and outside `dvc exp`.
"""

from __future__ import annotations

import io
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from saltseg.atomic import atomic_file
from saltseg.config import Params, params_from_dict, params_to_dict, read_yaml
from saltseg.errors import SaltError

EDITED = "+edits"  # label suffix of a params.yaml changed by hand after its profile was applied


def _merge(base: dict, overlay: dict, where: str) -> None:
    for key, value in overlay.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in base or key == "profile":
            raise SaltError(f"unknown key {path}")
        if isinstance(value, dict) and isinstance(base[key], dict):
            _merge(base[key], value, path)
        else:
            base[key] = value


def resolve(profile_file: Path) -> Params:
    """The complete parameters of a profile: the defaults with the profile's values laid over."""
    overlay = read_yaml(profile_file) or {}
    if not isinstance(overlay, dict):
        raise SaltError(f"{profile_file}: a profile is a mapping of params.yaml sections")
    values = params_to_dict(Params())
    try:
        _merge(values, overlay, "")
        return params_from_dict(values | {"profile": Path(profile_file).stem})
    except SaltError as exc:
        raise SaltError(f"{profile_file}: {exc}") from None


def _styled(value: object, like: object) -> object:
    """`value` as ruamel nodes in the flow/block style of the value it replaces."""
    if isinstance(value, list):
        first = like[0] if isinstance(like, list) and like else None
        node = CommentedSeq([_styled(v, first) for v in value])
    elif isinstance(value, dict):
        node = CommentedMap(value)
    else:
        return value
    if isinstance(like, CommentedSeq | CommentedMap) and like.fa.flow_style():
        node.fa.set_flow_style()
    return node


def _assign(doc: CommentedMap, values: dict, where: str, changed: list[str]) -> None:
    for key in [k for k in doc if k not in values]:
        del doc[key]
        changed.append(f"{where}.{key}" if where else str(key))
    for key, value in values.items():
        path = f"{where}.{key}" if where else str(key)
        old = doc.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            _assign(old, value, path, changed)
        elif key not in doc or old != value:
            doc[key] = _styled(value, old)
            changed.append(path)


def apply_profile(params_file: Path, profile_file: Path) -> list[str]:
    """Rewrite `params_file` to the profile's complete parameters; returns the changed keys.

    Everything is resolved and validated before params.yaml is replaced (in one rename),
    so a bad profile leaves it untouched.
    """
    values = params_to_dict(resolve(profile_file))
    yaml = YAML()  # round-trip mode: comments and key order survive
    yaml.indent(mapping=2, sequence=4, offset=2)  # params.yaml's own layout
    yaml.representer.add_representer(
        type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    doc = read_yaml(params_file, yaml)
    if not isinstance(doc, CommentedMap):
        doc = CommentedMap()
    changed: list[str] = []
    _assign(doc, values, "", changed)
    buffer = io.StringIO()
    yaml.dump(doc, buffer)
    with atomic_file(params_file) as tmp:
        tmp.write_text(buffer.getvalue())
    return changed


def label(params: Params, configs_dir: Path) -> str:
    """The profile name, with "+edits" when params.yaml no longer equals that profile."""
    profile_file = Path(configs_dir) / f"{params.profile}.yaml"
    try:
        same = profile_file.is_file() and resolve(profile_file) == params
    except SaltError:
        same = False
    return params.profile if same else params.profile + EDITED
