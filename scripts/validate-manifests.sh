#!/usr/bin/env bash
# Schema-check the rendered Kubernetes manifests with kubernetes-validate --strict.
#
#   scripts/validate-manifests.sh            # build autoglm, render every combo in
#                                            # Tests/DeployTests/Fixtures/combos.txt, validate
#   scripts/validate-manifests.sh --goldens  # validate the committed goldens (no build; used by DeployTests)
#   scripts/validate-manifests.sh --dir DIR  # validate each DIR/*.yaml (a rendered spec, kube 1.30; used by
#                                            # DeployTests for every examples/ file and overlay)
# The render mode also renders every examples/*.yaml, the base and each environments overlay.
#
# Needs: pip install kubernetes-validate
# Each combo is validated against the oldest and the newest Kubernetes version the installed
# kubernetes-validate knows. Combos rendered for kube < 1.23 use autoscaling/v2beta2, which was
# removed in 1.26, so they are validated only against known versions below 1.26.
# Objects with no schema in kubernetes-validate are reported and allowed only when expected:
#   - ServiceMonitor and PrometheusRule (monitoring.coreos.com/v1): Prometheus Operator CRDs, not in
#     core schemas (DeployTests checks a PrometheusRule's groups with `promtool check rules`);
#   - ScaledObject (keda.sh/v1alpha1): a KEDA CRD, not in core schemas (autoscaling.provider: keda);
#   - PodDisruptionBudget policy/v1beta1 (kube < 1.21): removed in 1.25, older than any known schema.
# Any other missing schema, or any validation failure, fails the script.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FIX="$ROOT/Tests/DeployTests/Fixtures"
MODE="${1:-render}"

if ! command -v kubernetes-validate >/dev/null 2>&1; then
  echo "error: kubernetes-validate not found; install it with: pip install kubernetes-validate" >&2
  exit 2
fi

VERSIONS="$(python3 - <<'PY'
import os, re, kubernetes_validate
d = os.path.join(os.path.dirname(kubernetes_validate.__file__), "kubernetes-json-schema")
vs = sorted({tuple(map(int, m.groups())) for n in os.listdir(d)
             for m in [re.match(r"v(\d+)\.(\d+)\.\d+-local-strict$", n)] if m})
print(f"{vs[0][0]}.{vs[0][1]} {vs[-1][0]}.{vs[-1][1]}")
PY
)"
read -r OLDEST NEWEST <<<"$VERSIONS"
echo "kubernetes-validate $(kubernetes-validate --version 2>&1 | tail -1): schemas $OLDEST .. $NEWEST"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

if [[ "$MODE" == "render" ]]; then
  BIN="${AUTOGLM_BIN:-}"
  if [[ -z "$BIN" ]]; then
    (cd "$ROOT" && swift build --product autoglm >/dev/null)
    BIN="$(cd "$ROOT" && swift build --show-bin-path)/autoglm"
  fi
elif [[ "$MODE" == "--dir" ]]; then
  DIR="${2:?usage: $0 --dir DIR}"
elif [[ "$MODE" != "--goldens" ]]; then
  echo "usage: $0 [--goldens | --dir DIR]" >&2
  exit 2
fi

minor() { echo "${1#*.}"; }
fail=0
# One line per manifest set: NAME SPEC ENV KUBE (combos.txt's form, SPEC relative to the fixtures).
sets() {
  if [[ "$MODE" == "--dir" ]]; then
    for f in "$DIR"/*.yaml; do echo "$(basename "$f" .yaml) $f - 1.30"; done
    return
  fi
  cat "$FIX/combos.txt"
  [[ "$MODE" == "render" ]] || return 0
  for ex in "$ROOT"/examples/*.yaml; do
    base="example-$(basename "$ex" .yaml)"
    echo "$base $ex - 1.30"
    python3 -c 'import sys, yaml; print("\n".join((yaml.safe_load(open(sys.argv[1])) or {}).get("environments") or {}))' "$ex" \
      | while read -r e; do [[ -n "$e" ]] && echo "$base-$e $ex $e 1.30"; done
  done
}
while read -r name spec env kube; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  if [[ "$MODE" == "--goldens" ]]; then
    files=("$FIX/golden/$name.yaml")
  elif [[ "$MODE" == "--dir" ]]; then
    files=("$spec")
  else
    [[ "$spec" == /* ]] || spec="$FIX/$spec"
    args=("$spec" --kube-version "$kube" -o "$WORK/$name")
    [[ "$env" != "-" ]] && args+=(--env "$env")
    # A clean environment: ${VAR:-default} resolves the same as in the goldens.
    env -i PATH="$PATH" HOME="${HOME:-/tmp}" "$BIN" deploy render --offline "${args[@]}" 2>/dev/null
    files=("$WORK/$name"/*.yaml)
  fi
  targets=("$OLDEST" "$NEWEST")
  if (( $(minor "$kube") < 23 )); then
    targets=()
    (( $(minor "$OLDEST") < 26 )) && targets=("$OLDEST")
  fi
  if (( ${#targets[@]} == 0 )); then
    echo "SKIP  $name (kube $kube): no known schema version still has autoscaling/v2beta2"
    continue
  fi
  for v in $(printf '%s\n' "${targets[@]}" | sort -u); do
    out="$(kubernetes-validate --strict -k "$v.0" "${files[@]}" 2>&1)" && rc=0 || rc=$?
    unexpected="$(grep "Couldn't find schema" <<<"$out" \
      | grep -v "kind ServiceMonitor with api version monitoring.coreos.com/v1" \
      | grep -v "kind ScaledObject with api version keda.sh/v1alpha1" \
      | grep -v "kind PrometheusRule with api version monitoring.coreos.com/v1" \
      | grep -v "kind PodDisruptionBudget with api version policy/v1beta1" || true)"
    passed=$(grep -c " passed for resource " <<<"$out" || true)
    expected_missing=$(grep -c "Couldn't find schema" <<<"$out" || true)
    if (( rc != 0 )) || [[ -n "$unexpected" ]]; then
      echo "FAIL  $name (kube $kube) against $v:"
      grep -v " passed for resource " <<<"$out" | sed 's/^/      /'
      fail=1
    else
      echo "ok    $name (kube $kube) against $v: $passed objects passed --strict, $expected_missing without schema (expected: CRD / pre-1.25 API)"
    fi
  done
done < <(sets)

if (( fail )); then
  echo "manifest validation FAILED" >&2
  exit 1
fi
echo "all manifests valid"
