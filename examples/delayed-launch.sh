#!/bin/sh
# Delayed launches: the SIM -> RECO chain at a time two hours from now, and the bunch once the chain's
# first SIM task has half of its jobs done. Times without an offset are in your time zone (token page).
#   PRODPANEL_URL=https://prodpanel.example PRODPANEL_TOKEN=ppt_… examples/delayed-launch.sh
set -eu
here=$(dirname "$0")
at=$(date -u -d '+2 hours' +%Y-%m-%dT%H:%M:%SZ)
prodpanel chain submit "$here/sim-reco-chain.yaml" --at "$at"
prodpanel import "$here/bunch.yaml" --after-task PROD2026-101.SIM.1 --at-percent 50
prodpanel launches list --state upcoming
