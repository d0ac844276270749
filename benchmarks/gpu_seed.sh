#!/bin/bash
# The seed profile end to end on the real data on one GPU, as recorded in benchmarks/results.md
# ("Seed profile on one GPU"). Run from the repository root with the real data ingested into
# data/ (or as .gpu/data.tar.xz):
#
#   DEADLINE=565 bash benchmarks/gpu_seed.sh        # OUT=folder for the log and records
#   BENCH_ONLY=1 bash benchmarks/gpu_seed.sh        # only benchmarks/train_job.py on the GPU
#
# Steps: dvc add data; salt params use $PROFILE; dvc repro of prepare/split/pseudo; the fold
# trainings at the same time, each the command dvc.yaml names, fold 0 first so that the others
# find inductor's cache; dvc commit of those stages; dvc repro for the rest; then the whole-job
# benchmark while time is left. DVC runs stages one at a time, and the seed's small U-Net leaves
# most of a GPU idle: five folds at once trained 2.2x the images per second of one. Run again on
# the same machine (a warm one keeps models/), trainings stopped by DEADLINE resume from their
# last finished epoch.
#
# The lent GPU machines have no network: when .gpu/site.tar.xz exists, it holds the packages
# their image lacks (pip install --target for Python 3.12: mlflow, dvc, albumentations and
# their dependencies) and .gpu/*.whl the CLI's typer and click.
set -u
T0=$(date +%s)
DEADLINE=${DEADLINE:-540}
PROFILE=${PROFILE:-configs/seed-full.yaml}
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT" logs
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
    git init -q && printf "/.gpu/\n/logs/\n" >> .git/info/exclude && git add -A && git -c user.email=d@d -c user.name=device commit -qm device
  else
    dvc config core.no_scm true
  fi
fi
echo "== setup $(el) s"
failed=0
if [ -z "${BENCH_ONLY:-}" ]; then
dvc add data -q || exit 1
salt params use "$PROFILE" || exit 1
dvc repro -q split pseudo || exit 1
echo "== prepared $(el) s"

# The five folds at once: one small U-Net leaves most of one GPU idle.
START=$(date +%s)
pids=()
folds=()
for i in $(python3 -c "import yaml; print(*yaml.safe_load(open('params.yaml'))['split']['folds'])"); do
  cmd=$(python3 -c "import yaml,sys; print(yaml.safe_load(open('dvc.yaml'))['stages']['train']['do']['cmd'].replace('\${item}', sys.argv[1]))" "$i")
  echo "fold $i: $cmd"
  timeout $(($(left) - 120)) bash -c "$cmd" > "logs/fold$i.log" 2>&1 &
  pids+=($!)
  folds+=("$i")
  if [ ${#folds[@]} -eq 1 ]; then  # the others start once fold 0 has compiled (inductor's cache)
    for _ in $(seq 60); do
      grep -q "epoch 1/" "logs/fold$i.log" 2> /dev/null && break
      kill -0 "${pids[0]}" 2> /dev/null || break
      sleep 3
    done
    echo "fold $i first epoch at $(el) s: $(grep -a "epoch 1/" "logs/fold$i.log")"
  fi
done
while true; do
  running=0
  for k in "${!pids[@]}"; do kill -0 "${pids[$k]}" 2> /dev/null && running=$((running + 1)); done
  [ $running -eq 0 ] && break
  sleep 20
  echo "-- $(el) s: $running running; $(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2> /dev/null)"
  for i in "${folds[@]}"; do tail -c 300 "logs/fold$i.log" | tr '\r' '\n' | grep -a . | tail -1; done
done
for k in "${!pids[@]}"; do
  wait "${pids[$k]}"; rc=$?
  echo "fold ${folds[$k]} exit $rc"
  [ $rc -ne 0 ] && failed=1 && tail -30 "logs/fold${folds[$k]}.log"
done
echo "== folds concurrently: $(($(date +%s) - START)) s wall (at $(el) s)"
if [ $failed -eq 0 ]; then
  for i in "${folds[@]}"; do dvc commit -f -q "train@$i" || failed=1; done
  timeout $(($(left) - 30)) dvc repro || failed=1
  echo "== pipeline done $(el) s (failed=$failed)"
  dvc status
  dvc metrics show
  grep -h train_seconds metrics/train/fold*.json
fi
tar czf "$OUT/records.tgz" dvc.lock params.yaml metrics plots logs registry.json submission.csv mlflow.db 2> /dev/null
fi
if [ $failed -eq 0 ] && [ "$(left)" -gt 150 ]; then
  timeout $(($(left) - 10)) python3 benchmarks/train_job.py --tgs data --profile "$PROFILE" --epochs 10 5 \
    2>&1 | tail -40
fi
echo "== end $(el) s"
