"""Provisioning steps: each is `ensure(ctx) -> Outcome` plus `teardown(ctx) -> Outcome`."""
