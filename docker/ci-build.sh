#!/bin/sh
# Build docker/Dockerfile and push it as config/cluster.yaml's images.runner, whose tag must be RUNNER_VERSION
# (versions.yml). Run by .gitlab-ci.yml in the rootless BuildKit image (no Docker daemon, no privileged runner);
# DRY_RUN=1 prints the build command instead (tests/test_ci.py).
#
# Registry login: GitLab's own registry with the job's credentials when images.runner lives there, else the
# CI/CD variables REGISTRY_USER and REGISTRY_PASSWORD (masked, protected). The layer cache lives beside the
# image (<image repository>:buildcache), so a rebuild fetches torch and the dependencies from it.
set -eu
cd "$(dirname "$0")/.."

RUNNER_VERSION=${RUNNER_VERSION:-$(sed -n 's/^ *RUNNER_VERSION: *"\([^"]*\)".*/\1/p' versions.yml)}
IMAGE=$(sed -n 's/^ *runner: *\([^ #]*\).*/\1/p' config/cluster.yaml)
[ -n "$IMAGE" ] || { echo "ci-build: config/cluster.yaml names no images.runner" >&2; exit 2; }
TAG=${IMAGE##*:}
REPO=${IMAGE%:*}
if [ "$TAG" = "$IMAGE" ] || [ "$TAG" != "$RUNNER_VERSION" ]; then
  echo "ci-build: config/cluster.yaml images.runner is $IMAGE, but versions.yml says RUNNER_VERSION $RUNNER_VERSION:" \
       "tag it :$RUNNER_VERSION (one version, stated once)" >&2
  exit 2
fi
REGISTRY=${IMAGE%%/*}
CACHE="$REPO:buildcache"

if [ "${DRY_RUN:-0}" != 1 ]; then
  if [ -n "${CI_REGISTRY:-}" ] && [ "$REGISTRY" = "$CI_REGISTRY" ]; then
    USER_NAME=$CI_REGISTRY_USER PASSWORD=$CI_REGISTRY_PASSWORD
  else
    USER_NAME=${REGISTRY_USER:?set the CI/CD variables REGISTRY_USER and REGISTRY_PASSWORD for $REGISTRY}
    PASSWORD=${REGISTRY_PASSWORD:?set the CI/CD variable REGISTRY_PASSWORD for $REGISTRY}
  fi
  mkdir -p "$HOME/.docker"
  AUTH=$(printf '%s:%s' "$USER_NAME" "$PASSWORD" | base64 | tr -d '\n')
  printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$REGISTRY" "$AUTH" > "$HOME/.docker/config.json"
fi

set -- build --frontend dockerfile.v0 --local context=. --local dockerfile=docker --opt filename=Dockerfile \
  --output "type=image,name=$IMAGE,push=true" \
  --import-cache "type=registry,ref=$CACHE" --export-cache "type=registry,ref=$CACHE,mode=max"
if [ "${DRY_RUN:-0}" = 1 ]; then
  echo buildctl-daemonless.sh "$@"
else
  echo "ci-build: building $IMAGE (cache $CACHE)"
  buildctl-daemonless.sh "$@"
fi
