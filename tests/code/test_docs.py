"""The README and the documentation site say what the code does: every `salt` command and option
they name exists, the log line they show is the one training prints, the README stays a short
front door, and the site builds with nothing fetched from elsewhere."""

import dataclasses
import functools
import re
from pathlib import Path

import typer
from tiny_training import tiny_params

from saltseg.cli import app
from saltseg.config import StageConfig
from saltseg.data.folds import fold_indices, load_folds
from saltseg.data.prepared import load_prepared
from saltseg.train import FoldPaths, train_fold

ROOT = Path(__file__).resolve().parents[2]
# What the site shows: its pages, and the two files it includes from elsewhere.
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PAGES += [ROOT / "CONTRIBUTING.md", ROOT / "benchmarks" / "results.md"]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
SPAN = re.compile(r"`([^`\n]+)`")
# `salt ...` (or `python -m saltseg ...`), up to a comment, two spaces, a pipe, `;`, `&&` or `)`.
COMMAND = re.compile(r"(?:(?<![\w./-])salt|-m saltseg)((?: [^\s#|;&)]+)*)")


def _code(text: str) -> list[str]:
    """The lines of fenced blocks (continuations joined) and the inline code spans of `text`."""
    blocks = [m.group(1).replace("\\\n", " ") for m in FENCE.finditer(text)]
    lines = [line for block in blocks for line in block.splitlines()]
    return lines + SPAN.findall(FENCE.sub("", text))


def _named_commands() -> list[tuple[str, str]]:
    """(page, command text after `salt`) for every salt command line the pages show."""
    found = []
    for page in PAGES:
        for line in _code(page.read_text(encoding="utf-8")):
            for match in COMMAND.finditer(line.split("  ")[0]):  # two spaces: a description follows
                found.append((page.relative_to(ROOT).as_posix(), match.group(1).strip()))
    return found


@functools.cache
def _root():  # noqa: ANN202 - typer's click group
    return typer.main.get_command(app)


def _options(command) -> set[str]:  # noqa: ANN001 - typer's click command
    return {o for p in command.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}


def _problem(words: list[str]) -> str | None:
    """Why `salt <words>` names a command or option the app lacks; None when it has them all."""
    command, path = _root(), ["salt"]
    rest = list(words)
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
        word = rest.pop(0)
        if word.isupper():  # a placeholder such as COMMAND: no particular command
            return None
        if word not in command.commands:
            return f"`{' '.join(path)}` has no command {word!r}"
        command = command.commands[word]
        path.append(word)
    for word in rest:
        for option in re.findall(r"--[a-z][\w-]*", word.strip("[]")):
            if option not in _options(command):
                return f"`{' '.join(path)}` has no option {option}"
    return None


def test_every_salt_command_and_option_the_docs_name_exists():
    named = _named_commands()
    assert len(named) > 40, "the parser found too few commands: has the markup changed?"
    problems = [f"{page}: salt {text}: {why}" for page, text in named if (why := _problem(text.split()))]
    assert not problems, "\n".join(problems)


def test_the_check_sees_a_command_or_option_that_does_not_exist():
    assert _problem(["train", "--fold", "0"]) is None
    assert _problem(["data", "holdout", "--out", "DIR"]) is None
    assert "no command 'trian'" in _problem(["trian"])
    assert "no option --min-scor" in _problem(["evaluate", "--min-scor", "0.6"])
    assert "no option --folds" in _problem(["data", "ingest", "SRC", "--folds", "x"])


def _command_paths(command=None, path=()):  # noqa: ANN001 - typer's click command
    command = command or _root()
    if not hasattr(command, "commands"):
        return [list(path)]
    return [p for name, sub in command.commands.items() for p in _command_paths(sub, (*path, name))]


def test_the_readme_names_every_command():
    """The README's CLI block is the map: each command of the app appears in it."""
    named = [text.split() for page, text in _named_commands() if page == "README.md"]
    for path in _command_paths():
        assert any(words[: len(path)] == path for words in named), (
            f"README.md names no `salt {' '.join(path)}`"
        )


def test_the_readme_is_a_short_front_door():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move detail into docs/"


def _shape(line: str) -> str:
    """A log line with its numbers replaced by their form: 4 decimals, 1 decimal, an integer."""
    line = re.sub(r"\d+\.\d{4}\b", "F4", line)
    line = re.sub(r"\d+\.\d\b", "F1", line)
    return re.sub(r"\d+", "N", line)


def test_log_example_matches_what_training_prints(tiny_data, tmp_path, capsys):
    """Train one tiny fold (stderr is not a terminal under pytest: one plain line an epoch) and
    compare the shape of the first line with every epoch line the docs show."""
    prepared_path, folds_path = tiny_data
    prepared = load_prepared(prepared_path)
    split = fold_indices(prepared.ids, load_folds(folds_path), 0)
    params = tiny_params(tmp_path)  # one BCE epoch and one Lovasz epoch: "epoch 1/2 (bce 1/1)"
    stages = (StageConfig("bce", 1, 0.01), StageConfig("lovasz", 1, 0.003))
    params = dataclasses.replace(params, train=dataclasses.replace(params.train, stages=stages))
    paths = FoldPaths(tmp_path / "model", tmp_path / "metrics.json", tmp_path / "history.csv")
    train_fold(params, prepared, split, 0, paths, key="k")
    printed = next(ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("fold 0 epoch 1/"))
    real, label = _shape(printed), _shape(printed.split(": ")[0])
    shown = [
        (page, text)
        for page in PAGES
        for text in _code(page.read_text(encoding="utf-8"))
        if re.match(r"fold \d+ epoch \d", text)
    ]
    assert any(_shape(text) == real for _, text in shown), "no page shows a whole epoch line"
    wrong = [f"{p.name}: {t}" for p, t in shown if _shape(t) not in (real, label)]
    assert not wrong, f"training prints {printed!r}; the docs show:\n" + "\n".join(wrong)


def test_site_builds_offline(tmp_path):
    """`mkdocs build --strict` (broken links and anchors fail), and no page loads a font, script
    or style from elsewhere."""
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    build(load_config(str(ROOT / "mkdocs.yml"), site_dir=str(tmp_path / "site"), strict=True))
    pages = list((tmp_path / "site").rglob("*.html"))
    assert len(pages) >= 12
    external = re.compile(r"""<(?:script|link|img)\b[^>]*\b(?:src|href)=["']?(?:https?:)?//""", re.I)
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert "fonts.googleapis" not in html and "fonts.gstatic" not in html, page
        assert not external.search(html), f"{page}: {external.search(html).group(0)}"
