#!/usr/bin/env bash
# The project's test command (README "Set-up"): Rust workspace tests, rustfmt and clippy,
# then the Foundry suites, installing the pinned npm toolchain first if needed.
# Ends with one line: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0

# The pinned Foundry toolchain; its build also produces the contract artifacts (out/) that
# the Rust end-to-end tests deploy.
[ -x node_modules/@foundry-rs/forge-linux-amd64/bin/forge ] || npm ci --no-audit --no-fund || status=1
scripts/forge build || status=1

cargo test --workspace --no-fail-fast 2>&1 | tee "$log" || status=1
rust=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
  END { printf "%d %d", p, f }' "$log")
passed=${rust% *}
failed=${rust#* }

# Style and lints ([workspace.lints] in Cargo.toml): each is one check, failed if it fails.
for check in "cargo fmt --all --check" "cargo clippy --workspace --all-targets -- -D warnings"; do
  if $check; then
    passed=$((passed + 1))
  else
    echo "FAILED: $check"
    failed=$((failed + 1))
    status=1
  fi
done

if compgen -G "contracts/test/*.t.sol" >/dev/null; then
  # The bridge runs target/debug/myelin. `--bins --tests --examples` resolves features
  # exactly as `cargo test --workspace` did (plain `--bins` leaves out dev-dependencies,
  # changes the features of regex and portable-atomic and rebuilds what depends on them).
  cargo build --workspace --bins --tests --examples || status=1
  scripts/forge test --json > "$log" 2>&1 || status=1
  forge=$(node -e 'let r={};try{r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"))}catch{}
    let p=0,f=0;for(const s of Object.values(r))for(const t of Object.values(s.test_results||{})){if(t.status==="Success")p++;else if(t.status==="Failure")f++}
    console.log(p+" "+f)' "$log")
  [ "$forge" = "0 0" ] && { cat "$log"; echo "forge ran no test"; status=1; }
  scripts/forge test 2>&1 | tail -n 25 || true
  passed=$((passed + ${forge% *}))
  failed=$((failed + ${forge#* }))
fi

[ "$status" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1 # a build failure counts as a failure
echo "$passed passed, $failed failed"
exit "$status"
