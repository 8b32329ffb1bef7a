# Workflow of the event store. `just` alone lists the recipes.
# Tools: scripts/setup-tools.sh installs the pinned ones (just itself comes
# from PyPI as rust-just: `pip install rust-just==1.59.0`).

set dotenv-load := true
set dotenv-path := "_infrastructure/aws-event-store/.env"

infra := justfile_directory() / "_infrastructure/aws-event-store"
export PATH := justfile_directory() / ".venv/bin" + ":" + env("PATH")

# From .env (or the environment): development | staging | production
app_mode := env("ES_APP_MODE", "development")
# From .env (or the environment): arm64 | x86_64
lambda_arch := env("ES_LAMBDA_ARCH", "arm64")
stack := "AwsEventStoreStack-" + app_mode

# List the recipes
default:
    @just --list

# Install the pinned tools (.venv: cargo-lambda, ziglang, just, cfn-lint; npm packages of the CDK app)
setup:
    scripts/setup-tools.sh

# Create _infrastructure/aws-event-store/.env from .env.example (never overwrites)
env:
    #!/usr/bin/env sh
    set -eu
    if [ -f "{{infra}}/.env" ]; then
        echo "{{infra}}/.env exists; edit it by hand"
    else
        cp "{{infra}}/.env.example" "{{infra}}/.env"
        echo "created {{infra}}/.env: set ES_AWS_ACCOUNT, ES_AWS_REGION and ES_APP_MODE"
    fi

# Bootstrap the AWS account and region of .env for CDK (once per account and region)
bootstrap: (_tools "cdk")
    cd "{{infra}}" && npx cdk bootstrap

# Build both Lambda functions for an architecture (arm64 | x86_64): target/lambda/<arch>/<function>/bootstrap.zip
build arch=lambda_arch: (_tools "python")
    #!/usr/bin/env sh
    set -eu
    case "{{arch}}" in
        arm64) flag=--arm64 ;;
        x86_64) flag=--x86-64 ;;
        *) echo "unknown architecture {{arch}}: arm64 | x86_64" >&2; exit 2 ;;
    esac
    cargo lambda build --release --locked -p eventstore-lambda "$flag" \
        --output-format zip --lambda-dir "{{justfile_directory()}}/target/lambda/{{arch}}"
    ls -l "{{justfile_directory()}}"/target/lambda/{{arch}}/*/bootstrap.zip

# Build, then deploy the stack AwsEventStoreStack-<mode> (extra arguments go to `cdk deploy`)
deploy *args: build (_tools "cdk")
    cd "{{infra}}" && npx cdk deploy {{args}}

# Show what a deploy would change
diff *args: (_tools "cdk")
    cd "{{infra}}" && npx cdk diff {{args}}

# Print the stack's outputs (table, log group, topic, URL) as JSON
describe:
    #!/usr/bin/env bash
    set -euo pipefail
    if ! command -v aws >/dev/null 2>&1; then
        echo "the AWS CLI is not installed: see https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html" >&2
        echo "(or: pip install awscli)" >&2
        exit 1
    fi
    outputs=$(aws ${ES_AWS_REGION:+--region "$ES_AWS_REGION"} cloudformation describe-stacks \
        --stack-name "{{stack}}" --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output text)
    printf '%s\n' "$outputs" |
        awk -F '\t' 'BEGIN { print "{" } NF == 2 { printf "%s  \"%s\": \"%s\"", (n++ ? ",\n" : ""), $1, $2 } END { print "\n}" }'

# Delete the stack (the DynamoDB table is kept: RemovalPolicy RETAIN)
destroy *args: (_tools "cdk")
    cd "{{infra}}" && npx cdk destroy {{args}}

# Run the local server with the embedded store (extra arguments go to `serve`)
run *args:
    cargo run --release -p eventstore-cli -- serve {{args}}

# Run every test of the project
test *args:
    scripts/test {{args}}

# Offline tests of the CDK app: template assertions, synth with the placeholder bundle, cfn-lint
test-infra:
    "{{infra}}/test.sh"

# Local end-to-end test of the serverless shape (moto + cargo lambda watch), no AWS account
test-serverless: (_tools "python")
    scripts/moto/setup.sh
    cargo test -p eventstore-lambda --test serverless_e2e -- --nocapture

_tools part:
    @scripts/setup-tools.sh {{part}}
