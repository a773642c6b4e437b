#!/usr/bin/env bash
# Fails if envelope-core's dependency tree holds a cloud SDK or an HTTP stack: the core must
# know nothing of any cloud (each backend is its own crate).
set -euo pipefail
cd "$(dirname "$0")/.."
tree=$(cargo tree -p envelope-core --edges normal,build --prefix none --locked)
# aws-lc-rs / aws-lc-sys are the crypto provider, not the AWS SDK: the SDK's crates are
# aws-config, aws-credential-types, aws-runtime, aws-sdk-*, aws-sigv4, aws-smithy-*, aws-types.
forbidden='^(aws-(config|credential|runtime|sdk|sigv4|smithy|types)|google-cloud|gcloud|gcp|reqwest|hyper|tonic|vaultrs|rusoto)'
if offenders=$(printf '%s\n' "$tree" | grep -E "$forbidden" | sort -u) && [ -n "$offenders" ]; then
    echo "envelope-core must not depend on these crates:" >&2
    printf '%s\n' "$offenders" >&2
    exit 1
fi
echo "envelope-core: $(printf '%s\n' "$tree" | sort -u | wc -l) crates in its tree, no cloud SDK or HTTP stack"
