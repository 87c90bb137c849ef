# The loopback OpenID provider for the IAM tests (node oidc-provider pinned in tests/oidc_op).
# Included by the Makefile; `make test` depends on oidc-deps.
OIDC_OP_DIR := tests/oidc_op

.PHONY: oidc-deps oidc-op
oidc-deps: $(OIDC_OP_DIR)/node_modules/.package-lock.json

# npm ci only when node_modules is missing or older than the lock file.
$(OIDC_OP_DIR)/node_modules/.package-lock.json: $(OIDC_OP_DIR)/package.json $(OIDC_OP_DIR)/package-lock.json
	@command -v node >/dev/null || { echo "node (20+) is required for the OpenID provider tests"; exit 1; }
	cd $(OIDC_OP_DIR) && npm ci --no-audit --no-fund
	@touch $@

# Run the provider by hand for a demo (DEMO ONLY: accepts any password). OP_PORT=9000 by default;
# OP_ID_TOKEN_TTL=<seconds> shortens the ID tokens (600 s, like IAM's, by default).
# Users alice (manager), carol (admin), bob (viewer); point the panel at it with
#   PRODPANEL_IAM__ISSUER=http://127.0.0.1:9000/ PRODPANEL_IAM__CLIENT_ID=prodpanel-demo \
#   PRODPANEL_IAM__CLIENT_SECRET=demo-secret-not-for-production prodpanel serve
oidc-op: oidc-deps
	cd $(OIDC_OP_DIR) && OP_PORT=$${OP_PORT:-9000} node server.mjs
