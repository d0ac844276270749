#!/bin/bash
# The seed profile end to end on the real data on one GPU, as recorded in benchmarks/results.md
# ("Seed profile on one GPU"). Run from the repository root with the real data ingested into
# data/ (or as .gpu/data.tar.xz):
#
#   DEADLINE=565 bash benchmarks/gpu_seed.sh        # OUT=folder for the log and records
#   BENCH_ONLY=1 bash benchmarks/gpu_seed.sh        # only benchmarks/train_job.py on the GPU
#
# Steps: dvc add data; salt params use $PROFILE; dvc repro, its train stage running the five
# folds at once (the profile's runtime.fold_jobs); then the whole-job benchmark while time is
# left. Run again on the same machine (a warm one keeps models/): trainings stopped by DEADLINE
# resume from their last finished epoch.
#
# The lent GPU machines have no network: when .gpu/site.tar.xz exists, it holds the packages
# their image lacks (pip install --target for Python 3.12: mlflow, dvc, albumentations and
# their dependencies) and .gpu/*.whl the CLI's typer and click.
set -u
T0=$(date +%s)
DEADLINE=${DEADLINE:-540}
PROFILE=${PROFILE:-configs/seed-full.yaml}
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
el() { echo $(($(date +%s) - T0)); }
left() { echo $((DEADLINE - $(el))); }
export PYTHONUNBUFFERED=1 DVC_NO_ANALYTICS=1 NO_ALBUMENTATIONS_UPDATE=1 CI=1
if [ -f .gpu/site.tar.xz ]; then
  mkdir -p /tmp/site /tmp/bin
  [ -d /tmp/site/mlflow ] || tar xJf .gpu/site.tar.xz -C /tmp/site
  for w in .gpu/*.whl; do python3 -m zipfile -e "$w" /tmp/site; done  # typer/click as tested here
  export PYTHONPATH=/tmp/site:$PWD/src
  for pair in dvc:dvc salt:saltseg mlflow:mlflow; do
    printf '#!/bin/sh\nexec python3 -m %s "$@"\n' "${pair#*:}" > "/tmp/bin/${pair%%:*}"
  done
  chmod +x /tmp/bin/*
  export PATH=/tmp/bin:$PATH
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  nproc
fi
python3 -c "import torch, mlflow, dvc, albumentations, timm; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'mlflow', mlflow.__version__, 'albumentations', albumentations.__version__, 'timm', timm.__version__)" || exit 1
[ -d data ] || tar xJf .gpu/data.tar.xz
if [ ! -d .git ]; then
  if command -v git > /dev/null; then
    git init -q && printf "/.gpu/\n" >> .git/info/exclude && git add -A && git -c user.email=d@d -c user.name=device commit -qm device
  else
    dvc config core.no_scm true
  fi
fi
echo "== setup $(el) s"
failed=0
if [ -z "${BENCH_ONLY:-}" ]; then
dvc add data -q || exit 1
salt params use "$PROFILE" || exit 1
echo "== data added $(el) s"
# The profile trains its five folds at once (runtime.fold_jobs): one small U-Net leaves most of
# one GPU idle. A stopped `dvc repro` resumes each fold from its last finished epoch.
timeout $(($(left) - 30)) dvc repro &
repro=$!
while kill -0 $repro 2> /dev/null; do
  sleep 20
  echo "-- $(el) s: $(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2> /dev/null)"
done
wait $repro || failed=1
echo "== pipeline done $(el) s (failed=$failed)"
dvc status
dvc metrics show
tar czf "$OUT/records.tgz" dvc.lock params.yaml metrics plots registry.json submission.csv mlflow.db 2> /dev/null
fi
if [ $failed -eq 0 ] && [ "$(left)" -gt 150 ]; then
  timeout $(($(left) - 10)) python3 benchmarks/train_job.py --tgs data --profile "$PROFILE" --epochs 10 5 \
    2>&1 | tail -40
fi
echo "== end $(el) s"
