#!/bin/sh
# A sweep: the chain CHAIN_ID again at 13.5 and 27 GeV (one new chain per energy, each under the next
# free production number), first previewed, then created and launched.
#   PRODPANEL_URL=https://prodpanel.example PRODPANEL_TOKEN=ppt_… examples/sweep.sh CHAIN_ID
set -eu
chain=${1:?usage: sweep.sh CHAIN_ID}
here=$(dirname "$0")
api="$PRODPANEL_URL/api/v1/chains/$chain/sweep"
auth="Authorization: Bearer $PRODPANEL_TOKEN"
# The preview: every variant and its problems (nothing is saved).
sed 's/"preview": false/"preview": true/' "$here/sweep.json" |
  curl -fsS -H "$auth" -H 'Content-Type: application/json' --data-binary @- "$api"
echo
# Create them all (or none, when any variant has a problem).
curl -fsS -H "$auth" -H 'Content-Type: application/json' --data-binary @"$here/sweep.json" "$api"
echo
