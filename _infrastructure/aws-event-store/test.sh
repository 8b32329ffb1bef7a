#!/usr/bin/env bash
# Offline tests of the CDK app, no AWS account and no Rust build needed:
#   1. type check (tsc), 2. assertion tests on the synthesized template
#   (node --test), 3. `cdk synth` for each mode with the placeholder bundle and
#   once with a stand-in built bundle, 4. cfn-lint on every synthesized template.
# Installs what it needs first (npm ci, cfn-lint in .venv). Exits non-zero on failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
app=$(pwd)
root=$(cd ../.. && pwd)

"$root/scripts/setup-tools.sh" cdk python
cfn_lint="$root/.venv/bin/cfn-lint"

echo "--> tsc --noEmit"
npx tsc --noEmit -p .

echo "--> template assertions (node --test)"
node --import tsx --test test/*.test.ts

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# Stand-in for `just build` output, to synthesize the deployable variant.
for bin in event-store-api event-store-relay; do
    mkdir -p "$out/bundle/$bin" && echo "stand-in" >"$out/bundle/$bin/bootstrap.zip"
done

synth() { # name, then env assignments
    local name=$1; shift
    echo "--> cdk synth ($name)"
    env -u ES_LAMBDA_BUNDLE_DIR -u ES_PLACEHOLDER_BUNDLE "$@" \
        npx cdk synth --quiet --output "$out/$name" >"$out/$name.log" 2>&1 ||
        { cat "$out/$name.log"; return 1; }
}
for mode in development staging production; do
    synth "$mode" ES_APP_MODE=$mode ES_PLACEHOLDER_BUNDLE=1 ES_AWS_ACCOUNT=123456789012 ES_AWS_REGION=eu-central-1
done
synth built-x86_64 ES_APP_MODE=production ES_LAMBDA_ARCH=x86_64 ES_LAMBDA_BUNDLE_DIR="$out/bundle" \
    ES_AWS_ACCOUNT=123456789012 ES_AWS_REGION=eu-central-1

echo "--> cdk synth refuses a missing bundle without the placeholder flag"
if env -u ES_PLACEHOLDER_BUNDLE ES_LAMBDA_BUNDLE_DIR="$out/none" npx cdk synth --quiet --output "$out/none" >"$out/none.log" 2>&1; then
    echo "cdk synth succeeded without a bundle" >&2; exit 1
fi
grep -q "Lambda bundle missing" "$out/none.log"

echo "--> cfn-lint $("$cfn_lint" --version)"
# W8003 ("will always return False") is the point of the placeholder's
# PlaceholderBundleIsNotDeployable rule: it must fail every deployment. The
# built variant has no such rule and is linted with no exception.
for mode in development staging production; do
    "$cfn_lint" --ignore-checks W8003 -- "$out/$mode/AwsEventStoreStack-$mode.template.json"
done
"$cfn_lint" -- "$out/built-x86_64/AwsEventStoreStack-production.template.json"
echo "CDK app: all checks passed"
