"""The layers import downwards: training needs neither prediction, the registry nor MLflow, and
predicting from local files loads no MLflow. Each check runs in a fresh interpreter, so what
other tests imported does not count."""

import subprocess
import sys

import pytest


def _loaded(statement: str, modules: tuple[str, ...]) -> list[str]:
    code = f"import sys\n{statement}\nprint(' '.join(m for m in {modules!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


@pytest.mark.parametrize(
    ("statement", "forbidden"),
    [
        ("import saltseg.train", ("saltseg.pseudo", "saltseg.predict", "saltseg.registry", "mlflow")),
        ("import saltseg.predict", ("saltseg.registry", "mlflow")),
        ("import saltseg.train_stage", ("saltseg.inference", "saltseg.predict", "saltseg.registry")),
        ("import saltseg.data.folds, saltseg.data.pseudo_set", ("torch", "mlflow")),
    ],
)
def test_imports_stay_in_their_layer(statement: str, forbidden: tuple[str, ...]) -> None:
    assert _loaded(statement, forbidden) == []
